// Launchers of the "fused" variant's CUDA kernels: packed sequences (no padding), flash-style
// variable-length attention straight from the fused QKV GEMM output, warp-per-row LayerNorm with
// the bias and residual fused, and a 16-byte-vectorised bias+GELU.
//
// Packed layout (fused_math.h, BuildPackedLayout): sequence b owns token rows
// [cu_seqlens[b], cu_seqlens[b + 1]) of every [tokens, width] tensor; positions[t] is t's index
// in its sequence; `tiles` lists (sequence, first query row) pairs, one attention block each.
// All index arrays are device int32. Activations are fp16/bf16 (DType), biases and LayerNorm
// parameters fp32. Every launcher only enqueues on `stream` and returns the launch error;
// unsupported shapes return cudaErrorInvalidValue before launching anything. Widths must be
// multiples of 8 and tensors 16-byte aligned (cudaMalloc'ed bases), for the 16-byte loads.
//
//   LaunchVarlenAttention(DType::kFloat16, qkv, qkv_bias, cu_seqlens, tiles, tile_count, 12, 32,
//                         ctx, stream);
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "tipperary/kernels/kernels.h"

namespace tipperary::kernels {

// FusedShapeSupported (fused_forward_pass.h) says which model shapes these kernels serve.

// out[t] = LayerNorm(word[ids[t]] + pos[positions[t]] + type[0]), one warp per token row.
cudaError_t LaunchPackedEmbeddingLayerNorm(DType dtype, const int32_t* ids,
                                           const int32_t* positions, int tokens,
                                           const void* word_emb, const void* pos_emb,
                                           const void* type_emb, const float* gamma,
                                           const float* beta, int hidden, float eps, void* out,
                                           cudaStream_t stream);

// ctx[t, h*head_dim + d] = softmax over the keys of t's own sequence of
// (q_t . k_j) / sqrt(head_dim), times v_j; q, k, v read from qkv [tokens, 3*heads*head_dim]
// (query | key | value columns, no bias) plus qkv_bias [3*heads*head_dim]. One 4-warp block per
// (tile, head), a warp per 16 query rows; Q K^T and P V on the tensor cores (fp16/bf16 inputs,
// fp32 accumulation), keys staged 64 at a time in shared memory, online softmax in fp32 with P
// rounded to the dtype (as flash attention), no score matrix in memory.
cudaError_t LaunchVarlenAttention(DType dtype, const void* qkv, const float* qkv_bias,
                                  const int32_t* cu_seqlens, const int32_t* tiles, int tile_count,
                                  int heads, int head_dim, void* ctx, cudaStream_t stream);

// In place: x[r, c] = Gelu(x[r, c] + bias[c]) (erf form), 8 elements per thread.
cudaError_t LaunchBiasGeluVec(DType dtype, void* x, const float* bias, int rows, int cols,
                              cudaStream_t stream);

// out[r] = LayerNorm(x[r] + bias + residual[r]), one warp per row, 16-byte loads; out may alias
// residual (not x).
cudaError_t LaunchWarpBiasResidualLayerNorm(DType dtype, const void* x, const float* bias,
                                            const void* residual, const float* gamma,
                                            const float* beta, int rows, int hidden, float eps,
                                            void* out, cudaStream_t stream);

// out fp32 [batch, hidden]: the mean of each sequence's rows (or its first row when `cls`),
// L2-normalised when `normalize`.
cudaError_t LaunchPackedMeanPool(DType dtype, const void* hidden_states, const int32_t* cu_seqlens,
                                 int batch, int hidden, bool cls, bool normalize, float* out,
                                 cudaStream_t stream);

}  // namespace tipperary::kernels
