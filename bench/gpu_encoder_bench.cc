// GPU encoder throughput: sentences/s and achieved TFLOP/s of CudaEncoder for every combination
// of variant x dtype x sequence length x batch size, and (--matmul-peak) the rate of one large
// bf16 cuBLAS GEMM on the same GPU, which the encoder's rate is quoted as a fraction of.
//
// Weights are random with the model's shape (throughput does not depend on their values), so
// the bench needs no model files. Timings include the host side of Encode (packing, H2D, D2H).
// A variant "<name>+graphs" is <name> with CUDA Graphs on (use_graphs): each shape captured on
// the first (warm-up) Encode and replayed after. Besides the table, every measurement is one
// "GPU-CHECK ..." line that scripts/gpu-check parses. Exits non-zero when there is no device, an
// Encode fails, or nothing was measured; a variant that CreateCudaEncoder does not know is skipped
// with a printed line.
//
// --ablate (issue 13: where the time goes) then times, for each --ablate-variants variant at
// --ablate-seq tokens x --ablate-batch sequences in --ablate-dtype, the normal pass and each
// stage (stage_ablation.h) removed (scale 0) and doubled (scale 2), one line each:
//   GPU-CHECK ablate variant=fused dtype=float16 seq=128 batch=256 stage=attention scale=0
//   ms_per_batch=1.2345
// (stage=none scale=1 is the normal pass). The ablated encoders compute garbage; only their time
// means anything. scripts/gpu_check_summary.py turns the lines into "where the time goes".
//
//   gpu_encoder_bench [--shape minilm|bert-base] [--dtypes float16,bfloat16]
//                     [--variants reference,fused,fused+graphs] [--seqs 16,128,256]
//                     [--batches 1,32,256]
//                     [--seconds 2] [--matmul-peak] [--peak-tflops 989]
//                     [--ablate [--ablate-variants reference,fused] [--ablate-seq 128]
//                      [--ablate-batch 256] [--ablate-dtype float16] [--ablate-seconds 0.5]]
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "tipperary/kernels/cuda_encoder.h"
#include "tipperary/kernels/math.h"
#include "tipperary/kernels/stage_ablation.h"

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

bool HasFlag(int argc, char** argv, const char* name) {
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], name) == 0) return true;
  }
  return false;
}

std::vector<std::string> SplitList(const std::string& list) {
  std::vector<std::string> out;
  size_t begin = 0;
  while (begin <= list.size()) {
    const size_t end = std::min(list.find(',', begin), list.size());
    if (end > begin) out.push_back(list.substr(begin, end - begin));
    begin = end + 1;
  }
  return out;
}

std::vector<int> SplitInts(const std::string& list) {
  std::vector<int> out;
  for (const std::string& item : SplitList(list)) out.push_back(std::atoi(item.c_str()));
  return out;
}

