// The "fused" variant's kernels (fused_kernels.h). Their arithmetic is fused_math.h's, the same
// functions the CPU tests run; this file only maps it onto threads, warps and shared memory
// (and, for attention, onto the tensor cores, whose operands are rounded to the dtype).
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

// Two values at a time: one packed conversion instruction instead of two scalar ones, which run
// at a fraction of the FMA rate. The lower column is the pair's low half.
template <typename T>
struct PairOf;
template <>
struct PairOf<__half> {
  using Type = __half2;
  static __device__ Type From(float lo, float hi) { return __floats2half2_rn(lo, hi); }
  static __device__ float2 Widen(Type v) { return __half22float2(v); }
};
template <>
struct PairOf<__nv_bfloat16> {
  using Type = __nv_bfloat162;
  static __device__ Type From(float lo, float hi) { return __floats2bfloat162_rn(lo, hi); }
  static __device__ float2 Widen(Type v) { return __bfloat1622float2(v); }
};

// 16-byte load of 8 fp16/bf16 values (p 16-byte aligned), widened to fp32.
template <typename T>
__device__ inline void LoadVec(const T* p, float* out) {
  using Pair = typename PairOf<T>::Type;
  const uint4 raw = *reinterpret_cast<const uint4*>(p);
  const Pair* e = reinterpret_cast<const Pair*>(&raw);
#pragma unroll
  for (int i = 0; i < kVecElems / 2; ++i) {
    const float2 f = PairOf<T>::Widen(e[i]);
    out[2 * i] = f.x;
    out[2 * i + 1] = f.y;
  }
}

