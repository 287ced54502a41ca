// Launchers of the CUDA kernels behind CudaEncoder, callable from plain C++ (tests, the encoder).
//
// Activations are fp16 or bf16 (`DType`), passed as untyped device pointers; LayerNorm
// parameters and biases are fp32. Every launcher only enqueues work on `stream` and returns the
// launch error (cudaSuccess when the launch was accepted). Token-major tensors are
// [batch * seq, width] with `seq` the padded length; per-sequence real lengths come in
// `lengths` (device int32[batch]), and padded positions are masked out of attention and pooling.
//
//   LaunchBiasGelu(DType::kFloat16, d_inter, d_bias, tokens, 1536, stream);
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace tipperary::kernels {

enum class DType { kFloat16, kBFloat16 };

// out[t] = LayerNorm(word[ids[t]] + pos[t % seq] + type[token_types ? token_types[t] : 0]).
// Embedding tables are DType [rows, hidden]; hidden <= 8192.
cudaError_t LaunchEmbeddingLayerNorm(DType dtype, const int32_t* ids, const int32_t* token_types,
                                     int tokens, int seq, const void* word_emb, const void* pos_emb,
                                     const void* type_emb, const float* gamma, const float* beta,
                                     int hidden, float eps, void* out, cudaStream_t stream);

// qkv [batch*seq, 3*heads*head_dim] (query | key | value columns) + bias ->
// q, k, v each [batch, heads, seq, head_dim].
cudaError_t LaunchSplitQkvBias(DType dtype, const void* qkv, const float* bias, int batch, int seq,
                               int heads, int head_dim, void* q, void* k, void* v,
                               cudaStream_t stream);

// scores: fp32 [batch*heads, seq, seq] (query-major) as produced by Q K^T. Each row becomes
// softmax(scale * row) over the keys j < lengths[b] (others get probability 0), written as
// DType IN PLACE at the start of the row's own storage: probabilities form a DType matrix with
// leading dimension 2*seq and a stride of 2*seq*seq between (batch, head) matrices. seq <= 8192.
cudaError_t LaunchMaskedSoftmax(DType dtype, float* scores, const int32_t* lengths, int batch,
                                int heads, int seq, float scale, cudaStream_t stream);

// ctx [batch, heads, seq, head_dim] -> out [batch*seq, heads*head_dim].
cudaError_t LaunchMergeHeads(DType dtype, const void* ctx, int batch, int seq, int heads,
                             int head_dim, void* out, cudaStream_t stream);

// In place: x[r, c] = Gelu(x[r, c] + bias[c]) (erf GELU).
cudaError_t LaunchBiasGelu(DType dtype, void* x, const float* bias, int rows, int cols,
                           cudaStream_t stream);

// out[r] = LayerNorm(x[r] + bias + residual[r]); out may alias residual (not x). hidden <= 8192.
cudaError_t LaunchBiasResidualLayerNorm(DType dtype, const void* x, const float* bias,
                                        const void* residual, const float* gamma, const float* beta,
                                        int rows, int hidden, float eps, void* out,
                                        cudaStream_t stream);

// out fp32 [batch, hidden]: the mean of rows [0, lengths[b]) of sequence b (or row 0 when
// `cls`), L2-normalised when `normalize`. hidden <= 8192.
cudaError_t LaunchMaskedMeanPool(DType dtype, const void* hidden_states, const int32_t* lengths,
                                 int batch, int seq, int hidden, bool cls, bool normalize,
                                 float* out, cudaStream_t stream);

}  // namespace tipperary::kernels
