#include "tipperary/kernels/forward_pass.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "tipperary/kernels/linear_gemm.h"
#include "tipperary/kernels/math.h"

namespace tipperary::kernels {
namespace {

int RoundUp(int v, int m) { return (v + m - 1) / m * m; }

// Bytes of `elements` elements of `type` past `base`.
void* At(void* base, GemmType type, size_t elements) {
  return static_cast<char*>(base) + elements * GemmTypeSize(type);
}

// y[rows, out] = x[rows, in] * w^T, w in Linear layout [out, in] (linear_gemm.h).
GemmCall Linear(const char* name, GemmType dtype, const void* x, const void* w, int rows, int in,
                int out_dim, void* y) {
  return LinearGemmCall(name, x, w, rows, in, out_dim, y, dtype);
}

// The stage's error with its name in front; payloads (model::EncoderUnusableError's) kept.
absl::Status InStage(const absl::Status& s, const char* stage, int layer) {
  absl::Status out(s.code(), absl::StrCat(StageName(stage, layer), ": ", s.message()));
  s.ForEachPayload(
      [&out](absl::string_view url, const absl::Cord& payload) { out.SetPayload(url, payload); });
  return out;
}

#define TIPPERARY_STAGE(ops, stage, layer, expr)                                         \
  do {                                                                                   \
    if (absl::Status tipperary_s = (expr); !tipperary_s.ok()) {                          \
      return InStage(tipperary_s, stage, layer);                                         \
    }                                                                                    \
    if (absl::Status tipperary_s = (ops)->AfterStage(stage, layer); !tipperary_s.ok()) { \
      return tipperary_s;                                                                \
    }                                                                                    \
  } while (0)

// The stage issued as many times as the ablation says (1 normally; stage_ablation.h).
#define TIPPERARY_SCALED_STAGE(ops, scales, which, stage, layer, expr)               \
  for (int tipperary_rep = 0; tipperary_rep < (scales).Of(which); ++tipperary_rep) { \
    TIPPERARY_STAGE(ops, stage, layer, expr);                                        \
  }

absl::Status Attention(const ForwardModel& m, const ForwardBuffers& buf, const int32_t* lengths,
                       int batch, int seq, int layer, ForwardOps* ops) {
  const GemmType dt = m.dtype;
  const int heads = m.heads;
  const int head_dim = m.hidden / m.heads;
  const size_t head_elems = static_cast<size_t>(seq) * head_dim;  // one (b, h) of q/k/v
  const size_t plane = static_cast<size_t>(batch) * heads * head_elems;
  void* q = buf.qkv_split;
  void* k = At(buf.qkv_split, dt, plane);
  void* v = At(buf.qkv_split, dt, 2 * plane);
  const int64_t per_sequence = int64_t{heads} * seq * seq;
  // The softmax grid's y dimension (batch x heads) is limited to 65535.
  const int64_t fit = std::min<int64_t>(buf.scores_capacity_floats / per_sequence, 65535 / heads);
  const int chunk = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(batch, fit)));
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  for (int b0 = 0; b0 < batch; b0 += chunk) {
    const int bc = std::min(chunk, batch - b0);
    const size_t offset = static_cast<size_t>(b0) * heads * head_elems;
    // scores[bh][i][j] = q_i . k_j : column-major C[j, i] = K[j, :] . Q[i, :].
    GemmCall qk;
    qk.name = "attention.qk";
    qk.trans_a = GemmOp::kT;
    qk.trans_b = GemmOp::kN;
    qk.m = seq;
    qk.n = seq;
    qk.k = head_dim;
    qk.a = At(k, dt, offset);
    qk.lda = head_dim;
    qk.stride_a = static_cast<int64_t>(head_elems);
    qk.b = At(q, dt, offset);
    qk.ldb = head_dim;
    qk.stride_b = static_cast<int64_t>(head_elems);
    qk.c = buf.scores;
    qk.ldc = seq;
    qk.stride_c = int64_t{seq} * seq;
    qk.batch = bc * heads;
    qk.a_type = qk.b_type = dt;
    qk.c_type = GemmType::kFloat32;
    TIPPERARY_STAGE(ops, "attention.qk", layer, ops->Gemm(qk));
    TIPPERARY_STAGE(ops, "attention.softmax", layer,
                    ops->MaskedSoftmax(dt, buf.scores, lengths + b0, bc, heads, seq, scale));
    // ctx[bh][i][:] = sum_j P[i][j] v_j, P being the in-place dtype matrix (ld 2*seq).
    GemmCall pv;
    pv.name = "attention.pv";
    pv.trans_a = GemmOp::kN;
    pv.trans_b = GemmOp::kN;
    pv.m = head_dim;
    pv.n = seq;
    pv.k = seq;
    pv.a = At(v, dt, offset);
    pv.lda = head_dim;
    pv.stride_a = static_cast<int64_t>(head_elems);
    pv.b = buf.scores;
    pv.ldb = 2 * int64_t{seq};
    pv.stride_b = 2 * int64_t{seq} * seq;
    pv.c = At(buf.ctx_heads, dt, offset);
    pv.ldc = head_dim;
    pv.stride_c = static_cast<int64_t>(head_elems);
    pv.batch = bc * heads;
    pv.a_type = pv.b_type = pv.c_type = dt;
    TIPPERARY_STAGE(ops, "attention.pv", layer, ops->Gemm(pv));
  }
  return absl::OkStatus();
}

}  // namespace

