// The "fused" variant's kernels (fused_kernels.h). Their arithmetic is fused_math.h's, the same
// functions the CPU tests run; this file only maps it onto threads, warps and shared memory.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstddef>
#include <type_traits>

#include "tipperary/kernels/fused_kernels.h"
#include "tipperary/kernels/fused_math.h"
#include "tipperary/kernels/math.h"

namespace tipperary::kernels {
namespace {

constexpr int kRowsPerBlock = 4;  // warps per LayerNorm block, one row each
constexpr int kVecThreads = 256;
constexpr int kPoolThreads = 128;
constexpr int kMaxPoolWidth = 8192;

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

// 16-byte load of 8 fp16/bf16 values (p 16-byte aligned), widened to fp32.
template <typename T>
__device__ inline void LoadVec(const T* p, float* out) {
  const uint4 raw = *reinterpret_cast<const uint4*>(p);
  const T* e = reinterpret_cast<const T*>(&raw);
#pragma unroll
  for (int i = 0; i < kVecElems; ++i) out[i] = ToFloat(e[i]);
}

template <typename T>
__device__ inline void StoreVec(T* p, const float* in) {
  uint4 raw;
  T* e = reinterpret_cast<T*>(&raw);
#pragma unroll
  for (int i = 0; i < kVecElems; ++i) e[i] = FromFloat<T>(in[i]);
  *reinterpret_cast<uint4*>(p) = raw;
}

// Two 16-byte loads of fp32 (p 32-byte aligned).
__device__ inline void LoadVecF32(const float* p, float* out) {
  const float4 a = *reinterpret_cast<const float4*>(p);
  const float4 b = *reinterpret_cast<const float4*>(p + 4);
  out[0] = a.x;
  out[1] = a.y;
  out[2] = a.z;
  out[3] = a.w;
  out[4] = b.x;
  out[5] = b.y;
  out[6] = b.z;
  out[7] = b.w;
}

// The xor butterfly that ButterflySumEmulated replays.
__device__ inline float WarpSum(float v) {
#pragma unroll
  for (int offset = kWarpSize / 2; offset > 0; offset >>= 1) {
    v += __shfl_xor_sync(0xffffffffu, v, offset);
  }
  return v;
}

// The second half of WarpLayerNormRowEmulated: the lane's vectors are in v; writes the row.
template <typename T, int kVecs>
__device__ inline void WarpLayerNormStore(const float* v, int lane, int n, const float* gamma,
                                          const float* beta, float eps, T* out_row) {
  const float mean = WarpSum(WarpRowLanePartial<kVecs, false>(v, lane, n, 0.0f)) / n;
  const float var = WarpSum(WarpRowLanePartial<kVecs, true>(v, lane, n, mean)) / n;
  const float rstd = rsqrtf(var + eps);
  const int vecs = n / kVecElems;
#pragma unroll
  for (int c = 0; c < kVecs; ++c) {
    const int vi = WarpRowVector(lane, c);
    if (vi < vecs) {
      float g[kVecElems], b[kVecElems], o[kVecElems];
      LoadVecF32(gamma + vi * kVecElems, g);
      LoadVecF32(beta + vi * kVecElems, b);
#pragma unroll
      for (int e = 0; e < kVecElems; ++e) {
        o[e] = LayerNormApply(v[c * kVecElems + e], mean, rstd, g[e], b[e]);
      }
      StoreVec(out_row + vi * kVecElems, o);
    }
  }
}

template <typename T, int kVecs>
__global__ void PackedEmbeddingLayerNormKernel(const int32_t* ids, const int32_t* positions,
                                               int tokens, const T* word_emb, const T* pos_emb,
                                               const T* type_emb, const float* gamma,
                                               const float* beta, int hidden, float eps, T* out) {
  const int lane = threadIdx.x & 31;
  const int t = blockIdx.x * kRowsPerBlock + (threadIdx.x >> 5);
  if (t >= tokens) return;  // whole warps leave together; no block-wide barrier follows
  const T* w = word_emb + static_cast<size_t>(ids[t]) * hidden;
  const T* p = pos_emb + static_cast<size_t>(positions[t]) * hidden;
  const int vecs = hidden / kVecElems;
  float v[kVecs * kVecElems] = {};
#pragma unroll
  for (int c = 0; c < kVecs; ++c) {
    const int vi = WarpRowVector(lane, c);
    if (vi < vecs) {
      float a[kVecElems], b[kVecElems], y[kVecElems];
      LoadVec(w + vi * kVecElems, a);
      LoadVec(p + vi * kVecElems, b);
      LoadVec(type_emb + vi * kVecElems, y);
#pragma unroll
      for (int e = 0; e < kVecElems; ++e) v[c * kVecElems + e] = a[e] + b[e] + y[e];
    }
  }
  WarpLayerNormStore<T, kVecs>(v, lane, hidden, gamma, beta, eps,
                               out + static_cast<size_t>(t) * hidden);
}

template <typename T, int kVecs>
__global__ void WarpBiasResidualLayerNormKernel(const T* x, const float* bias, const T* residual,
                                                const float* gamma, const float* beta, int rows,
                                                int hidden, float eps, T* out) {
  const int lane = threadIdx.x & 31;
  const int r = blockIdx.x * kRowsPerBlock + (threadIdx.x >> 5);
  if (r >= rows) return;
  const size_t base = static_cast<size_t>(r) * hidden;
  const int vecs = hidden / kVecElems;
  float v[kVecs * kVecElems] = {};
#pragma unroll
  for (int c = 0; c < kVecs; ++c) {
    const int vi = WarpRowVector(lane, c);
    if (vi < vecs) {
      float a[kVecElems], b[kVecElems], res[kVecElems];
      LoadVec(x + base + vi * kVecElems, a);
      LoadVecF32(bias + vi * kVecElems, b);
      LoadVec(residual + base + vi * kVecElems, res);
#pragma unroll
      for (int e = 0; e < kVecElems; ++e) v[c * kVecElems + e] = a[e] + b[e] + res[e];
    }
  }
  // Each lane writes only the vectors it read, so out may alias residual.
  WarpLayerNormStore<T, kVecs>(v, lane, hidden, gamma, beta, eps, out + base);
}

template <typename T>
__global__ void BiasGeluVecKernel(T* x, const float* bias, int cols, size_t vectors) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < vectors;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const size_t at = i * kVecElems;
    const int col = static_cast<int>(at % cols);  // cols % 8 == 0: a vector never wraps a row
    float v[kVecElems], b[kVecElems];
    LoadVec(x + at, v);
    LoadVecF32(bias + col, b);
#pragma unroll
    for (int e = 0; e < kVecElems; ++e) v[e] = Gelu(v[e] + b[e]);
    StoreVec(x + at, v);
  }
}

