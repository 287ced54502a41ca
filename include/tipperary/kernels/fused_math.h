// The algorithms of the fused ("fused" variant) CUDA kernels, written once for host and device.
//
// The device kernels call these functions on their registers and shared memory; the CPU unit
// tests call the same functions (plus the host-only emulations below, which replay a warp's or a
// block's order of operations lane by lane) and compare them with straightforward references.
// So the arithmetic of the packed, flash-style forward pass is proven on the CPU, and only the
// thread mapping (which lane holds what) is left to the GPU tests.
//
//   PackedLayout layout = BuildPackedLayout({5, 130, 7}, kAttentionQueryTile);
//   OnlineSoftmaxState st;  float acc[64] = {};
//   OnlineSoftmaxUpdate<64, kAttentionKeyChunk>(&st, scores, count, v_rows, 64, acc);
//   OnlineSoftmaxFinish<64>(st, acc, out);
#pragma once

#include <cmath>
#include <cstdint>

#include "tipperary/kernels/math.h"

#ifndef __CUDACC__
#include <vector>
#endif

// Unrolls the loop in device code (only the device pass defines __CUDA_ARCH__; the host
// compiler would warn about an unknown pragma).
#ifdef __CUDA_ARCH__
#define TIPPERARY_UNROLL _Pragma("unroll")
#else
#define TIPPERARY_UNROLL
#endif