std::string StageName(const char* stage, int layer) {
  return layer < 0 ? std::string(stage) : absl::StrCat(stage, " in layer ", layer);
}

ForwardLimits ComputeForwardLimits(int max_seq_len, int max_position, int max_batch_tokens,
                                   int max_batch_size, int heads,
                                   int64_t attention_workspace_bytes) {
  ForwardLimits l;
  l.max_seq_real = std::min(max_seq_len, max_position);
  l.max_seq = RoundUp(l.max_seq_real, kSeqAlign);
  l.max_tokens = std::max(max_batch_tokens, l.max_seq);
  l.max_batch = max_batch_size;
  const int64_t per_sequence_scores = int64_t{heads} * l.max_seq * l.max_seq * 4;
  l.scores_bytes = std::max(per_sequence_scores, attention_workspace_bytes);
  return l;
}

ForwardBufferSizes ComputeForwardBufferSizes(const ForwardLimits& limits, int hidden,
                                             int intermediate) {
  const size_t t = static_cast<size_t>(limits.max_tokens);
  const size_t h = static_cast<size_t>(hidden);
  ForwardBufferSizes s;
  s.x = t * h;
  s.qkv = t * 3 * h;
  s.qkv_split = t * 3 * h;
  s.ctx_heads = t * h;
  s.ctx = t * h;
  s.tmp = t * h;
  s.inter = t * static_cast<size_t>(intermediate);
  s.scores_floats = static_cast<size_t>(limits.scores_bytes / 4);
  return s;
}

std::vector<ForwardSpan> PlanForwardSpans(const std::vector<std::vector<int32_t>>& token_ids,
                                          const ForwardLimits& limits) {
  std::vector<ForwardSpan> spans;
  const size_t n = token_ids.size();
  size_t next = 0;
  while (next < n) {
    ForwardSpan span{next, 0, 0};
    while (next < n && span.count < static_cast<size_t>(limits.max_batch)) {
      const int s = RoundUp(static_cast<int>(token_ids[next].size()), kSeqAlign);
      const int new_seq = std::max(span.seq, s);
      if (static_cast<int64_t>(new_seq) * static_cast<int64_t>(span.count + 1) >
          limits.max_tokens) {
        break;
      }
      span.seq = new_seq;
      ++span.count;
      ++next;
    }
    spans.push_back(span);
  }
  return spans;
}

void PackSpan(const std::vector<std::vector<int32_t>>& token_ids, const ForwardSpan& span,
              int32_t* dst) {
  const int batch = static_cast<int>(span.count);
  const size_t seq = static_cast<size_t>(span.seq);
  int32_t* lengths = dst + batch * seq;
  for (int b = 0; b < batch; ++b) {
    const auto& row = token_ids[span.begin + b];
    std::memcpy(dst + b * seq, row.data(), row.size() * sizeof(int32_t));
    std::fill(dst + b * seq + row.size(), dst + (b + 1) * seq, 0);
    lengths[b] = static_cast<int32_t>(row.size());
  }
}

absl::Status ValidateTokenIds(const std::vector<std::vector<int32_t>>& token_ids, int max_seq_real,
                              int vocab) {
  for (size_t i = 0; i < token_ids.size(); ++i) {
    const auto& row = token_ids[i];
    if (row.empty()) return absl::InvalidArgumentError(absl::StrCat("sequence ", i, " is empty"));
    if (row.size() > static_cast<size_t>(max_seq_real)) {
      return absl::InvalidArgumentError(absl::StrCat("sequence ", i, " has ", row.size(),
                                                     " tokens; the limit is ", max_seq_real));
    }
    for (int32_t id : row) {
      if (id < 0 || id >= vocab) {
        return absl::InvalidArgumentError(
            absl::StrCat("sequence ", i, " has token id ", id, " outside [0, ", vocab, ")"));
      }
    }
  }
  return absl::OkStatus();
}

