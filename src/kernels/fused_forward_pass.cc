// The fused variant's forward pass (fused_forward_pass.h): plain C++, shared by the GPU encoder
// and the CPU mirror.
#include "tipperary/kernels/fused_forward_pass.h"

#include <algorithm>
#include <cstring>

#include "tipperary/kernels/fused_math.h"
#include "tipperary/kernels/linear_gemm.h"

namespace tipperary::kernels {
namespace {

// Issues one stage and, when it was accepted, lets the ops check it (the GPU's debug mode).
#define TIPPERARY_FUSED_STAGE(ops, stage, layer, expr)                                   \
  do {                                                                                   \
    if (absl::Status tipperary_s = (expr); !tipperary_s.ok()) return tipperary_s;        \
    if (absl::Status tipperary_s = (ops)->AfterStage(stage, layer); !tipperary_s.ok()) { \
      return tipperary_s;                                                                \
    }                                                                                    \
  } while (0)

// The stage issued as many times as the ablation says (1 normally; stage_ablation.h).
#define TIPPERARY_SCALED_FUSED_STAGE(ops, scales, which, stage, layer, expr)         \
  for (int tipperary_rep = 0; tipperary_rep < (scales).Of(which); ++tipperary_rep) { \
    TIPPERARY_FUSED_STAGE(ops, stage, layer, expr);                                  \
  }

}  // namespace

bool FusedShapeSupported(int hidden, int heads, int intermediate) {
  if (heads <= 0 || hidden <= 0 || hidden % heads != 0) return false;
  if (hidden % kVecElems != 0 || hidden > kWarpRowMaxWidth) return false;
  const int head_dim = hidden / heads;
  return (head_dim == 32 || head_dim == 64) && intermediate > 0 && intermediate % kVecElems == 0;
}

std::vector<PackedSpan> PlanPackedSpans(const std::vector<std::vector<int32_t>>& token_ids,
                                        const ForwardLimits& limits) {
  std::vector<PackedSpan> spans;
  const size_t n = token_ids.size();
  size_t next = 0;
  while (next < n) {
    PackedSpan span{next, 0, 0};
    while (next < n && span.count < static_cast<size_t>(limits.max_batch)) {
      const int len = static_cast<int>(token_ids[next].size());
      if (span.count > 0 && int64_t{span.tokens} + len > limits.max_tokens) break;
      span.tokens += len;
      ++span.count;
      ++next;
    }
    spans.push_back(span);
  }
  return spans;
}

size_t PackedInputCapacity(const ForwardLimits& limits) {
  const size_t t = static_cast<size_t>(limits.max_tokens);
  const size_t b = static_cast<size_t>(limits.max_batch);
  const size_t tiles =
      static_cast<size_t>(MaxPackedTiles(limits.max_tokens, limits.max_batch, kAttentionQueryTile));
  return 2 * t + b + 1 + 2 * tiles;
}

size_t PackedInputSize(const PackedSpan& span, int tile_count) {
  return 2 * static_cast<size_t>(span.tokens) + span.count + 1 +
         2 * static_cast<size_t>(tile_count);
}

PackedInput PackedInputAt(const int32_t* base, const PackedSpan& span, int tile_count) {
  PackedInput in;
  in.ids = base;
  in.positions = base + span.tokens;
  in.cu_seqlens = in.positions + span.tokens;
  in.tiles = in.cu_seqlens + span.count + 1;
  in.tile_count = tile_count;
  return in;
}

int PackPackedSpan(const std::vector<std::vector<int32_t>>& token_ids, const PackedSpan& span,
                   int32_t* dst) {
  const int batch = static_cast<int>(span.count);
  std::vector<int32_t> lengths(span.count);
  int32_t* ids = dst;
  for (int b = 0; b < batch; ++b) {
    const auto& row = token_ids[span.begin + b];
    std::memcpy(ids, row.data(), row.size() * sizeof(int32_t));
    ids += row.size();
    lengths[b] = static_cast<int32_t>(row.size());
  }
  int32_t* positions = dst + span.tokens;
  int32_t* cu_seqlens = positions + span.tokens;
  int32_t* tiles = cu_seqlens + batch + 1;
  return WritePackedLayout(lengths.data(), batch, kAttentionQueryTile, cu_seqlens, positions,
                           tiles);
}

absl::Status RunFusedForwardPass(const ForwardModel& m, const ForwardBuffers& buf,
                                 const PackedInput& in, const PackedSpan& span, bool normalize,
                                 float* out, FusedForwardOps* ops, const StageScales& scales) {
  const GemmType dt = m.dtype;
  const int tokens = span.tokens;
  const int batch = static_cast<int>(span.count);
  const int hidden = m.hidden;
  const int head_dim = m.hidden / m.heads;
  TIPPERARY_SCALED_FUSED_STAGE(
      ops, scales, AblationStage::kEmbedding, "fused.embedding_layernorm", -1,
      ops->PackedEmbeddingLayerNorm(dt, in.ids, in.positions, tokens, m.word_emb, m.pos_emb,
                                    m.type_emb, m.emb_ln_gamma, m.emb_ln_beta, hidden, m.eps,
                                    buf.x));
  for (int i = 0; i < static_cast<int>(m.layers.size()); ++i) {
    const ForwardLayer& l = m.layers[i];
    // No bias: the attention kernel adds it as it reads Q, K and V.
    TIPPERARY_SCALED_FUSED_STAGE(
        ops, scales, AblationStage::kQkvGemm, "fused.attention.qkv", i,
        ops->Gemm(LinearGemmCall("fused.attention.qkv", buf.x, l.qkv_w, tokens, hidden, 3 * hidden,
                                 buf.qkv, dt)));
    TIPPERARY_SCALED_FUSED_STAGE(ops, scales, AblationStage::kAttention, "fused.attention.varlen",
                                 i,
                                 ops->VarlenAttention(dt, buf.qkv, l.qkv_b, in.cu_seqlens, in.tiles,
                                                      in.tile_count, m.heads, head_dim, buf.ctx));
    TIPPERARY_SCALED_FUSED_STAGE(
        ops, scales, AblationStage::kAttnOutGemm, "fused.attention.output", i,
        ops->Gemm(LinearGemmCall("fused.attention.output", buf.ctx, l.attn_out_w, tokens, hidden,
                                 hidden, buf.tmp, dt)));
    TIPPERARY_SCALED_FUSED_STAGE(
        ops, scales, AblationStage::kLayerNorm, "fused.attention.layernorm", i,
        ops->WarpBiasResidualLayerNorm(dt, buf.tmp, l.attn_out_b, buf.x, l.attn_ln_gamma,
                                       l.attn_ln_beta, tokens, hidden, m.eps, buf.x));
    TIPPERARY_SCALED_FUSED_STAGE(ops, scales, AblationStage::kFfnGemms, "fused.ffn.in", i,
                                 ops->Gemm(LinearGemmCall("fused.ffn.in", buf.x, l.ffn_in_w, tokens,
                                                          hidden, m.intermediate, buf.inter, dt)));
    TIPPERARY_SCALED_FUSED_STAGE(
        ops, scales, AblationStage::kGelu, "fused.ffn.bias_gelu", i,
        ops->BiasGeluVec(dt, buf.inter, l.ffn_in_b, tokens, m.intermediate));
    TIPPERARY_SCALED_FUSED_STAGE(
        ops, scales, AblationStage::kFfnGemms, "fused.ffn.out", i,
        ops->Gemm(LinearGemmCall("fused.ffn.out", buf.inter, l.ffn_out_w, tokens, m.intermediate,
                                 hidden, buf.tmp, dt)));
    TIPPERARY_SCALED_FUSED_STAGE(
        ops, scales, AblationStage::kLayerNorm, "fused.ffn.layernorm", i,
        ops->WarpBiasResidualLayerNorm(dt, buf.tmp, l.ffn_out_b, buf.x, l.ffn_ln_gamma,
                                       l.ffn_ln_beta, tokens, hidden, m.eps, buf.x));
  }
  TIPPERARY_SCALED_FUSED_STAGE(
      ops, scales, AblationStage::kPooling, "fused.pooling", -1,
      ops->PackedMeanPool(dt, buf.x, in.cu_seqlens, batch, hidden, m.cls_pooling, normalize, out));
  return absl::OkStatus();
}

}  // namespace tipperary::kernels