template <typename T>
__device__ inline void StoreVec(T* p, const float* in) {
  using Pair = typename PairOf<T>::Type;
  uint4 raw;
  Pair* e = reinterpret_cast<Pair*>(&raw);
#pragma unroll
  for (int i = 0; i < kVecElems / 2; ++i) e[i] = PairOf<T>::From(in[2 * i], in[2 * i + 1]);
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

// grid rows, a thread per 8-element vector of the row: no 64-bit division to find a column.
template <typename T>
__global__ void BiasGeluVecKernel(T* x, const float* bias, int cols) {
  T* row = x + static_cast<size_t>(blockIdx.x) * cols;
  for (int col = threadIdx.x * kVecElems; col < cols; col += blockDim.x * kVecElems) {
    float v[kVecElems], b[kVecElems];
    LoadVec(row + col, v);
    LoadVecF32(bias + col, b);
#pragma unroll
    for (int e = 0; e < kVecElems; ++e) v[e] = Gelu(v[e] + b[e]);
    StoreVec(row + col, v);
  }
}

// The fragments of PTX's mma.sync.m16n8k16 (fp16/bf16 in, fp32 accumulate), as the PTX ISA
// lays them out for lane = 4 * g + t: A (16 x 16, row-major) a[0] = A[g][2t..2t+1],
// a[1] = A[g+8][2t..], a[2] = A[g][2t+8..], a[3] = A[g+8][2t+8..]; B (16 x 8) b[0] =
// B[2t..2t+1][g], b[1] = B[2t+8..2t+9][g]; C/D (16 x 8) c = {C[g][2t], C[g][2t+1], C[g+8][2t],
// C[g+8][2t+1]}. Two 16-bit values share a register, the lower column (or row) in the low half.
template <typename T>
__device__ inline uint32_t PackPair(float lo, float hi) {
  const typename PairOf<T>::Type v = PairOf<T>::From(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}

template <typename T>
__device__ inline void Mma16816(float* c, const uint32_t* a, uint32_t b0, uint32_t b1);
template <>
__device__ inline void Mma16816<__half>(float* c, const uint32_t* a, uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
template <>
__device__ inline void Mma16816<__nv_bfloat16>(float* c, const uint32_t* a, uint32_t b0,
                                               uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

template <typename T>
__device__ inline float2 LoadPair(const T* p) {  // p 4-byte aligned
  const uint32_t raw = *reinterpret_cast<const uint32_t*>(p);
  const T* e = reinterpret_cast<const T*>(&raw);
  return make_float2(ToFloat(e[0]), ToFloat(e[1]));
}

constexpr int kTcAttentionWarps = kAttentionQueryTile / 16;

// Flash-style attention on the tensor cores (flash attention 2's register layout): grid (tiles,
// heads), one warp per 16 of the tile's 64 query rows, everything of a query row in registers.
// Per 64-key tile, staged in shared memory (K row-major, V transposed, bias added): S = Q K^T
// with mma.sync, the online-softmax update on S's fragments (a row's values lie in the 4 lanes
// of a quad), P packed straight from S's registers into the A operand of O += P V. Q (bias added,
// pre-scaled), K, V and P are rounded to the dtype for the products, as flash attention does:
// the kernel matches VarlenAttentionEmulated (fp32 throughout) within the dtype's tolerance, not
// bit for bit.
// At head_dim 32, 5 blocks an SM fit without spills (measured with -Xptxas -v): 20 warps to
// hide the staging's latency instead of 16.
template <typename T, int kD>
__global__ void __launch_bounds__(kTcAttentionWarps* kWarpSize, kD == 32 ? 5 : 1)
    VarlenAttentionTcKernel(const T* qkv, const float* bias, const int32_t* cu_seqlens,
                            const int32_t* tiles, int heads, float scale, T* ctx) {
  constexpr int kKeys = kAttentionKeyTile;
  constexpr int kLdK = kD + 8;     // pitches in elements, padded so a fragment's 32 lanes
  constexpr int kLdV = kKeys + 8;  // hit 32 different banks
  constexpr int kVecsPerRow = kD / kVecElems;
  constexpr int kKeyBlocks = kKeys / 8;  // n-blocks of S
  constexpr int kOutBlocks = kD / 8;     // n-blocks of O
  __shared__ __align__(16) T k_s[kKeys * kLdK];
  __shared__ __align__(16) T v_t[kD * kLdV];  // V transposed: v_t[d][key]

  const int b = tiles[2 * blockIdx.x];
  const int q0 = tiles[2 * blockIdx.x + 1];
  const int h = blockIdx.y;
  const int begin = cu_seqlens[b];
  const int end = cu_seqlens[b + 1];
  const int hidden = heads * kD;
  const size_t ld = static_cast<size_t>(3) * hidden;
  const int warp = threadIdx.x >> 5;
  const int lane = threadIdx.x & 31;
  const int g = lane >> 2;
  const int t = lane & 3;
  const int row0 = begin + q0 + warp * 16 + g;  // this lane's two query rows: row0, row0 + 8
  const bool live0 = row0 < end;
  const bool live1 = row0 + 8 < end;

  // Q's A fragments, one per 16 columns; rows past the sequence are zeros (finite, not stored).
  uint32_t qa[kD / 16][4];
#pragma unroll
  for (int kk = 0; kk < kD / 16; ++kk) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {  // columns 2t.. and 2t+8..
      const int d = kk * 16 + half * 8 + 2 * t;
      const float b0 = bias[h * kD + d];
      const float b1 = bias[h * kD + d + 1];
      float2 lo = make_float2(0.0f, 0.0f), hi = make_float2(0.0f, 0.0f);
      if (live0) lo = LoadPair(qkv + static_cast<size_t>(row0) * ld + h * kD + d);
      if (live1) hi = LoadPair(qkv + static_cast<size_t>(row0 + 8) * ld + h * kD + d);
      qa[kk][2 * half] =
          live0 ? PackPair<T>((lo.x + b0) * scale, (lo.y + b1) * scale) : PackPair<T>(0.f, 0.f);
      qa[kk][2 * half + 1] =
          live1 ? PackPair<T>((hi.x + b0) * scale, (hi.y + b1) * scale) : PackPair<T>(0.f, 0.f);
    }
  }

  // The K/V columns this thread stages are the same for every tile.
  static_assert(kTcAttentionWarps * kWarpSize % kVecsPerRow == 0, "a thread's columns are fixed");
  const int d0 = (threadIdx.x % kVecsPerRow) * kVecElems;
  const int kcol = hidden + h * kD + d0;
  const int vcol = 2 * hidden + h * kD + d0;

  float o[kOutBlocks][4];
#pragma unroll
  for (int n = 0; n < kOutBlocks; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
  float m[2] = {-INFINITY, -INFINITY};
  float l[2] = {0.0f, 0.0f};  // this lane's share of its rows' sums; the quad's add up at the end

  for (int k0 = begin; k0 < end; k0 += kKeys) {
    const int count = min(kKeys, end - k0);
    __syncthreads();  // every warp is done with the last tile
    // Key rows past the sequence are zeros, so P V adds nothing there (their P is 0 too).
    for (int j = threadIdx.x / kVecsPerRow; j < kKeys; j += blockDim.x / kVecsPerRow) {
      float kv[kVecElems] = {}, vv[kVecElems] = {};
      if (j < count) {
        const T* src = qkv + static_cast<size_t>(k0 + j) * ld;
        float kb[kVecElems], vb[kVecElems];  // from L1 each time: registers are scarcer
        LoadVec(src + kcol, kv);
        LoadVec(src + vcol, vv);
        LoadVecF32(bias + kcol, kb);
        LoadVecF32(bias + vcol, vb);
#pragma unroll
        for (int i = 0; i < kVecElems; ++i) {
          kv[i] += kb[i];
          vv[i] += vb[i];
        }
      }
      StoreVec(k_s + j * kLdK + d0, kv);
#pragma unroll
      for (int i = 0; i < kVecElems; ++i) v_t[(d0 + i) * kLdV + j] = FromFloat<T>(vv[i]);
    }
    __syncthreads();

    // S (16 x 64) = Q K^T: B[d][key] = K[key][d], so a B register is two adjacent d of one key.
    float s[kKeyBlocks][4];
#pragma unroll
    for (int n = 0; n < kKeyBlocks; ++n) {
      s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
      const T* krow = k_s + (n * 8 + g) * kLdK + 2 * t;
#pragma unroll
      for (int kk = 0; kk < kD / 16; ++kk) {
        Mma16816<T>(s[n], qa[kk], *reinterpret_cast<const uint32_t*>(krow + kk * 16),
                    *reinterpret_cast<const uint32_t*>(krow + kk * 16 + 8));
      }
    }

    // The online-softmax update, rows g (r = 0) and g + 8 (r = 1); keys past `count` are -inf.
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float tile_max = -INFINITY;
#pragma unroll
      for (int n = 0; n < kKeyBlocks; ++n) {
#pragma unroll
        for (int c = 0; c < 2; ++c) {
          if (n * 8 + 2 * t + c >= count) s[n][2 * r + c] = -INFINITY;
          tile_max = fmaxf(tile_max, s[n][2 * r + c]);
        }
      }
      tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 1));
      tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 2));
      const float m_new = fmaxf(m[r], tile_max);  // finite: a tile holds at least one key
      const float alpha = __expf(m[r] - m_new);   // 0 on the first tile (m = -inf)
      float sum = 0.0f;
#pragma unroll
      for (int n = 0; n < kKeyBlocks; ++n) {
#pragma unroll
        for (int c = 0; c < 2; ++c) {
          s[n][2 * r + c] = __expf(s[n][2 * r + c] - m_new);
          sum += s[n][2 * r + c];
        }
      }
      l[r] = l[r] * alpha + sum;
      m[r] = m_new;
#pragma unroll
      for (int n = 0; n < kOutBlocks; ++n) {
        o[n][2 * r] *= alpha;
        o[n][2 * r + 1] *= alpha;
      }
    }

    // O (16 x kD) += P (16 x 64) V: P's A fragment for keys 16j.. is S's n-blocks 2j and 2j+1;
    // B[key][d] = v_t[d][key], two adjacent keys of one d a register.
#pragma unroll
    for (int j = 0; j < kKeys / 16; ++j) {
      const uint32_t pa[4] = {PackPair<T>(s[2 * j][0], s[2 * j][1]),
                              PackPair<T>(s[2 * j][2], s[2 * j][3]),
                              PackPair<T>(s[2 * j + 1][0], s[2 * j + 1][1]),
                              PackPair<T>(s[2 * j + 1][2], s[2 * j + 1][3])};
#pragma unroll
      for (int n = 0; n < kOutBlocks; ++n) {
        const T* vrow = v_t + (n * 8 + g) * kLdV + j * 16 + 2 * t;
        Mma16816<T>(o[n], pa, *reinterpret_cast<const uint32_t*>(vrow),
                    *reinterpret_cast<const uint32_t*>(vrow + 8));
      }
    }
  }