// TFLOP/s of an n x n x n bf16 GEMM with fp32 accumulation (cublasGemmEx on random data, the
// mean of 20 after 3 warm-ups): the "measured matrix rate" the encoder is compared with. 0 on
// any error (printed).
double MeasureBf16MatmulTflops(int n) {
  const size_t elems = size_t(n) * n;
  std::vector<uint16_t> host(elems);
  uint32_t x = 12345;
  for (uint16_t& v : host) {
    x = x * 1664525u + 1013904223u;
    v = tipperary::kernels::FloatToBf16Bits(static_cast<float>(x >> 8) / 8388608.0f - 1.0f);
  }
  void* a = nullptr;
  void* b = nullptr;
  void* c = nullptr;
  cublasHandle_t handle = nullptr;
  cudaEvent_t start = nullptr;
  cudaEvent_t stop = nullptr;
  double tflops = 0;
  const int iters = 20;
  if (cudaMalloc(&a, elems * 2) == cudaSuccess && cudaMalloc(&b, elems * 2) == cudaSuccess &&
      cudaMalloc(&c, elems * 2) == cudaSuccess &&
      cudaMemcpy(a, host.data(), elems * 2, cudaMemcpyHostToDevice) == cudaSuccess &&
      cudaMemcpy(b, host.data(), elems * 2, cudaMemcpyHostToDevice) == cudaSuccess &&
      cublasCreate(&handle) == CUBLAS_STATUS_SUCCESS && cudaEventCreate(&start) == cudaSuccess &&
      cudaEventCreate(&stop) == cudaSuccess) {
    const float alpha = 1.0f;
    const float beta = 0.0f;
    auto gemm = [&] {
      return cublasGemmEx(handle, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &alpha, a, CUDA_R_16BF, n, b,
                          CUDA_R_16BF, n, &beta, c, CUDA_R_16BF, n, CUBLAS_COMPUTE_32F,
                          CUBLAS_GEMM_DEFAULT);
    };
    bool ok = true;
    for (int i = 0; i < 3 && ok; ++i) ok = gemm() == CUBLAS_STATUS_SUCCESS;
    cudaEventRecord(start);
    for (int i = 0; i < iters && ok; ++i) ok = gemm() == CUBLAS_STATUS_SUCCESS;
    cudaEventRecord(stop);
    float ms = 0;
    if (ok && cudaEventSynchronize(stop) == cudaSuccess &&
        cudaEventElapsedTime(&ms, start, stop) == cudaSuccess && ms > 0) {
      tflops = 2.0 * n * double(n) * n * iters / (ms * 1e-3) / 1e12;
    }
  }
  if (tflops == 0) {
    std::fprintf(stderr, "bf16 matmul microbench failed: %s\n",
                 cudaGetErrorString(cudaGetLastError()));
  }
  if (start != nullptr) cudaEventDestroy(start);
  if (stop != nullptr) cudaEventDestroy(stop);
  if (handle != nullptr) cublasDestroy(handle);
  cudaFree(a);
  cudaFree(b);
  cudaFree(c);
  return tflops;
}

// A bench variant: a CudaEncoderOptions::variant, optionally with "+graphs" (use_graphs on:
// every shape captured as a CUDA Graph and replayed), e.g. "fused+graphs".
void SetVariant(const std::string& name, tipperary::kernels::CudaEncoderOptions* options) {
  const std::string suffix = "+graphs";
  const bool graphs = name.size() > suffix.size() &&
                      name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
  options->variant = graphs ? name.substr(0, name.size() - suffix.size()) : name;
  options->use_graphs = graphs;
}

// `batch` random sequences of `seq` tokens, [CLS] ... [SEP].
std::vector<std::vector<int32_t>> RandomIds(std::mt19937& rng, int batch, int seq) {
  std::vector<std::vector<int32_t>> ids(batch, std::vector<int32_t>(seq));
  for (auto& row : ids) {
    for (int32_t& id : row) id = static_cast<int32_t>(1000 + rng() % 29000);
    row.front() = 101;
    row.back() = 102;
  }
  return ids;
}