// grid (tiles, heads), kAttentionQueryTile threads: VarlenAttentionEmulated's loops, with the
// key/value rows of each 64-key tile staged once in shared memory for the block's 64 queries.
// Every thread of a warp reads the same K/V element at a time: shared-memory broadcasts.
template <typename T, int kD>
__global__ void __launch_bounds__(kAttentionQueryTile)
    VarlenAttentionKernel(const T* qkv, const float* bias, const int32_t* cu_seqlens,
                          const int32_t* tiles, int heads, float scale, T* ctx) {
  __shared__ float k_s[kAttentionKeyTile][kD];
  __shared__ float v_s[kAttentionKeyTile][kD];
  const int b = tiles[2 * blockIdx.x];
  const int q0 = tiles[2 * blockIdx.x + 1];
  const int h = blockIdx.y;
  const int begin = cu_seqlens[b];
  const int end = cu_seqlens[b + 1];
  const int hidden = heads * kD;
  const size_t ld = static_cast<size_t>(3) * hidden;
  const int qi = begin + q0 + static_cast<int>(threadIdx.x);
  const bool active = qi < end;

  float q[kD];
  if (active) {
    const T* row = qkv + static_cast<size_t>(qi) * ld + h * kD;
#pragma unroll
    for (int d0 = 0; d0 < kD; d0 += kVecElems) {
      float tmp[kVecElems];
      LoadVec(row + d0, tmp);
#pragma unroll
      for (int e = 0; e < kVecElems; ++e) q[d0 + e] = (tmp[e] + bias[h * kD + d0 + e]) * scale;
    }
  }
  OnlineSoftmaxState st;
  float acc[kD];
#pragma unroll
  for (int d = 0; d < kD; ++d) acc[d] = 0.0f;

  constexpr int kVecsPerRow = kD / kVecElems;
  const int kcol = hidden + h * kD;
  const int vcol = 2 * hidden + h * kD;
  for (int k0 = begin; k0 < end; k0 += kAttentionKeyTile) {
    const int count = min(kAttentionKeyTile, end - k0);
    for (int e = threadIdx.x; e < count * kVecsPerRow; e += blockDim.x) {
      const int j = e / kVecsPerRow;
      const int d0 = (e % kVecsPerRow) * kVecElems;
      const T* row = qkv + static_cast<size_t>(k0 + j) * ld;
      float kv[kVecElems], vv[kVecElems];
      LoadVec(row + kcol + d0, kv);
      LoadVec(row + vcol + d0, vv);
#pragma unroll
      for (int i = 0; i < kVecElems; ++i) {
        k_s[j][d0 + i] = kv[i] + bias[kcol + d0 + i];
        v_s[j][d0 + i] = vv[i] + bias[vcol + d0 + i];
      }
    }
    __syncthreads();
    if (active) {
      for (int j0 = 0; j0 < count; j0 += kAttentionKeyChunk) {
        const int c = min(kAttentionKeyChunk, count - j0);
        float s[kAttentionKeyChunk];
#pragma unroll
        for (int cc = 0; cc < kAttentionKeyChunk; ++cc) {
          s[cc] = cc < c ? DotFma<kD>(q, k_s[j0 + cc]) : 0.0f;
        }
        OnlineSoftmaxUpdate<kD, kAttentionKeyChunk>(&st, s, c, &v_s[j0][0], kD, acc);
      }
    }
    __syncthreads();  // the tile is read by every thread before the next one overwrites it
  }
  if (active) {
    float out[kD];
    OnlineSoftmaxFinish<kD>(st, acc, out);
    T* dst = ctx + static_cast<size_t>(qi) * hidden + h * kD;
#pragma unroll
    for (int d0 = 0; d0 < kD; d0 += kVecElems) StoreVec(dst + d0, out + d0);
  }
}