namespace tipperary::kernels {

// Query rows per attention block (a warp per 16 rows) and the keys staged in shared memory at
// a time (one online-softmax update each).
constexpr int kAttentionQueryTile = 64;
constexpr int kAttentionKeyTile = 64;
// Keys the CPU emulation scores at once before one online-softmax update (a register array).
constexpr int kAttentionKeyChunk = 8;
// Elements per 16-byte load of fp16/bf16.
constexpr int kVecElems = 8;
constexpr int kWarpSize = 32;
// Widest row the warp-per-row LayerNorm keeps in registers: 4 vectors of 8 per lane.
constexpr int kWarpRowMaxVecsPerLane = 4;
constexpr int kWarpRowMaxWidth = kWarpSize * kVecElems * kWarpRowMaxVecsPerLane;  // 1024

// GELU, tanh approximation ("gelu_new"/"gelu_pytorch_tanh"; cuBLASLt's GELU epilogue uses it).
// BERT and MiniLM use the exact erf form (Gelu in math.h): this one exists to measure the
// difference, not to replace it.
TIPPERARY_HD inline float GeluTanh(float x) {
  const float k = 0.7978845608028654f;  // sqrt(2/pi)
  return 0.5f * x * (1.0f + tanhf(k * (x + 0.044715f * x * x * x)));
}

// ---- Online softmax (flash attention's running max / running sum) ----

struct OnlineSoftmaxState {
  float max = -INFINITY;  // running max of the scaled scores seen so far
  float sum = 0.0f;       // sum of exp(score - max) over them
};

// Folds `count` (<= kChunk) scores and their value rows into the running state and the
// accumulator acc[kHeadDim] (= sum_j exp(s_j - max) * v_j). Value row c is v[c * v_stride ...].
// Scores are already scaled by 1/sqrt(head_dim); keys outside the sequence are simply not passed
// (packed sequences need no mask values). The order of every sum is fixed, so the CPU and the
// device agree to rounding of expf.
template <int kHeadDim, int kChunk>
TIPPERARY_HD inline void OnlineSoftmaxUpdate(OnlineSoftmaxState* st, const float* scores, int count,
                                             const float* v, int v_stride, float* acc) {
  float chunk_max = st->max;
  TIPPERARY_UNROLL
  for (int c = 0; c < kChunk; ++c) {
    if (c < count) chunk_max = fmaxf(chunk_max, scores[c]);
  }
  if (chunk_max == -INFINITY) return;  // nothing to fold (count == 0)
  // exp(-inf) == 0: the first chunk starts from an empty state.
  const float correction = expf(st->max - chunk_max);
  st->sum *= correction;
  TIPPERARY_UNROLL
  for (int d = 0; d < kHeadDim; ++d) acc[d] *= correction;
  TIPPERARY_UNROLL
  for (int c = 0; c < kChunk; ++c) {
    if (c < count) {
      const float p = expf(scores[c] - chunk_max);
      st->sum += p;
      const float* row = v + c * v_stride;
      TIPPERARY_UNROLL
      for (int d = 0; d < kHeadDim; ++d) acc[d] = fmaf(p, row[d], acc[d]);
    }
  }
  st->max = chunk_max;
}

// out[d] = acc[d] / sum; an empty state (no keys) gives zeros, never NaN.
template <int kHeadDim>
TIPPERARY_HD inline void OnlineSoftmaxFinish(const OnlineSoftmaxState& st, const float* acc,
                                             float* out) {
  const float inv = st.sum > 0.0f ? 1.0f / st.sum : 0.0f;
  for (int d = 0; d < kHeadDim; ++d) out[d] = acc[d] * inv;
}

// q . k over kHeadDim in index order with fused multiply-adds (the device's order).
template <int kHeadDim>
TIPPERARY_HD inline float DotFma(const float* q, const float* k) {
  float s = 0.0f;
  TIPPERARY_UNROLL
  for (int d = 0; d < kHeadDim; ++d) s = fmaf(q[d], k[d], s);
  return s;
}

// ---- Warp-per-row LayerNorm: which lane owns which elements, and the per-lane sums ----

// Lane `lane` owns the 8-element vectors lane, lane + 32, lane + 64, ... of the row: slot c of
// the lane is vector lane + 32 * c, present when it is < n / 8 (n is a multiple of 8).
TIPPERARY_HD inline int WarpRowVector(int lane, int slot) { return lane + kWarpSize * slot; }

// Vector slots per lane for a row of n elements (n % 8 == 0, n <= kWarpRowMaxWidth).
TIPPERARY_HD inline int WarpRowVecsPerLane(int n) {
  const int vecs = n / kVecElems;
  return (vecs + kWarpSize - 1) / kWarpSize;
}

// One lane's partial sum of (x - center)^p, p = 1 or 2, over its present slots, slot by slot and
// element by element (vals[slot * 8 + e]). center = 0 gives the plain sum.
template <int kVecs, bool kSquare>
TIPPERARY_HD inline float WarpRowLanePartial(const float* vals, int lane, int n, float center) {
  float s = 0.0f;
  const int vecs = n / kVecElems;
  TIPPERARY_UNROLL
  for (int c = 0; c < kVecs; ++c) {
    if (WarpRowVector(lane, c) < vecs) {
      TIPPERARY_UNROLL
      for (int e = 0; e < kVecElems; ++e) {
        const float d = vals[c * kVecElems + e] - center;
        s += kSquare ? d * d : d;
      }
    }
  }
  return s;
}

#ifndef __CUDACC__
// ---- Host-only emulations of the device's cooperative steps ----

// The xor-butterfly of __shfl_xor_sync (offsets 16, 8, 4, 2, 1): every lane ends with the same
// total, summed in this tree order. lanes[32] is overwritten.
inline float ButterflySumEmulated(float* lanes) {
  for (int offset = kWarpSize / 2; offset > 0; offset >>= 1) {
    float next[kWarpSize];
    for (int l = 0; l < kWarpSize; ++l) next[l] = lanes[l] + lanes[l ^ offset];
    for (int l = 0; l < kWarpSize; ++l) lanes[l] = next[l];
  }
  return lanes[0];
}

// The warp-per-row LayerNorm exactly as one warp computes it: lanes load their 8-wide vectors,
// two butterflied passes (mean, then the variance around it), then scale. n % 8 == 0,
// n <= kWarpRowMaxWidth. out may alias x.
inline void WarpLayerNormRowEmulated(const float* x, const float* gamma, const float* beta, int n,
                                     float eps, float* out) {
  constexpr int kV = kWarpRowMaxVecsPerLane;
  float regs[kWarpSize][kV * kVecElems] = {};
  const int vecs = n / kVecElems;
  for (int lane = 0; lane < kWarpSize; ++lane) {
    for (int c = 0; c < kV; ++c) {
      const int vi = WarpRowVector(lane, c);
      if (vi >= vecs) continue;
      for (int e = 0; e < kVecElems; ++e) regs[lane][c * kVecElems + e] = x[vi * kVecElems + e];
    }
  }
  float partial[kWarpSize];
  for (int lane = 0; lane < kWarpSize; ++lane) {
    partial[lane] = WarpRowLanePartial<kV, false>(regs[lane], lane, n, 0.0f);
  }
  const float mean = ButterflySumEmulated(partial) / static_cast<float>(n);
  for (int lane = 0; lane < kWarpSize; ++lane) {
    partial[lane] = WarpRowLanePartial<kV, true>(regs[lane], lane, n, mean);
  }
  const float var = ButterflySumEmulated(partial) / static_cast<float>(n);
  const float rstd = 1.0f / sqrtf(var + eps);
  for (int lane = 0; lane < kWarpSize; ++lane) {
    for (int c = 0; c < kV; ++c) {
      const int vi = WarpRowVector(lane, c);
      if (vi >= vecs) continue;
      for (int e = 0; e < kVecElems; ++e) {
        const int i = vi * kVecElems + e;
        out[i] = LayerNormApply(regs[lane][c * kVecElems + e], mean, rstd, gamma[i], beta[i]);
      }
    }
  }
}

// Sequences packed back to back without padding: sequence b owns token rows
// [cu_seqlens[b], cu_seqlens[b + 1]); positions[t] is t's index within its sequence; the
// attention grid has one block per (sequence, query tile) listed in tiles as (b, first query).
struct PackedLayout {
  std::vector<int32_t> cu_seqlens;  // n + 1 offsets, cu_seqlens[0] == 0
  std::vector<int32_t> positions;   // [tokens]
  std::vector<int32_t> tiles;       // pairs (sequence, first query row within it)
  int tokens() const { return cu_seqlens.empty() ? 0 : cu_seqlens.back(); }
  int tile_count() const { return static_cast<int>(tiles.size() / 2); }
};

// Writes the packed layout of sequences of the given lengths into caller-owned arrays (the
// encoder's pinned staging buffer): cu_seqlens [n + 1], positions [sum of lengths], tiles
// [2 * tile count]. Returns the tile count. BuildPackedLayout is the same in vectors.
inline int WritePackedLayout(const int32_t* lengths, int n, int query_tile, int32_t* cu_seqlens,
                             int32_t* positions, int32_t* tiles) {
  int tile_count = 0;
  int32_t offset = 0;
  cu_seqlens[0] = 0;
  for (int b = 0; b < n; ++b) {
    const int32_t len = lengths[b];
    for (int32_t i = 0; i < len; ++i) positions[offset + i] = i;
    for (int32_t q = 0; q < len; q += query_tile) {
      tiles[2 * tile_count] = b;
      tiles[2 * tile_count + 1] = q;
      ++tile_count;
    }
    offset += len;
    cu_seqlens[b + 1] = offset;
  }
  return tile_count;
}

// The most tiles `sequences` sequences of `tokens` tokens in all can need.
inline int MaxPackedTiles(int tokens, int sequences, int query_tile) {
  return tokens / query_tile + sequences;
}

template <typename Lengths>
PackedLayout BuildPackedLayout(const Lengths& lengths, int query_tile) {
  std::vector<int32_t> lens(lengths.begin(), lengths.end());
  const int n = static_cast<int>(lens.size());
  int tokens = 0;
  for (int32_t l : lens) tokens += l;
  PackedLayout p;
  p.cu_seqlens.resize(static_cast<size_t>(n) + 1);
  p.positions.resize(static_cast<size_t>(tokens));
  p.tiles.resize(2 * static_cast<size_t>(MaxPackedTiles(tokens, n, query_tile)));
  const int tiles = WritePackedLayout(lens.data(), n, query_tile, p.cu_seqlens.data(),
                                      p.positions.data(), p.tiles.data());
  p.tiles.resize(2 * static_cast<size_t>(tiles));
  return p;
}

// The fused attention kernel's algorithm for every (sequence, head, query) of a packed batch:
// qkv is the QKV GEMM's output [tokens, 3 * hidden] without bias (query | key | value columns,
// head h at columns h * head_dim of each third), qkv_bias [3 * hidden] is added as the rows are
// read, and ctx [tokens, hidden] receives softmax(q k^T / sqrt(head_dim)) v per head. Keys are
// folded in chunks of kAttentionKeyChunk from the sequence's first row, in fp32 throughout; the
// device folds kAttentionKeyTile at a time with its operands rounded to the dtype, the same
// function up to rounding (the GPU test's tolerance).
template <int kHeadDim>
void VarlenAttentionEmulated(const float* qkv, const float* qkv_bias, const PackedLayout& layout,
                             int heads, float* ctx) {
  const int hidden = heads * kHeadDim;
  const float scale = 1.0f / sqrtf(static_cast<float>(kHeadDim));
  const int sequences = static_cast<int>(layout.cu_seqlens.size()) - 1;
  std::vector<float> k_rows, v_rows;
  for (int b = 0; b < sequences; ++b) {
    const int begin = layout.cu_seqlens[b];
    const int len = layout.cu_seqlens[b + 1] - begin;
    for (int h = 0; h < heads; ++h) {
      const int qc = h * kHeadDim;
      const int kc = hidden + h * kHeadDim;
      const int vc = 2 * hidden + h * kHeadDim;
      k_rows.assign(static_cast<size_t>(len) * kHeadDim, 0.0f);
      v_rows.assign(static_cast<size_t>(len) * kHeadDim, 0.0f);
      for (int j = 0; j < len; ++j) {
        const float* row = qkv + static_cast<size_t>(begin + j) * 3 * hidden;
        for (int d = 0; d < kHeadDim; ++d) {
          k_rows[static_cast<size_t>(j) * kHeadDim + d] = row[kc + d] + qkv_bias[kc + d];
          v_rows[static_cast<size_t>(j) * kHeadDim + d] = row[vc + d] + qkv_bias[vc + d];
        }
      }
      for (int i = 0; i < len; ++i) {
        const float* row = qkv + static_cast<size_t>(begin + i) * 3 * hidden;
        float q[kHeadDim];
        for (int d = 0; d < kHeadDim; ++d) q[d] = (row[qc + d] + qkv_bias[qc + d]) * scale;
        OnlineSoftmaxState st;
        float acc[kHeadDim] = {};
        for (int j0 = 0; j0 < len; j0 += kAttentionKeyChunk) {
          const int count = len - j0 < kAttentionKeyChunk ? len - j0 : kAttentionKeyChunk;
          float scores[kAttentionKeyChunk];
          for (int c = 0; c < count; ++c) {
            scores[c] = DotFma<kHeadDim>(q, &k_rows[static_cast<size_t>(j0 + c) * kHeadDim]);
          }
          OnlineSoftmaxUpdate<kHeadDim, kAttentionKeyChunk>(
              &st, scores, count, &v_rows[static_cast<size_t>(j0) * kHeadDim], kHeadDim, acc);
        }
        OnlineSoftmaxFinish<kHeadDim>(st, acc, ctx + static_cast<size_t>(begin + i) * hidden + qc);
      }
    }
  }
}
#endif  // __CUDACC__

}  // namespace tipperary::kernels