// Seconds per Encode of `ids` (3 warm-ups, then at least `seconds` and 5 calls); -1 when an
// Encode fails (printed).
double SecondsPerEncode(tipperary::model::Encoder* encoder,
                        const std::vector<std::vector<int32_t>>& ids, double seconds,
                        const std::string& what) {
  std::vector<float> out;
  for (int i = 0; i < 3; ++i) {  // warm-up: cuBLAS heuristics, clocks
    if (auto s = encoder->Encode(ids, &out); !s.ok()) {
      std::fprintf(stderr, "Encode (%s): %s\n", what.c_str(), s.ToString().c_str());
      return -1;
    }
  }
  int iters = 0;
  const auto start = std::chrono::steady_clock::now();
  double elapsed = 0;
  while (elapsed < seconds || iters < 5) {
    if (auto s = encoder->Encode(ids, &out); !s.ok()) {
      std::fprintf(stderr, "Encode (%s): %s\n", what.c_str(), s.ToString().c_str());
      return -1;
    }
    ++iters;
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  return elapsed / iters;
}

// --ablate: the normal pass and every stage of each variant removed and doubled. Returns the
// number of failures; adds the lines printed to *measured.
int RunAblation(int argc, char** argv, const BertWeightsHost& weights, std::mt19937& rng,
                int* measured) {
  namespace k = tipperary::kernels;
  const std::vector<std::string> variants =
      SplitList(Flag(argc, argv, "--ablate-variants", "reference,fused"));
  const int seq = std::atoi(Flag(argc, argv, "--ablate-seq", "128"));
  const int batch = std::atoi(Flag(argc, argv, "--ablate-batch", "256"));
  const std::string dtype = Flag(argc, argv, "--ablate-dtype", "float16");
  const double seconds = std::atof(Flag(argc, argv, "--ablate-seconds", "0.5"));
  if (seq <= 0 || batch <= 0) {
    std::fprintf(stderr, "gpu_encoder_bench: --ablate-seq and --ablate-batch must be > 0\n");
    return 1;
  }
  const std::vector<std::vector<int32_t>> ids = RandomIds(rng, batch, seq);
  int failures = 0;
  std::printf("stage ablation (%s, %d tokens x %d; outputs are garbage, only times count)\n",
              dtype.c_str(), seq, batch);
  for (const std::string& variant : variants) {
    // "none" first: the normal pass every other line is compared with.
    std::vector<std::pair<std::string, int>> runs = {{"none", 1}};
    for (int i = 0; i < k::kAblationStageCount; ++i) {
      const auto stage = static_cast<k::AblationStage>(i);
      if (!k::VariantHasStage(variant, stage)) continue;
      runs.emplace_back(k::AblationStageName(stage), 0);
      runs.emplace_back(k::AblationStageName(stage), 2);
    }
    for (const auto& [stage, scale] : runs) {
      k::CudaEncoderOptions options;
      options.dtype = dtype;
      SetVariant(variant, &options);
      options.max_batch_size = batch;
      options.max_batch_tokens = batch * ((seq + 7) / 8 * 8);
      options.max_seq_len = seq;
      if (stage != "none") options.ablate = stage + "=" + std::to_string(scale);
      auto encoder = k::CreateCudaEncoder(options, weights);
      if (!encoder.ok()) {
        const bool unknown =
            encoder.status().message().find("unknown variant") != std::string::npos;
        std::printf("GPU-CHECK variant-skipped variant=%s dtype=%s unknown=%d reason=\"%s\"\n",
                    variant.c_str(), dtype.c_str(), unknown ? 1 : 0,
                    std::string(encoder.status().message()).c_str());
        if (!unknown) ++failures;
        break;
      }
      const double per_batch = SecondsPerEncode(
          encoder->get(), ids, seconds, variant + " ablate " + stage + "=" + std::to_string(scale));
      if (per_batch < 0) {
        ++failures;
        continue;
      }
      std::printf(
          "GPU-CHECK ablate variant=%s dtype=%s seq=%d batch=%d stage=%s scale=%d "
          "ms_per_batch=%.4f\n",
          variant.c_str(), dtype.c_str(), seq, batch, stage.c_str(), scale, per_batch * 1e3);
      ++*measured;
    }
  }
  return failures;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string shape_name = Flag(argc, argv, "--shape", "minilm");
  const std::vector<std::string> dtypes =
      SplitList(Flag(argc, argv, "--dtypes", Flag(argc, argv, "--dtype", "float16")));
  const std::vector<std::string> variants = SplitList(Flag(argc, argv, "--variants", "reference"));
  const std::vector<int> seqs =
      SplitInts(Flag(argc, argv, "--seqs", Flag(argc, argv, "--seq", "128")));
  const std::vector<int> batches = SplitInts(Flag(argc, argv, "--batches", "32,128,256"));
  const double seconds = std::atof(Flag(argc, argv, "--seconds", "2"));
  double peak_tflops = std::atof(Flag(argc, argv, "--peak-tflops", "989"));
  Shape shape{6, 384, 12, 1536, 30522, 512};  // all-MiniLM-L6-v2
  if (shape_name == "bert-base") shape = {12, 768, 12, 3072, 30522, 512};
  if (dtypes.empty() || variants.empty() || seqs.empty() || batches.empty()) {
    std::fprintf(stderr, "gpu_encoder_bench: empty --dtypes/--variants/--seqs/--batches\n");
    return 2;
  }

  if (!tipperary::kernels::CudaDeviceAvailable()) {
    // Say why: no driver, a runtime newer than the driver, no visible device...
    int count = 0;
    const cudaError_t err = cudaGetDeviceCount(&count);
    std::printf(
        "gpu_encoder_bench: no CUDA device (cudaGetDeviceCount: %s, %d devices); nothing "
        "measured\n",
        cudaGetErrorString(err), count);
    return 1;
  }
  auto desc = tipperary::kernels::CudaDeviceDescription(0);
  std::printf("device: %s\n", desc.ok() ? desc->c_str() : desc.status().ToString().c_str());

  const char* peak_source = "given";
  if (HasFlag(argc, argv, "--matmul-peak")) {
    const int n = 8192;
    const double measured = MeasureBf16MatmulTflops(n);
    std::printf("GPU-CHECK matmul dtype=bfloat16 m=%d n=%d k=%d tflops=%.1f\n", n, n, n, measured);
    if (measured <= 0) return 1;
    peak_tflops = measured;
    peak_source = "measured bf16 GEMM";
  }

  const int max_batch = *std::max_element(batches.begin(), batches.end());
  const int max_seq = *std::max_element(seqs.begin(), seqs.end());
  RandomWeights weights(shape);
  // FLOPs per forward pass: 2 per multiply-add of the dense layers, plus QK^T and PV.
  const double h = shape.hidden;
  const double dense_per_token = 2.0 * shape.layers * (4 * h * h + 2 * h * shape.intermediate);

  std::printf("shape=%s peak=%.0f TFLOP/s (%s)\n", shape_name.c_str(), peak_tflops, peak_source);
  std::printf("%-13s %-9s %5s %6s %12s %10s %9s %7s\n", "variant", "dtype", "seq", "batch",
              "sentences/s", "ms/batch", "TFLOP/s", "%peak");
  std::mt19937 rng(3);
  int failures = 0;
  int measured = 0;
  for (const std::string& variant : variants) {
    for (const std::string& dtype : dtypes) {
      tipperary::kernels::CudaEncoderOptions options;
      options.dtype = dtype;
      SetVariant(variant, &options);
      options.max_batch_size = max_batch;
      options.max_batch_tokens = max_batch * ((max_seq + 7) / 8 * 8);
      options.max_seq_len = max_seq;
      auto encoder = tipperary::kernels::CreateCudaEncoder(options, weights.view);
      if (!encoder.ok()) {
        const bool unknown =
            encoder.status().message().find("unknown variant") != std::string::npos;
        std::printf("GPU-CHECK variant-skipped variant=%s dtype=%s unknown=%d reason=\"%s\"\n",
                    variant.c_str(), dtype.c_str(), unknown ? 1 : 0,
                    std::string(encoder.status().message()).c_str());
        if (!unknown) ++failures;
        continue;
      }
      for (int seq : seqs) {
        const double attn_per_seq = shape.layers * 4.0 * seq * seq * h;
        for (int batch : batches) {
          const std::vector<std::vector<int32_t>> ids = RandomIds(rng, batch, seq);
          const double seconds_per_batch =
              SecondsPerEncode(encoder->get(), ids, seconds,
                               variant + " " + dtype + " seq " + std::to_string(seq) + " batch " +
                                   std::to_string(batch));
          if (seconds_per_batch < 0) {
            ++failures;
            continue;
          }
          const double per_batch = seconds_per_batch;
          const double flops = batch * (seq * dense_per_token + attn_per_seq);
          const double tflops = flops / per_batch / 1e12;
          std::printf("%-13s %-9s %5d %6d %12.0f %10.3f %9.1f %6.1f%%\n", variant.c_str(),
                      dtype.c_str(), seq, batch, batch / per_batch, per_batch * 1e3, tflops,
                      100.0 * tflops / peak_tflops);
          std::printf(
              "GPU-CHECK bench variant=%s dtype=%s seq=%d batch=%d sentences_per_s=%.1f "
              "ms_per_batch=%.4f tflops=%.2f fraction_of_peak=%.4f\n",
              variant.c_str(), dtype.c_str(), seq, batch, batch / per_batch, per_batch * 1e3,
              tflops, tflops / peak_tflops);
          ++measured;
        }
      }
    }
  }
  if (HasFlag(argc, argv, "--ablate"))
    failures += RunAblation(argc, argv, weights.view, rng, &measured);
  if (auto stats = tipperary::kernels::QueryGpuStats(0); stats.ok()) {
    std::printf("gpu memory used %.2f / %.2f GiB, utilization %.0f%%\n",
                stats->memory_used_bytes / 1073741824.0, stats->memory_total_bytes / 1073741824.0,
                stats->utilization_ratio * 100);
  } else {
    std::printf("NVML: %s\n", stats.status().ToString().c_str());
  }
  if (measured == 0) std::printf("gpu_encoder_bench: nothing measured\n");
  return failures == 0 && measured > 0 ? 0 : 1;
}
