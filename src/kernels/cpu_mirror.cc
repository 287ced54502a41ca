#include "tipperary/kernels/cpu_mirror.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tipperary/kernels/fused_cpu_mirror.h"
#include "tipperary/kernels/fused_forward_pass.h"
#include "tipperary/kernels/math.h"

namespace tipperary::kernels {
namespace {

float Load(GemmType t, const void* base, size_t i) {
  const uint16_t bits = static_cast<const uint16_t*>(base)[i];
  return t == GemmType::kFloat16 ? HalfBitsToFloat(bits) : Bf16BitsToFloat(bits);
}

void Store(GemmType t, void* base, size_t i, float v) {
  static_cast<uint16_t*>(base)[i] =
      t == GemmType::kFloat16 ? FloatToHalfBits(v) : FloatToBf16Bits(v);
}

absl::Status Check16(GemmType t) {
  return t == GemmType::kFloat32
             ? absl::InvalidArgumentError("the forward pass stores activations in fp16/bf16")
             : absl::OkStatus();
}

class CpuMirrorEncoder final : public model::Encoder {
 public:
  CpuMirrorEncoder(const CudaEncoderOptions& options, const BertWeightsHost& w, GemmType dtype,
                   ForwardOps* ops)
      : options_(options),
        dtype_(dtype),
        hidden_(w.hidden),
        vocab_(w.vocab),
        ops_(ops != nullptr ? ops : &own_ops_) {
    limits_ =
        ComputeForwardLimits(options.max_seq_len, w.max_position, options.max_batch_tokens,
                             options.max_batch_size, w.heads, options.attention_workspace_bytes);
    const ForwardBufferSizes sz = ComputeForwardBufferSizes(limits_, w.hidden, w.intermediate);
    // Separate allocations, as cudaMalloc gives the GPU: an overrun lands in another vector's
    // heap block rather than silently in the next buffer.
    for (auto [vec, n] :
         {std::pair{&x_, sz.x}, std::pair{&qkv_, sz.qkv}, std::pair{&qkv_split_, sz.qkv_split},
          std::pair{&ctx_heads_, sz.ctx_heads}, std::pair{&ctx_, sz.ctx}, std::pair{&tmp_, sz.tmp},
          std::pair{&inter_, sz.inter}}) {
      vec->assign(n, 0);
    }
    scores_.assign(sz.scores_floats, 0.0f);
    buffers_ = {x_.data(),         qkv_.data(),    qkv_split_.data(),
                ctx_heads_.data(), ctx_.data(),    tmp_.data(),
                inter_.data(),     scores_.data(), static_cast<int64_t>(sz.scores_floats)};
    ids_.assign(static_cast<size_t>(limits_.max_tokens) + limits_.max_batch, 0);
    if (options.variant == "fused") ids_.assign(PackedInputCapacity(limits_), 0);
    pooled_.assign(static_cast<size_t>(limits_.max_batch) * w.hidden, 0.0f);
    // Validated by ValidateCudaEncoderInputs before construction (the bench's ablation only).
    scales_ = ParseStageScales(options.ablate).value_or(StageScales());

    const size_t h = static_cast<size_t>(w.hidden);
    const size_t hi = h * static_cast<size_t>(w.intermediate);
    model_.dtype = dtype;
    model_.hidden = w.hidden;
    model_.heads = w.heads;
    model_.intermediate = w.intermediate;
    model_.eps = w.ln_eps;
    model_.cls_pooling = w.cls_pooling;
    model_.word_emb = Matrix({w.word_emb}, size_t(w.vocab) * h);
    model_.pos_emb = Matrix({w.pos_emb}, size_t(w.max_position) * h);
    model_.type_emb = Matrix({w.type_emb}, size_t(w.type_vocab) * h);
    model_.emb_ln_gamma = Vector({w.emb_ln_gamma}, h);
    model_.emb_ln_beta = Vector({w.emb_ln_beta}, h);
    for (const BertLayerWeightsHost& l : w.layer) {
      ForwardLayer d;
      d.qkv_w = Matrix({l.query_w, l.key_w, l.value_w}, h * h);
      d.qkv_b = Vector({l.query_b, l.key_b, l.value_b}, h);
      d.attn_out_w = Matrix({l.attn_out_w}, h * h);
      d.attn_out_b = Vector({l.attn_out_b}, h);
      d.attn_ln_gamma = Vector({l.attn_ln_gamma}, h);
      d.attn_ln_beta = Vector({l.attn_ln_beta}, h);
      d.ffn_in_w = Matrix({l.ffn_in_w}, hi);
      d.ffn_in_b = Vector({l.ffn_in_b}, static_cast<size_t>(w.intermediate));
      d.ffn_out_w = Matrix({l.ffn_out_w}, hi);
      d.ffn_out_b = Vector({l.ffn_out_b}, h);
      d.ffn_ln_gamma = Vector({l.ffn_ln_gamma}, h);
      d.ffn_ln_beta = Vector({l.ffn_ln_beta}, h);
      model_.layers.push_back(d);
    }
  }