// grid batch: one block per sequence; threads stride over the hidden dimension.
template <typename T>
__global__ void PackedMeanPoolKernel(const T* hidden_states, const int32_t* cu_seqlens, int hidden,
                                     bool cls, bool normalize, float* out) {
  extern __shared__ float pooled[];
  __shared__ float scratch[32];
  const int b = blockIdx.x;
  const int begin = cu_seqlens[b];
  const int count = cls ? 1 : cu_seqlens[b + 1] - begin;
  const T* base = hidden_states + static_cast<size_t>(begin) * hidden;
  float sq = 0.0f;
  for (int d = threadIdx.x; d < hidden; d += blockDim.x) {
    float acc = 0.0f;
    for (int s = 0; s < count; ++s) acc += ToFloat(base[static_cast<size_t>(s) * hidden + d]);
    MeanPoolFinish(&acc, 1, count);
    pooled[d] = acc;
    sq += acc * acc;
  }
  float inv = 1.0f;
  if (normalize) {
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    sq = WarpSum(sq);
    if (lane == 0) scratch[warp] = sq;
    __syncthreads();
    float total = 0.0f;
    for (int w = 0; w < static_cast<int>(blockDim.x >> 5); ++w) total += scratch[w];
    inv = L2InverseNorm(sqrtf(total));
  }
  __syncthreads();
  for (int d = threadIdx.x; d < hidden; d += blockDim.x) {
    out[static_cast<size_t>(b) * hidden + d] = pooled[d] * inv;
  }
}

int GridFor(size_t total, int threads) {
  const size_t blocks = (total + threads - 1) / threads;
  return static_cast<int>(blocks < 65535 * 16 ? blocks : 65535 * 16);
}

template <typename Fn>
cudaError_t Dispatch(DType dtype, Fn&& fn) {
  if (dtype == DType::kFloat16) {
    fn(static_cast<__half*>(nullptr));
  } else {
    fn(static_cast<__nv_bfloat16*>(nullptr));
  }
  return cudaGetLastError();
}

// Calls fn with std::integral_constant<int, vecs per lane> for a row of `hidden`.
template <typename Fn>
void DispatchVecs(int hidden, Fn&& fn) {
  switch (WarpRowVecsPerLane(hidden)) {
    case 1:
      fn(std::integral_constant<int, 1>{});
      break;
    case 2:
      fn(std::integral_constant<int, 2>{});
      break;
    case 3:
      fn(std::integral_constant<int, 3>{});
      break;
    default:
      fn(std::integral_constant<int, 4>{});
      break;
  }
}

bool RowWidthOk(int hidden) {
  return hidden > 0 && hidden % kVecElems == 0 && hidden <= kWarpRowMaxWidth;
}

int RowBlocks(int rows) { return (rows + kRowsPerBlock - 1) / kRowsPerBlock; }

}  // namespace

