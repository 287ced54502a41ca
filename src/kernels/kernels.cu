// The encoder's non-GEMM kernels. Arithmetic is in fp32 (math.h) whatever the storage type;
// row kernels use one block per row with the row staged in shared memory.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstddef>
#include <type_traits>

#include "tipperary/kernels/kernels.h"
#include "tipperary/kernels/math.h"

namespace tipperary::kernels {
namespace {

constexpr int kRowThreads = 128;
constexpr int kMaxRowWidth = 8192;
constexpr int kElementwiseThreads = 256;

template <typename T>
__device__ inline float ToFloat(T v);
template <>
__device__ inline float ToFloat<__half>(__half v) {
  return __half2float(v);
}
template <>
__device__ inline float ToFloat<__nv_bfloat16>(__nv_bfloat16 v) {
  return __bfloat162float(v);
}

template <typename T>
__device__ inline T FromFloat(float v);
template <>
__device__ inline __half FromFloat<__half>(float v) {
  return __float2half_rn(v);
}
template <>
__device__ inline __nv_bfloat16 FromFloat<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}

// Block-wide reduction; every thread gets the result. `scratch` holds one float per warp.
template <bool kMax>
__device__ inline float BlockReduce(float v, float* scratch) {
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  const int warps = (blockDim.x + 31) >> 5;
  for (int offset = 16; offset > 0; offset >>= 1) {
    const float other = __shfl_xor_sync(0xffffffffu, v, offset);
    v = kMax ? fmaxf(v, other) : v + other;
  }
  __syncthreads();  // scratch may still be read by a previous reduction
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < warps ? scratch[lane] : (kMax ? -INFINITY : 0.0f);
  for (int offset = 16; offset > 0; offset >>= 1) {
    const float other = __shfl_xor_sync(0xffffffffu, v, offset);
    v = kMax ? fmaxf(v, other) : v + other;
  }
  return v;
}

__device__ inline float BlockSum(float v, float* scratch) { return BlockReduce<false>(v, scratch); }
__device__ inline float BlockMax(float v, float* scratch) { return BlockReduce<true>(v, scratch); }

// LayerNorm of the row staged in `row` (n floats of shared memory), written to out as T.
template <typename T>
__device__ inline void LayerNormStagedRow(const float* row, const float* gamma, const float* beta,
                                          int n, float eps, float* scratch, T* out) {
  float partial = 0.0f;
  for (int i = threadIdx.x; i < n; i += blockDim.x) partial += row[i];
  const float mean = BlockSum(partial, scratch) / static_cast<float>(n);
  partial = 0.0f;
  for (int i = threadIdx.x; i < n; i += blockDim.x) {
    const float d = row[i] - mean;
    partial += d * d;
  }
  const float var = BlockSum(partial, scratch) / static_cast<float>(n);
  const float rstd = rsqrtf(var + eps);
  for (int i = threadIdx.x; i < n; i += blockDim.x) {
    out[i] = FromFloat<T>(LayerNormApply(row[i], mean, rstd, gamma[i], beta[i]));
  }
}

template <typename T>
__global__ void EmbeddingLayerNormKernel(const int32_t* ids, const int32_t* token_types, int seq,
                                         const T* word_emb, const T* pos_emb, const T* type_emb,
                                         const float* gamma, const float* beta, int hidden,
                                         float eps, T* out) {
  extern __shared__ float row[];
  __shared__ float scratch[32];
  const int t = blockIdx.x;
  const size_t word = static_cast<size_t>(ids[t]) * hidden;
  const size_t pos = static_cast<size_t>(t % seq) * hidden;
  const size_t type = static_cast<size_t>(token_types != nullptr ? token_types[t] : 0) * hidden;
  for (int i = threadIdx.x; i < hidden; i += blockDim.x) {
    row[i] = ToFloat(word_emb[word + i]) + ToFloat(pos_emb[pos + i]) + ToFloat(type_emb[type + i]);
  }
  __syncthreads();
  LayerNormStagedRow(row, gamma, beta, hidden, eps, scratch, out + static_cast<size_t>(t) * hidden);
}

template <typename T>
__global__ void BiasResidualLayerNormKernel(const T* x, const float* bias, const T* residual,
                                            const float* gamma, const float* beta, int hidden,
                                            float eps, T* out) {
  extern __shared__ float row[];
  __shared__ float scratch[32];
  const size_t base = static_cast<size_t>(blockIdx.x) * hidden;
  for (int i = threadIdx.x; i < hidden; i += blockDim.x) {
    row[i] = ToFloat(x[base + i]) + bias[i] + ToFloat(residual[base + i]);
  }
  __syncthreads();
  // Every read of `residual` happened above, so `out` may alias it.
  LayerNormStagedRow(row, gamma, beta, hidden, eps, scratch, out + base);
}

template <typename T>
__global__ void SplitQkvBiasKernel(const T* qkv, const float* bias, int seq, int heads,
                                   int head_dim, size_t total, T* q, T* k, T* v) {
  const int width = heads * head_dim;
  for (size_t idx = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const size_t t = idx / (3 * width);
    const int c = static_cast<int>(idx % (3 * width));
    const int which = c / width;
    const int within = c % width;
    const int h = within / head_dim;
    const int d = within % head_dim;
    const size_t b = t / seq;
    const size_t s = t % seq;
    T* dst = which == 0 ? q : (which == 1 ? k : v);
    dst[((b * heads + h) * seq + s) * head_dim + d] = FromFloat<T>(ToFloat(qkv[idx]) + bias[c]);
  }
}

template <typename T>
__global__ void MergeHeadsKernel(const T* ctx, int seq, int heads, int head_dim, size_t total,
                                 T* out) {
  const int width = heads * head_dim;
  for (size_t idx = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const size_t t = idx / width;
    const int c = static_cast<int>(idx % width);
    const int h = c / head_dim;
    const int d = c % head_dim;
    const size_t b = t / seq;
    const size_t s = t % seq;
    out[idx] = ctx[((b * heads + h) * seq + s) * head_dim + d];
  }
}

template <typename T>
__global__ void BiasGeluKernel(T* x, const float* bias, int cols, size_t total) {
  for (size_t idx = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<size_t>(gridDim.x) * blockDim.x) {
    x[idx] = FromFloat<T>(Gelu(ToFloat(x[idx]) + bias[idx % cols]));
  }
}

// grid (seq, batch*heads): one block per query row.
template <typename T>
__global__ void MaskedSoftmaxKernel(float* scores, const int32_t* lengths, int heads, int seq,
                                    float scale) {
  extern __shared__ float row[];
  __shared__ float scratch[32];
  const int bh = blockIdx.y;
  const int valid = lengths[bh / heads];
  float* src = scores + (static_cast<size_t>(bh) * seq + blockIdx.x) * seq;
  float local_max = -INFINITY;
  for (int j = threadIdx.x; j < seq; j += blockDim.x) {
    const float v = src[j] * scale;
    row[j] = v;
    if (j < valid) local_max = fmaxf(local_max, v);
  }
  const float max_v = BlockMax(local_max, scratch);
  float partial = 0.0f;
  for (int j = threadIdx.x; j < seq; j += blockDim.x) {
    const float e = (j < valid && max_v != -INFINITY) ? expf(row[j] - max_v) : 0.0f;
    row[j] = e;
    partial += e;
  }
  // BlockSum synchronises the block, so every read of `src` is done before it is overwritten.
  const float sum = BlockSum(partial, scratch);
  const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
  T* dst = reinterpret_cast<T*>(src);
  for (int j = threadIdx.x; j < seq; j += blockDim.x) dst[j] = FromFloat<T>(row[j] * inv);
}

// grid batch: one block per sequence; threads stride over the hidden dimension.
template <typename T>
__global__ void MaskedMeanPoolKernel(const T* hidden_states, const int32_t* lengths, int seq,
                                     int hidden, bool cls, bool normalize, float* out) {
  extern __shared__ float pooled[];
  __shared__ float scratch[32];
  const int b = blockIdx.x;
  const int count = cls ? 1 : lengths[b];
  const T* base = hidden_states + static_cast<size_t>(b) * seq * hidden;
  float sq = 0.0f;
  for (int d = threadIdx.x; d < hidden; d += blockDim.x) {
    float acc = 0.0f;
    for (int s = 0; s < count; ++s) acc += ToFloat(base[static_cast<size_t>(s) * hidden + d]);
    MeanPoolFinish(&acc, 1, count);
    pooled[d] = acc;
    sq += acc * acc;
  }
  float inv = 1.0f;
  if (normalize) inv = L2InverseNorm(sqrtf(BlockSum(sq, scratch)));
  for (int d = threadIdx.x; d < hidden; d += blockDim.x) {
    out[static_cast<size_t>(b) * hidden + d] = pooled[d] * inv;
  }
}

int GridFor(size_t total) {
  const size_t blocks = (total + kElementwiseThreads - 1) / kElementwiseThreads;
  return static_cast<int>(blocks < 65535 * 16 ? blocks : 65535 * 16);
}

// Calls `fn` with a null pointer of the storage type, so one body serves both dtypes.
template <typename Fn>
cudaError_t Dispatch(DType dtype, Fn&& fn) {
  if (dtype == DType::kFloat16) {
    fn(static_cast<__half*>(nullptr));
  } else {
    fn(static_cast<__nv_bfloat16*>(nullptr));
  }
  return cudaGetLastError();
}

}  // namespace

