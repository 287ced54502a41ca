// The CPU mirror of the fused variant's stages (fused_forward_pass.h): GEMMs through
// RunGemmOnCpu (OpenBLAS) with the very GemmCalls the GPU hands to cuBLAS, the other stages
// through fused_math.h's emulations of the kernels, on 16-bit host storage (bits). With it,
// RunFusedForwardPass, the code the GPU encoder runs, is tested on any machine. Slow; tests only.
// Lives in tipperary::kernels_cpu_mirror.
//
//   FusedCpuMirrorOps ops;
//   absl::Status s = RunFusedForwardPass(host_model, host_buffers, input, span, false, out, &ops);
#pragma once

#include "tipperary/kernels/fused_forward_pass.h"

namespace tipperary::kernels {

class FusedCpuMirrorOps : public FusedForwardOps {
 public:
  absl::Status Gemm(const GemmCall& call) override;
  absl::Status PackedEmbeddingLayerNorm(GemmType dtype, const int32_t* ids,
                                        const int32_t* positions, int tokens, const void* word_emb,
                                        const void* pos_emb, const void* type_emb,
                                        const float* gamma, const float* beta, int hidden,
                                        float eps, void* out) override;
  absl::Status VarlenAttention(GemmType dtype, const void* qkv, const float* qkv_bias,
                               const int32_t* cu_seqlens, const int32_t* tiles, int tile_count,
                               int heads, int head_dim, void* ctx) override;
  absl::Status WarpBiasResidualLayerNorm(GemmType dtype, const void* x, const float* bias,
                                         const void* residual, const float* gamma,
                                         const float* beta, int rows, int hidden, float eps,
                                         void* out) override;
  absl::Status BiasGeluVec(GemmType dtype, void* x, const float* bias, int rows, int cols) override;
  absl::Status PackedMeanPool(GemmType dtype, const void* hidden_states, const int32_t* cu_seqlens,
                              int batch, int hidden, bool cls, bool normalize, float* out) override;
};

}  // namespace tipperary::kernels
