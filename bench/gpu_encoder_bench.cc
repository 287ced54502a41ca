// GPU encoder throughput: sentences/s and achieved TFLOP/s of CudaEncoder at fixed batch sizes.
//
// Weights are random with the model's shape (throughput does not depend on their values), so
// the bench needs no model files. Timings include the host side of Encode (packing, H2D, D2H).
//
//   gpu_encoder_bench [--shape minilm|bert-base] [--dtype float16|bfloat16] [--seq 128]
//                     [--batches 32,128,256] [--seconds 2] [--peak-tflops 989]
//                     [--variants reference,fused]
// Each variant (CudaEncoderOptions::variant) is measured in turn; one that CreateCudaEncoder
// rejects (e.g. fused on an unsupported shape) is skipped with a printed line.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "tipperary/kernels/cuda_encoder.h"

namespace {

using tipperary::kernels::BertWeightsHost;

struct Shape {
  int layers, hidden, heads, intermediate, vocab, max_position;
};

struct RandomWeights {
  std::vector<std::vector<float>> storage;
  BertWeightsHost view;

  const float* Make(std::mt19937& rng, size_t n, float lo, float hi) {
    std::uniform_real_distribution<float> dist(lo, hi);
    std::vector<float> v(n);
    for (float& f : v) f = dist(rng);
    storage.push_back(std::move(v));
    return storage.back().data();
  }