  absl::Status Encode(const std::vector<std::vector<int32_t>>& token_ids,
                      std::vector<float>* out) override {
    if (absl::Status s = ValidateTokenIds(token_ids, limits_.max_seq_real, vocab_); !s.ok()) {
      return s;
    }
    out->assign(token_ids.size() * hidden_, 0.0f);
    if (options_.variant == "fused") {
      // The fused variant's pass as the GPU encoder runs it (fused_forward_pass.h), on
      // FusedCpuMirrorOps; a test's own ForwardOps applies to the reference variant only.
      for (const PackedSpan& span : PlanPackedSpans(token_ids, limits_)) {
        const int tiles = PackPackedSpan(token_ids, span, ids_.data());
        if (absl::Status s =
                RunFusedForwardPass(model_, buffers_, PackedInputAt(ids_.data(), span, tiles), span,
                                    options_.normalize, pooled_.data(), &fused_ops_, scales_);
            !s.ok()) {
          return s;
        }
        std::memcpy(out->data() + span.begin * hidden_, pooled_.data(),
                    span.count * hidden_ * sizeof(float));
      }
      return absl::OkStatus();
    }
    for (const ForwardSpan& span : PlanForwardSpans(token_ids, limits_)) {
      PackSpan(token_ids, span, ids_.data());
      const int batch = static_cast<int>(span.count);
      if (absl::Status s = RunForwardPass(
              model_, buffers_, ids_.data(), ids_.data() + static_cast<size_t>(batch) * span.seq,
              batch, span.seq, options_.normalize, pooled_.data(), ops_, scales_);
          !s.ok()) {
        return s;
      }
      std::memcpy(out->data() + span.begin * hidden_, pooled_.data(),
                  span.count * hidden_ * sizeof(float));
    }
    return absl::OkStatus();
  }

  int hidden_size() const override { return hidden_; }
  std::string backend_name() const override { return "cuda-cpu-mirror"; }
  std::string dtype() const override {
    return dtype_ == GemmType::kFloat16 ? "float16" : "bfloat16";
  }

 private:
  const void* Matrix(std::initializer_list<const float*> parts, size_t elements) {
    matrices_.push_back(ToStorageBits(dtype_, parts, elements));
    return matrices_.back().data();
  }
  const float* Vector(std::initializer_list<const float*> parts, size_t elements) {
    std::vector<float> v;
    for (const float* p : parts) v.insert(v.end(), p, p + elements);
    vectors_.push_back(std::move(v));
    return vectors_.back().data();
  }