cudaError_t LaunchPackedEmbeddingLayerNorm(DType dtype, const int32_t* ids,
                                           const int32_t* positions, int tokens,
                                           const void* word_emb, const void* pos_emb,
                                           const void* type_emb, const float* gamma,
                                           const float* beta, int hidden, float eps, void* out,
                                           cudaStream_t stream) {
  if (!RowWidthOk(hidden) || tokens < 0) return cudaErrorInvalidValue;
  if (tokens == 0) return cudaSuccess;
  return Dispatch(dtype, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    DispatchVecs(hidden, [&](auto vecs) {
      PackedEmbeddingLayerNormKernel<T, decltype(vecs)::value>
          <<<RowBlocks(tokens), kRowsPerBlock * kWarpSize, 0, stream>>>(
              ids, positions, tokens, static_cast<const T*>(word_emb),
              static_cast<const T*>(pos_emb), static_cast<const T*>(type_emb), gamma, beta, hidden,
              eps, static_cast<T*>(out));
    });
  });
}

cudaError_t LaunchVarlenAttention(DType dtype, const void* qkv, const float* qkv_bias,
                                  const int32_t* cu_seqlens, const int32_t* tiles, int tile_count,
                                  int heads, int head_dim, void* ctx, cudaStream_t stream) {
  if ((head_dim != 32 && head_dim != 64) || heads <= 0 || heads > 65535 || tile_count < 0) {
    return cudaErrorInvalidValue;
  }
  if (tile_count == 0) return cudaSuccess;
  const float scale = 1.0f / sqrtf(static_cast<float>(head_dim));
  const dim3 grid(tile_count, heads);
  return Dispatch(dtype, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    if (head_dim == 32) {
      VarlenAttentionKernel<T, 32><<<grid, kAttentionQueryTile, 0, stream>>>(
          static_cast<const T*>(qkv), qkv_bias, cu_seqlens, tiles, heads, scale,
          static_cast<T*>(ctx));
    } else {
      VarlenAttentionKernel<T, 64><<<grid, kAttentionQueryTile, 0, stream>>>(
          static_cast<const T*>(qkv), qkv_bias, cu_seqlens, tiles, heads, scale,
          static_cast<T*>(ctx));
    }
  });
}

cudaError_t LaunchBiasGeluVec(DType dtype, void* x, const float* bias, int rows, int cols,
                              cudaStream_t stream) {
  if (cols <= 0 || cols % kVecElems != 0 || rows < 0) return cudaErrorInvalidValue;
  const size_t vectors = static_cast<size_t>(rows) * cols / kVecElems;
  if (vectors == 0) return cudaSuccess;
  return Dispatch(dtype, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    BiasGeluVecKernel<T><<<GridFor(vectors, kVecThreads), kVecThreads, 0, stream>>>(
        static_cast<T*>(x), bias, cols, vectors);
  });
}

cudaError_t LaunchWarpBiasResidualLayerNorm(DType dtype, const void* x, const float* bias,
                                            const void* residual, const float* gamma,
                                            const float* beta, int rows, int hidden, float eps,
                                            void* out, cudaStream_t stream) {
  if (!RowWidthOk(hidden) || rows < 0) return cudaErrorInvalidValue;
  if (rows == 0) return cudaSuccess;
  return Dispatch(dtype, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    DispatchVecs(hidden, [&](auto vecs) {
      WarpBiasResidualLayerNormKernel<T, decltype(vecs)::value>
          <<<RowBlocks(rows), kRowsPerBlock * kWarpSize, 0, stream>>>(
              static_cast<const T*>(x), bias, static_cast<const T*>(residual), gamma, beta, rows,
              hidden, eps, static_cast<T*>(out));
    });
  });
}

cudaError_t LaunchPackedMeanPool(DType dtype, const void* hidden_states, const int32_t* cu_seqlens,
                                 int batch, int hidden, bool cls, bool normalize, float* out,
                                 cudaStream_t stream) {
  if (hidden <= 0 || hidden > kMaxPoolWidth || batch < 0) return cudaErrorInvalidValue;
  if (batch == 0) return cudaSuccess;
  return Dispatch(dtype, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    PackedMeanPoolKernel<T><<<batch, kPoolThreads, hidden * sizeof(float), stream>>>(
        static_cast<const T*>(hidden_states), cu_seqlens, hidden, cls, normalize, out);
  });
}

}  // namespace tipperary::kernels