  explicit RandomWeights(const Shape& s) {
    std::mt19937 rng(7);
    const size_t h = s.hidden;
    const size_t i = s.intermediate;
    view.layers = s.layers;
    view.hidden = s.hidden;
    view.heads = s.heads;
    view.intermediate = s.intermediate;
    view.vocab = s.vocab;
    view.max_position = s.max_position;
    view.type_vocab = 2;
    const float w = 1.0f / std::sqrt(static_cast<float>(h));
    storage.reserve(8 + 16 * s.layers);
    view.word_emb = Make(rng, s.vocab * h, -1, 1);
    view.pos_emb = Make(rng, s.max_position * h, -1, 1);
    view.type_emb = Make(rng, 2 * h, -1, 1);
    view.emb_ln_gamma = Make(rng, h, 0.9f, 1.1f);
    view.emb_ln_beta = Make(rng, h, -0.1f, 0.1f);
    view.layer.resize(s.layers);
    for (auto& l : view.layer) {
      l.query_w = Make(rng, h * h, -w, w);
      l.query_b = Make(rng, h, -0.1f, 0.1f);
      l.key_w = Make(rng, h * h, -w, w);
      l.key_b = Make(rng, h, -0.1f, 0.1f);
      l.value_w = Make(rng, h * h, -w, w);
      l.value_b = Make(rng, h, -0.1f, 0.1f);
      l.attn_out_w = Make(rng, h * h, -w, w);
      l.attn_out_b = Make(rng, h, -0.1f, 0.1f);
      l.attn_ln_gamma = Make(rng, h, 0.9f, 1.1f);
      l.attn_ln_beta = Make(rng, h, -0.1f, 0.1f);
      l.ffn_in_w = Make(rng, i * h, -w, w);
      l.ffn_in_b = Make(rng, i, -0.1f, 0.1f);
      l.ffn_out_w = Make(rng, h * i, -w, w);
      l.ffn_out_b = Make(rng, h, -0.1f, 0.1f);
      l.ffn_ln_gamma = Make(rng, h, 0.9f, 1.1f);
      l.ffn_ln_beta = Make(rng, h, -0.1f, 0.1f);
    }
  }
};

const char* Flag(int argc, char** argv, const char* name, const char* fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], name) == 0) return argv[i + 1];
  }
  return fallback;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string shape_name = Flag(argc, argv, "--shape", "minilm");
  const std::string dtype = Flag(argc, argv, "--dtype", "float16");
  const int seq = std::atoi(Flag(argc, argv, "--seq", "128"));
  const double seconds = std::atof(Flag(argc, argv, "--seconds", "2"));
  const double peak_tflops = std::atof(Flag(argc, argv, "--peak-tflops", "989"));
  std::vector<std::string> variants;
  {
    std::string list = Flag(argc, argv, "--variants", "reference,fused");
    for (char* tok = std::strtok(list.data(), ","); tok; tok = std::strtok(nullptr, ",")) {
      variants.emplace_back(tok);
    }
  }
  std::vector<int> batches;
  {
    std::string list = Flag(argc, argv, "--batches", "32,128,256");
    for (char* tok = std::strtok(list.data(), ","); tok; tok = std::strtok(nullptr, ",")) {
      batches.push_back(std::atoi(tok));
    }
  }
  Shape shape{6, 384, 12, 1536, 30522, 512};  // all-MiniLM-L6-v2
  if (shape_name == "bert-base") shape = {12, 768, 12, 3072, 30522, 512};

  if (!tipperary::kernels::CudaDeviceAvailable()) {
    std::printf("gpu_encoder_bench: no CUDA device; nothing to measure\n");
    return 0;
  }
  auto desc = tipperary::kernels::CudaDeviceDescription(0);
  std::printf("device: %s\n", desc.ok() ? desc->c_str() : desc.status().ToString().c_str());

  int max_batch = 1;
  for (int b : batches) max_batch = std::max(max_batch, b);
  RandomWeights weights(shape);

  // FLOPs per forward pass: 2 per multiply-add of the dense layers, plus QK^T and PV.
  const double h = shape.hidden;
  const double dense_per_token = 2.0 * shape.layers * (4 * h * h + 2 * h * shape.intermediate);
  const double attn_per_seq = shape.layers * 4.0 * seq * seq * h;

  int failures = 0;
  int measured = 0;
  for (const std::string& variant : variants) {
    tipperary::kernels::CudaEncoderOptions options;
    options.dtype = dtype;
    options.variant = variant;
    options.max_batch_size = max_batch;
    options.max_batch_tokens = max_batch * ((seq + 7) / 8 * 8);
    options.max_seq_len = seq;
    auto encoder = tipperary::kernels::CreateCudaEncoder(options, weights.view);
    if (!encoder.ok()) {
      if (encoder.status().code() == absl::StatusCode::kInvalidArgument) {
        std::printf("variant %s skipped: %s\n", variant.c_str(),
                    encoder.status().ToString().c_str());
        continue;
      }
      std::fprintf(stderr, "CreateCudaEncoder: %s\n", encoder.status().ToString().c_str());
      return 1;
    }
    std::printf("variant=%s shape=%s dtype=%s seq=%d peak=%.0f TFLOP/s (dense fp16/bf16)\n",
                variant.c_str(), shape_name.c_str(), dtype.c_str(), seq, peak_tflops);
    std::printf("%8s %12s %12s %10s %8s\n", "batch", "sentences/s", "ms/batch", "TFLOP/s", "%peak");
    std::mt19937 rng(3);
    for (int batch : batches) {
      std::vector<std::vector<int32_t>> ids(batch, std::vector<int32_t>(seq));
      for (auto& row : ids) {
        for (int32_t& id : row) id = static_cast<int32_t>(1000 + rng() % 29000);
        row.front() = 101;
        row.back() = 102;
      }
      std::vector<float> out;
      for (int i = 0; i < 3; ++i) {  // warm-up: cuBLAS heuristics, clocks
        if (auto s = (*encoder)->Encode(ids, &out); !s.ok()) {
          std::fprintf(stderr, "Encode: %s\n", s.ToString().c_str());
          return 1;
        }
      }
      int iters = 0;
      const auto start = std::chrono::steady_clock::now();
      double elapsed = 0;
      while (elapsed < seconds || iters < 5) {
        if (!(*encoder)->Encode(ids, &out).ok()) ++failures;
        ++iters;
        elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      }
      const double per_batch = elapsed / iters;
      const double flops = batch * (seq * dense_per_token + attn_per_seq);
      const double tflops = flops / per_batch / 1e12;
      std::printf("%8d %12.0f %12.3f %10.1f %7.1f%%\n", batch, batch / per_batch, per_batch * 1e3,
                  tflops, 100.0 * tflops / peak_tflops);
      ++measured;
    }
  }
  if (measured == 0) {
    std::fprintf(stderr, "gpu_encoder_bench: no variant could be measured\n");
    return 1;
  }
  if (auto stats = tipperary::kernels::QueryGpuStats(0); stats.ok()) {
    std::printf("gpu memory used %.2f / %.2f GiB, utilization %.0f%%\n",
                stats->memory_used_bytes / 1073741824.0, stats->memory_total_bytes / 1073741824.0,
                stats->utilization_ratio * 100);
  } else {
    std::printf("NVML: %s\n", stats.status().ToString().c_str());
  }
  return failures == 0 ? 0 : 1;
}