  const CudaEncoderOptions options_;
  const GemmType dtype_;
  const int hidden_;
  const int vocab_;
  CpuMirrorOps own_ops_;
  FusedCpuMirrorOps fused_ops_;
  ForwardOps* const ops_;
  ForwardLimits limits_;
  ForwardModel model_;
  ForwardBuffers buffers_;
  // std::vector<std::vector<>> keeps each element's data() stable as more are added.
  std::vector<std::vector<uint16_t>> matrices_;
  std::vector<std::vector<float>> vectors_;
  std::vector<uint16_t> x_, qkv_, qkv_split_, ctx_heads_, ctx_, tmp_, inter_;
  std::vector<float> scores_;
  std::vector<int32_t> ids_;
  std::vector<float> pooled_;
  StageScales scales_;  // options_.ablate parsed
};

}  // namespace

absl::Status CpuMirrorOps::Gemm(const GemmCall& call) { return RunGemmOnCpu(call); }

absl::Status CpuMirrorOps::EmbeddingLayerNorm(GemmType dt, const int32_t* ids, int tokens, int seq,
                                              const void* word_emb, const void* pos_emb,
                                              const void* type_emb, const float* gamma,
                                              const float* beta, int hidden, float eps, void* out) {
  if (absl::Status s = Check16(dt); !s.ok()) return s;
  std::vector<float> row(hidden);
  for (int t = 0; t < tokens; ++t) {
    const size_t word = static_cast<size_t>(ids[t]) * hidden;
    const size_t pos = static_cast<size_t>(t % seq) * hidden;
    for (int i = 0; i < hidden; ++i) {
      row[i] = Load(dt, word_emb, word + i) + Load(dt, pos_emb, pos + i) + Load(dt, type_emb, i);
    }
    LayerNormRow(row.data(), gamma, beta, hidden, eps, row.data());
    for (int i = 0; i < hidden; ++i) Store(dt, out, static_cast<size_t>(t) * hidden + i, row[i]);
  }
  return absl::OkStatus();
}

absl::Status CpuMirrorOps::SplitQkvBias(GemmType dt, const void* qkv, const float* bias, int batch,
                                        int seq, int heads, int head_dim, void* q, void* k,
                                        void* v) {
  if (absl::Status s = Check16(dt); !s.ok()) return s;
  const int width = heads * head_dim;
  const size_t total = static_cast<size_t>(batch) * seq * 3 * width;
  for (size_t idx = 0; idx < total; ++idx) {
    const size_t t = idx / (3 * width);
    const int c = static_cast<int>(idx % (3 * width));
    const int which = c / width;
    const int within = c % width;
    const int h = within / head_dim;
    const int d = within % head_dim;
    const size_t b = t / seq;
    const size_t s = t % seq;
    void* dst = which == 0 ? q : (which == 1 ? k : v);
    Store(dt, dst, ((b * heads + h) * seq + s) * head_dim + d, Load(dt, qkv, idx) + bias[c]);
  }
  return absl::OkStatus();
}

absl::Status CpuMirrorOps::MaskedSoftmax(GemmType dt, float* scores, const int32_t* lengths,
                                         int batch, int heads, int seq, float scale) {
  if (absl::Status s = Check16(dt); !s.ok()) return s;
  std::vector<float> row(seq);
  std::vector<int32_t> mask(seq);
  for (int bh = 0; bh < batch * heads; ++bh) {
    const int valid = lengths[bh / heads];
    for (int j = 0; j < seq; ++j) mask[j] = j < valid ? 1 : 0;
    for (int i = 0; i < seq; ++i) {
      float* src = scores + (static_cast<size_t>(bh) * seq + i) * seq;
      std::copy(src, src + seq, row.begin());
      MaskedSoftmaxRow(row.data(), mask.data(), seq, scale);
      // In place, as the kernel: the dtype row at the start of the row's own fp32 storage.
      for (int j = 0; j < seq; ++j) Store(dt, src, j, row[j]);
    }
  }
  return absl::OkStatus();
}

absl::Status CpuMirrorOps::MergeHeads(GemmType dt, const void* ctx, int batch, int seq, int heads,
                                      int head_dim, void* out) {
  if (absl::Status s = Check16(dt); !s.ok()) return s;
  const int width = heads * head_dim;
  const size_t total = static_cast<size_t>(batch) * seq * width;
  for (size_t idx = 0; idx < total; ++idx) {
    const size_t t = idx / width;
    const int c = static_cast<int>(idx % width);
    const int h = c / head_dim;
    const int d = c % head_dim;
    const size_t b = t / seq;
    const size_t s = t % seq;
    static_cast<uint16_t*>(out)[idx] =
        static_cast<const uint16_t*>(ctx)[((b * heads + h) * seq + s) * head_dim + d];
  }
  return absl::OkStatus();
}

absl::Status CpuMirrorOps::BiasGelu(GemmType dt, void* x, const float* bias, int rows, int cols) {
  if (absl::Status s = Check16(dt); !s.ok()) return s;
  const size_t total = static_cast<size_t>(rows) * cols;
  for (size_t idx = 0; idx < total; ++idx) {
    Store(dt, x, idx, Gelu(Load(dt, x, idx) + bias[idx % cols]));
  }
  return absl::OkStatus();
}

absl::Status CpuMirrorOps::BiasResidualLayerNorm(GemmType dt, const void* x, const float* bias,
                                                 const void* residual, const float* gamma,
                                                 const float* beta, int rows, int hidden, float eps,
                                                 void* out) {
  if (absl::Status s = Check16(dt); !s.ok()) return s;
  std::vector<float> row(hidden);
  for (int r = 0; r < rows; ++r) {
    const size_t base = static_cast<size_t>(r) * hidden;
    for (int i = 0; i < hidden; ++i) {
      row[i] = Load(dt, x, base + i) + bias[i] + Load(dt, residual, base + i);
    }
    LayerNormRow(row.data(), gamma, beta, hidden, eps, row.data());
    for (int i = 0; i < hidden; ++i) Store(dt, out, base + i, row[i]);
  }
  return absl::OkStatus();
}

absl::Status CpuMirrorOps::MaskedMeanPool(GemmType dt, const void* hidden_states,
                                          const int32_t* lengths, int batch, int seq, int hidden,
                                          bool cls, bool normalize, float* out) {
  if (absl::Status s = Check16(dt); !s.ok()) return s;
  std::vector<float> row(hidden);
  for (int b = 0; b < batch; ++b) {
    const int count = cls ? 1 : lengths[b];
    float* acc = out + static_cast<size_t>(b) * hidden;
    std::fill(acc, acc + hidden, 0.0f);
    for (int s = 0; s < count; ++s) {
      const size_t base = (static_cast<size_t>(b) * seq + s) * hidden;
      for (int i = 0; i < hidden; ++i) row[i] = Load(dt, hidden_states, base + i);
      MeanPoolAccumulate(acc, row.data(), hidden);
    }
    MeanPoolFinish(acc, hidden, count);
    if (normalize) L2NormalizeInPlace(acc, hidden);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<model::Encoder>> CreateCpuMirrorEncoder(
    const CudaEncoderOptions& options, const BertWeightsHost& weights, ForwardOps* ops) {
  absl::StatusOr<GemmType> dtype = ValidateCudaEncoderInputs(options, weights);
  if (!dtype.ok()) return dtype.status();
  CudaEncoderOptions resolved = options;
  resolved.variant = ResolveCudaVariant(options.variant, weights);
  return std::unique_ptr<model::Encoder>(
      std::make_unique<CpuMirrorEncoder>(resolved, weights, *dtype, ops));
}

}  // namespace tipperary::kernels