#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float sum = l[r];
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    sum += __shfl_xor_sync(0xffffffffu, sum, 2);
    const int row = row0 + 8 * r;
    if (row < end) {
      const float inv = 1.0f / sum;
      T* dst = ctx + static_cast<size_t>(row) * hidden + h * kD + 2 * t;
#pragma unroll
      for (int n = 0; n < kOutBlocks; ++n) {
        *reinterpret_cast<uint32_t*>(dst + n * 8) =
            PackPair<T>(o[n][2 * r] * inv, o[n][2 * r + 1] * inv);
      }
    }
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
      VarlenAttentionTcKernel<T, 32><<<grid, kTcAttentionWarps * kWarpSize, 0, stream>>>(
          static_cast<const T*>(qkv), qkv_bias, cu_seqlens, tiles, heads, scale,
          static_cast<T*>(ctx));
    } else {
      VarlenAttentionTcKernel<T, 64><<<grid, kTcAttentionWarps * kWarpSize, 0, stream>>>(
          static_cast<const T*>(qkv), qkv_bias, cu_seqlens, tiles, heads, scale,
          static_cast<T*>(ctx));
    }
  });
}

cudaError_t LaunchBiasGeluVec(DType dtype, void* x, const float* bias, int rows, int cols,
                              cudaStream_t stream) {
  if (cols <= 0 || cols % kVecElems != 0 || rows < 0) return cudaErrorInvalidValue;
  if (rows == 0) return cudaSuccess;
  const int vectors = cols / kVecElems;
  const int threads = vectors >= kVecThreads ? kVecThreads : (vectors + 31) / 32 * 32;
  return Dispatch(dtype, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    BiasGeluVecKernel<T><<<rows, threads, 0, stream>>>(static_cast<T*>(x), bias, cols);
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