std::vector<uint16_t> ToStorageBits(GemmType dtype, std::initializer_list<const float*> parts,
                                    size_t elements) {
  std::vector<uint16_t> out;
  out.reserve(parts.size() * elements);
  for (const float* p : parts) {
    for (size_t i = 0; i < elements; ++i) {
      out.push_back(dtype == GemmType::kFloat16 ? FloatToHalfBits(p[i]) : FloatToBf16Bits(p[i]));
    }
  }
  return out;
}

absl::Status RunForwardPass(const ForwardModel& m, const ForwardBuffers& buf, const int32_t* ids,
                            const int32_t* lengths, int batch, int seq, bool normalize, float* out,
                            ForwardOps* ops, const StageScales& scales) {
  const GemmType dt = m.dtype;
  const int tokens = batch * seq;
  const int hidden = m.hidden;
  const int head_dim = m.hidden / m.heads;
  const size_t plane = static_cast<size_t>(tokens) * hidden;
  TIPPERARY_SCALED_STAGE(
      ops, scales, AblationStage::kEmbedding, "embedding_layernorm", -1,
      ops->EmbeddingLayerNorm(dt, ids, tokens, seq, m.word_emb, m.pos_emb, m.type_emb,
                              m.emb_ln_gamma, m.emb_ln_beta, hidden, m.eps, buf.x));
  for (int i = 0; i < static_cast<int>(m.layers.size()); ++i) {
    const ForwardLayer& l = m.layers[i];
    TIPPERARY_SCALED_STAGE(ops, scales, AblationStage::kQkvGemm, "attention.qkv", i,
                           ops->Gemm(Linear("attention.qkv", dt, buf.x, l.qkv_w, tokens, hidden,
                                            3 * hidden, buf.qkv)));
    TIPPERARY_SCALED_STAGE(
        ops, scales, AblationStage::kQkvPermute, "attention.split_qkv_bias", i,
        ops->SplitQkvBias(dt, buf.qkv, l.qkv_b, batch, seq, m.heads, head_dim, buf.qkv_split,
                          At(buf.qkv_split, dt, plane), At(buf.qkv_split, dt, 2 * plane)));
    for (int rep = 0; rep < scales.Of(AblationStage::kAttention); ++rep) {
      if (absl::Status s = Attention(m, buf, lengths, batch, seq, i, ops); !s.ok()) return s;
    }
    TIPPERARY_SCALED_STAGE(
        ops, scales, AblationStage::kQkvPermute, "attention.merge_heads", i,
        ops->MergeHeads(dt, buf.ctx_heads, batch, seq, m.heads, head_dim, buf.ctx));
    TIPPERARY_SCALED_STAGE(ops, scales, AblationStage::kAttnOutGemm, "attention.output", i,
                           ops->Gemm(Linear("attention.output", dt, buf.ctx, l.attn_out_w, tokens,
                                            hidden, hidden, buf.tmp)));
    TIPPERARY_SCALED_STAGE(
        ops, scales, AblationStage::kLayerNorm, "attention.layernorm", i,
        ops->BiasResidualLayerNorm(dt, buf.tmp, l.attn_out_b, buf.x, l.attn_ln_gamma,
                                   l.attn_ln_beta, tokens, hidden, m.eps, buf.x));
    TIPPERARY_SCALED_STAGE(ops, scales, AblationStage::kFfnGemms, "ffn.in", i,
                           ops->Gemm(Linear("ffn.in", dt, buf.x, l.ffn_in_w, tokens, hidden,
                                            m.intermediate, buf.inter)));
    TIPPERARY_SCALED_STAGE(ops, scales, AblationStage::kGelu, "ffn.bias_gelu", i,
                           ops->BiasGelu(dt, buf.inter, l.ffn_in_b, tokens, m.intermediate));
    TIPPERARY_SCALED_STAGE(ops, scales, AblationStage::kFfnGemms, "ffn.out", i,
                           ops->Gemm(Linear("ffn.out", dt, buf.inter, l.ffn_out_w, tokens,
                                            m.intermediate, hidden, buf.tmp)));
    TIPPERARY_SCALED_STAGE(
        ops, scales, AblationStage::kLayerNorm, "ffn.layernorm", i,
        ops->BiasResidualLayerNorm(dt, buf.tmp, l.ffn_out_b, buf.x, l.ffn_ln_gamma, l.ffn_ln_beta,
                                   tokens, hidden, m.eps, buf.x));
  }
  TIPPERARY_SCALED_STAGE(
      ops, scales, AblationStage::kPooling, "pooling", -1,
      ops->MaskedMeanPool(dt, buf.x, lengths, batch, seq, hidden, m.cls_pooling, normalize, out));
  return absl::OkStatus();
}

}  // namespace tipperary::kernels