cudaError_t LaunchEmbeddingLayerNorm(DType dtype, const int32_t* ids, const int32_t* token_types,
                                     int tokens, int seq, const void* word_emb, const void* pos_emb,
                                     const void* type_emb, const float* gamma, const float* beta,
                                     int hidden, float eps, void* out, cudaStream_t stream) {
  if (hidden > kMaxRowWidth || seq <= 0) return cudaErrorInvalidValue;
  if (tokens == 0) return cudaSuccess;
  return Dispatch(dtype, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    EmbeddingLayerNormKernel<T><<<tokens, kRowThreads, hidden * sizeof(float), stream>>>(
        ids, token_types, seq, static_cast<const T*>(word_emb), static_cast<const T*>(pos_emb),
        static_cast<const T*>(type_emb), gamma, beta, hidden, eps, static_cast<T*>(out));
  });
}

cudaError_t LaunchSplitQkvBias(DType dtype, const void* qkv, const float* bias, int batch, int seq,
                               int heads, int head_dim, void* q, void* k, void* v,
                               cudaStream_t stream) {
  const size_t total = static_cast<size_t>(batch) * seq * 3 * heads * head_dim;
  if (total == 0) return cudaSuccess;
  return Dispatch(dtype, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    SplitQkvBiasKernel<T><<<GridFor(total), kElementwiseThreads, 0, stream>>>(
        static_cast<const T*>(qkv), bias, seq, heads, head_dim, total, static_cast<T*>(q),
        static_cast<T*>(k), static_cast<T*>(v));
  });
}

