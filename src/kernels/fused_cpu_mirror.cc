// FusedCpuMirrorOps (fused_cpu_mirror.h): the fused kernels' algorithms on host arrays.
#include "tipperary/kernels/fused_cpu_mirror.h"

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tipperary/kernels/fused_math.h"
#include "tipperary/kernels/math.h"

namespace tipperary::kernels {
namespace {

absl::Status Check16(GemmType dt) {
  if (dt == GemmType::kFloat16 || dt == GemmType::kBFloat16) return absl::OkStatus();
  return absl::InvalidArgumentError("the fused stages store fp16 or bf16 only");
}

float Load(GemmType dt, const void* p, size_t i) {
  const uint16_t b = static_cast<const uint16_t*>(p)[i];
  return dt == GemmType::kFloat16 ? HalfBitsToFloat(b) : Bf16BitsToFloat(b);
}

void Store(GemmType dt, void* p, size_t i, float v) {
  static_cast<uint16_t*>(p)[i] = dt == GemmType::kFloat16 ? FloatToHalfBits(v) : FloatToBf16Bits(v);
}

// The kernels' shape checks, so the mirror refuses what the GPU would.
bool RowOk(int hidden) {
  return hidden > 0 && hidden % kVecElems == 0 && hidden <= kWarpRowMaxWidth;
}

}  // namespace

absl::Status FusedCpuMirrorOps::Gemm(const GemmCall& call) { return RunGemmOnCpu(call); }

absl::Status FusedCpuMirrorOps::PackedEmbeddingLayerNorm(GemmType dt, const int32_t* ids,
                                                         const int32_t* positions, int tokens,
                                                         const void* word_emb, const void* pos_emb,
                                                         const void* type_emb, const float* gamma,
                                                         const float* beta, int hidden, float eps,
                                                         void* out) {
  if (absl::Status s = Check16(dt); !s.ok()) return s;
  if (!RowOk(hidden)) return absl::InvalidArgumentError("fused embedding: unsupported hidden");
  std::vector<float> row(hidden);
  for (int t = 0; t < tokens; ++t) {
    const size_t w = static_cast<size_t>(ids[t]) * hidden;
    const size_t p = static_cast<size_t>(positions[t]) * hidden;
    for (int i = 0; i < hidden; ++i) {
      row[i] = Load(dt, word_emb, w + i) + Load(dt, pos_emb, p + i) + Load(dt, type_emb, i);
    }
    WarpLayerNormRowEmulated(row.data(), gamma, beta, hidden, eps, row.data());
    for (int i = 0; i < hidden; ++i) Store(dt, out, static_cast<size_t>(t) * hidden + i, row[i]);
  }
  return absl::OkStatus();
}

absl::Status FusedCpuMirrorOps::VarlenAttention(GemmType dt, const void* qkv, const float* qkv_bias,
                                                const int32_t* cu_seqlens, const int32_t* tiles,
                                                int tile_count, int heads, int head_dim,
                                                void* ctx) {
  if (absl::Status s = Check16(dt); !s.ok()) return s;
  if (head_dim != 32 && head_dim != 64) {
    return absl::InvalidArgumentError(absl::StrCat("fused attention: head_dim ", head_dim));
  }
  if (tile_count == 0) return absl::OkStatus();
  // Every sequence is non-empty, so it owns at least one tile and the last tile names the last.
  const int batch = tiles[2 * (tile_count - 1)] + 1;
  PackedLayout layout;
  layout.cu_seqlens.assign(cu_seqlens, cu_seqlens + batch + 1);
  layout.tiles.assign(tiles, tiles + 2 * tile_count);
  const int tokens = layout.tokens();
  const int hidden = heads * head_dim;
  std::vector<float> in(static_cast<size_t>(tokens) * 3 * hidden);
  for (size_t i = 0; i < in.size(); ++i) in[i] = Load(dt, qkv, i);
  std::vector<float> outf(static_cast<size_t>(tokens) * hidden);
  if (head_dim == 32) {
    VarlenAttentionEmulated<32>(in.data(), qkv_bias, layout, heads, outf.data());
  } else {
    VarlenAttentionEmulated<64>(in.data(), qkv_bias, layout, heads, outf.data());
  }
  for (size_t i = 0; i < outf.size(); ++i) Store(dt, ctx, i, outf[i]);
  return absl::OkStatus();
}

absl::Status FusedCpuMirrorOps::WarpBiasResidualLayerNorm(GemmType dt, const void* x,
                                                          const float* bias, const void* residual,
                                                          const float* gamma, const float* beta,
                                                          int rows, int hidden, float eps,
                                                          void* out) {
  if (absl::Status s = Check16(dt); !s.ok()) return s;
  if (!RowOk(hidden)) return absl::InvalidArgumentError("fused layernorm: unsupported hidden");
  std::vector<float> row(hidden);
  for (int r = 0; r < rows; ++r) {
    const size_t base = static_cast<size_t>(r) * hidden;
    for (int i = 0; i < hidden; ++i) {
      row[i] = Load(dt, x, base + i) + bias[i] + Load(dt, residual, base + i);
    }
    WarpLayerNormRowEmulated(row.data(), gamma, beta, hidden, eps, row.data());
    for (int i = 0; i < hidden; ++i) Store(dt, out, base + i, row[i]);
  }
  return absl::OkStatus();
}

absl::Status FusedCpuMirrorOps::BiasGeluVec(GemmType dt, void* x, const float* bias, int rows,
                                            int cols) {
  if (absl::Status s = Check16(dt); !s.ok()) return s;
  if (cols <= 0 || cols % kVecElems != 0) {
    return absl::InvalidArgumentError("fused bias+gelu: cols must be a multiple of 8");
  }
  const size_t total = static_cast<size_t>(rows) * cols;
  for (size_t i = 0; i < total; ++i) Store(dt, x, i, Gelu(Load(dt, x, i) + bias[i % cols]));
  return absl::OkStatus();
}

absl::Status FusedCpuMirrorOps::PackedMeanPool(GemmType dt, const void* hidden_states,
                                               const int32_t* cu_seqlens, int batch, int hidden,
                                               bool cls, bool normalize, float* out) {
  if (absl::Status s = Check16(dt); !s.ok()) return s;
  std::vector<float> row(hidden);
  for (int b = 0; b < batch; ++b) {
    const int begin = cu_seqlens[b];
    const int count = cls ? 1 : cu_seqlens[b + 1] - begin;
    float* acc = out + static_cast<size_t>(b) * hidden;
    std::fill(acc, acc + hidden, 0.0f);
    for (int s = 0; s < count; ++s) {
      const size_t base = static_cast<size_t>(begin + s) * hidden;
      for (int i = 0; i < hidden; ++i) row[i] = Load(dt, hidden_states, base + i);
      MeanPoolAccumulate(acc, row.data(), hidden);
    }
    MeanPoolFinish(acc, hidden, count);
    if (normalize) L2NormalizeInPlace(acc, hidden);
  }
  return absl::OkStatus();
}

}  // namespace tipperary::kernels
