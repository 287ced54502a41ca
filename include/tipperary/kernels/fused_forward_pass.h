// The "fused" variant's forward pass as device-neutral code, beside forward_pass.h's reference
// pass: packed sequences (no padding), the QKV GEMM's output read directly by varlen flash-style
// attention, bias + residual + LayerNorm one warp per row, vectorised bias+GELU. The GPU encoder
// runs it with ops that launch fused_kernels.h's kernels and cuBLAS; the CPU mirror
// (fused_cpu_mirror.h) runs the same code with fused_math.h's emulations and OpenBLAS.
//
// Packed input, int32, one block in the ops' memory (PackPackedSpan writes it):
//   ids [tokens] | positions [tokens] | cu_seqlens [count + 1] | tiles [2 * tile_count]
//
//   for (const PackedSpan& span : PlanPackedSpans(token_ids, limits)) {
//     const int tiles = PackPackedSpan(token_ids, span, host);  // then copy `host` over
//     RunFusedForwardPass(model, buffers, PackedInputAt(device, span, tiles), span, normalize,
//                         out, &ops);
//   }
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "tipperary/kernels/forward_pass.h"
#include "tipperary/kernels/gemm_call.h"
#include "tipperary/kernels/stage_ablation.h"

namespace tipperary::kernels {

// The shapes the fused kernels support: hidden a multiple of 8 and at most 1024 (one warp's
// registers), head size 32 or 64, intermediate a multiple of 8.
bool FusedShapeSupported(int hidden, int heads, int intermediate);

// The stages of the fused pass (fused_kernels.h's launchers, see there for each contract).
// Separate from ForwardOps so that an ops class may implement both (Gemm and AfterStage have the
// same signatures in both and one override serves both).
class FusedForwardOps {
 public:
  virtual ~FusedForwardOps() = default;
  virtual absl::Status Gemm(const GemmCall& call) = 0;
  virtual absl::Status PackedEmbeddingLayerNorm(GemmType dtype, const int32_t* ids,
                                                const int32_t* positions, int tokens,
                                                const void* word_emb, const void* pos_emb,
                                                const void* type_emb, const float* gamma,
                                                const float* beta, int hidden, float eps,
                                                void* out) = 0;
  virtual absl::Status VarlenAttention(GemmType dtype, const void* qkv, const float* qkv_bias,
                                       const int32_t* cu_seqlens, const int32_t* tiles,
                                       int tile_count, int heads, int head_dim, void* ctx) = 0;
  virtual absl::Status WarpBiasResidualLayerNorm(GemmType dtype, const void* x, const float* bias,
                                                 const void* residual, const float* gamma,
                                                 const float* beta, int rows, int hidden, float eps,
                                                 void* out) = 0;
  virtual absl::Status BiasGeluVec(GemmType dtype, void* x, const float* bias, int rows,
                                   int cols) = 0;
  virtual absl::Status PackedMeanPool(GemmType dtype, const void* hidden_states,
                                      const int32_t* cu_seqlens, int batch, int hidden, bool cls,
                                      bool normalize, float* out) = 0;
  virtual absl::Status AfterStage(const char* stage, int layer) {
    (void)stage;
    (void)layer;
    return absl::OkStatus();
  }
};

// Consecutive sequences [begin, begin + count) holding `tokens` real tokens.
struct PackedSpan {
  size_t begin = 0;
  size_t count = 0;
  int tokens = 0;
};

// Greedy spans in request order: at most limits.max_batch sequences and limits.max_tokens real
// tokens each (a sequence always fits an empty span: max_seq_real <= max_tokens).
std::vector<PackedSpan> PlanPackedSpans(const std::vector<std::vector<int32_t>>& token_ids,
                                        const ForwardLimits& limits);

// int32 elements of the packed input block for the largest span the limits allow.
size_t PackedInputCapacity(const ForwardLimits& limits);

// Writes the packed input block of `span` to dst; returns the tile count.
int PackPackedSpan(const std::vector<std::vector<int32_t>>& token_ids, const PackedSpan& span,
                   int32_t* dst);

// int32 elements PackPackedSpan wrote for this span and tile count.
size_t PackedInputSize(const PackedSpan& span, int tile_count);

// Pointers into a packed input block at `base` (host or device).
struct PackedInput {
  const int32_t* ids = nullptr;
  const int32_t* positions = nullptr;
  const int32_t* cu_seqlens = nullptr;
  const int32_t* tiles = nullptr;
  int tile_count = 0;
};
PackedInput PackedInputAt(const int32_t* base, const PackedSpan& span, int tile_count);

// One fused forward pass over a packed span; writes out fp32 [span.count, hidden]. Uses the
// buffers x, qkv, ctx, tmp and inter of ForwardBuffers (not qkv_split, ctx_heads, scores).
// `scales`: the bench's stage ablation (stage_ablation.h); the output is then garbage.
absl::Status RunFusedForwardPass(const ForwardModel& model, const ForwardBuffers& buffers,
                                 const PackedInput& input, const PackedSpan& span, bool normalize,
                                 float* out, FusedForwardOps* ops,
                                 const StageScales& scales = StageScales());

}  // namespace tipperary::kernels