cudaError_t LaunchMaskedSoftmax(DType dtype, float* scores, const int32_t* lengths, int batch,
                                int heads, int seq, float scale, cudaStream_t stream) {
  if (seq > kMaxRowWidth || batch * heads > 65535) return cudaErrorInvalidValue;
  if (batch == 0 || seq == 0) return cudaSuccess;
  return Dispatch(dtype, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    const dim3 grid(seq, batch * heads);
    MaskedSoftmaxKernel<T>
        <<<grid, kRowThreads, seq * sizeof(float), stream>>>(scores, lengths, heads, seq, scale);
  });
}

cudaError_t LaunchMergeHeads(DType dtype, const void* ctx, int batch, int seq, int heads,
                             int head_dim, void* out, cudaStream_t stream) {
  const size_t total = static_cast<size_t>(batch) * seq * heads * head_dim;
  if (total == 0) return cudaSuccess;
  return Dispatch(dtype, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    MergeHeadsKernel<T><<<GridFor(total), kElementwiseThreads, 0, stream>>>(
        static_cast<const T*>(ctx), seq, heads, head_dim, total, static_cast<T*>(out));
  });
}

cudaError_t LaunchBiasGelu(DType dtype, void* x, const float* bias, int rows, int cols,
                           cudaStream_t stream) {
  const size_t total = static_cast<size_t>(rows) * cols;
  if (total == 0) return cudaSuccess;
  return Dispatch(dtype, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    BiasGeluKernel<T>
        <<<GridFor(total), kElementwiseThreads, 0, stream>>>(static_cast<T*>(x), bias, cols, total);
  });
}

cudaError_t LaunchBiasResidualLayerNorm(DType dtype, const void* x, const float* bias,
                                        const void* residual, const float* gamma, const float* beta,
                                        int rows, int hidden, float eps, void* out,
                                        cudaStream_t stream) {
  if (hidden > kMaxRowWidth) return cudaErrorInvalidValue;
  if (rows == 0) return cudaSuccess;
  return Dispatch(dtype, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    BiasResidualLayerNormKernel<T><<<rows, kRowThreads, hidden * sizeof(float), stream>>>(
        static_cast<const T*>(x), bias, static_cast<const T*>(residual), gamma, beta, hidden, eps,
        static_cast<T*>(out));
  });
}

cudaError_t LaunchMaskedMeanPool(DType dtype, const void* hidden_states, const int32_t* lengths,
                                 int batch, int seq, int hidden, bool cls, bool normalize,
                                 float* out, cudaStream_t stream) {
  if (hidden > kMaxRowWidth) return cudaErrorInvalidValue;
  if (batch == 0) return cudaSuccess;
  return Dispatch(dtype, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    MaskedMeanPoolKernel<T><<<batch, kRowThreads, hidden * sizeof(float), stream>>>(
        static_cast<const T*>(hidden_states), lengths, seq, hidden, cls, normalize, out);
  });
}

}  // namespace tipperary::kernels
