#include "amx_attention.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "avx512_bf16.h"

#if defined(__x86_64__)
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace tipperary::model::internal {

#if defined(__x86_64__)
namespace {

// Query rows per block (an AMX tile's rows) and the padding of keys (one PV step of K).
constexpr int kTile = 16;
constexpr int kKeyStep = 32;

// Linux: arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) asks for the AMX tile state.
constexpr int kArchReqXcompPerm = 0x1023;
constexpr int kXfeatureXtiledata = 18;

// The AMX tile configuration (palette 1): all eight tiles 16 rows x 64 bytes.
struct alignas(64) TileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

#define TIPPERARY_AMX \
  __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")))
// What runs without the tiles too (the packing, the softmax, the VDPBF16PS kernel) is
// TIPPERARY_AVX512BF16 (avx512_bf16.h).

int RoundUp(int n, int to) { return (n + to - 1) / to * to; }

template <typename T>
T* Grow(AlignedVector<T>& v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

// Transposes a 16 x 16 matrix of 32-bit elements held one row per register.
TIPPERARY_AVX512BF16 inline void Transpose16x16(__m512i r[16]) {
  __m512i t[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
  }
  // u[4 i + j], 128-bit lane L: column 4 L + j of rows 4 i .. 4 i + 3.
  __m512i u[16];
  for (int i = 0; i < 4; ++i) {
    u[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
    u[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
    u[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
    u[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
  }
  for (int j = 0; j < 4; ++j) {
    const __m512i a = _mm512_shuffle_i32x4(u[j], u[4 + j], _MM_SHUFFLE(2, 0, 2, 0));
    const __m512i b = _mm512_shuffle_i32x4(u[j], u[4 + j], _MM_SHUFFLE(3, 1, 3, 1));
    const __m512i c = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], _MM_SHUFFLE(2, 0, 2, 0));
    const __m512i e = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], _MM_SHUFFLE(3, 1, 3, 1));
    r[j] = _mm512_shuffle_i32x4(a, c, _MM_SHUFFLE(2, 0, 2, 0));
    r[4 + j] = _mm512_shuffle_i32x4(b, e, _MM_SHUFFLE(2, 0, 2, 0));
    r[8 + j] = _mm512_shuffle_i32x4(a, c, _MM_SHUFFLE(3, 1, 3, 1));
    r[12 + j] = _mm512_shuffle_i32x4(b, e, _MM_SHUFFLE(3, 1, 3, 1));
  }
}

// One head of one sequence, packed into the calling thread's scratch (AmxAttentionRows(len)
// rows each; rows from len up are zero, so padded keys and queries stay finite):
// - q: row-major, d per row;
// - k: per 16 keys and 32-element step t of d, one 16 x 16 tile of bf16 pairs whose row i holds
//   pair i of the 16 keys (the B operand of Q K^T): a transpose of the keys' 32-bit pairs;
// - v: per 32 keys and 16 values, one tile whose row r holds keys 2 r and 2 r + 1 interleaved
//   value by value (the B operand of P V).
struct Packed {
  const uint16_t* q;
  const uint16_t* k;
  const uint16_t* v;
};

// Elements 32 t .. 32 t + 31 of row r of a head's Q, K or V, or zeros past the sequence.
TIPPERARY_AVX512BF16 inline __m512i HeadRow(const uint16_t* base, size_t ld, int len, int r,
                                            int t) {
  return r < len ? _mm512_loadu_si512(base + static_cast<size_t>(r) * ld + t * 32)
                 : _mm512_setzero_si512();
}

// Word indices of _mm512_permutex2var_epi16 interleaving the first (kInterleaveLo) or last
// (kInterleaveHi) 16 words of two registers.
alignas(64) constexpr uint16_t kInterleaveLo[32] = {0,  32, 1,  33, 2,  34, 3,  35, 4,  36, 5,
                                                    37, 6,  38, 7,  39, 8,  40, 9,  41, 10, 42,
                                                    11, 43, 12, 44, 13, 45, 14, 46, 15, 47};
alignas(64) constexpr uint16_t kInterleaveHi[32] = {16, 48, 17, 49, 18, 50, 19, 51, 20, 52, 21,
                                                    53, 22, 54, 23, 55, 24, 56, 25, 57, 26, 58,
                                                    27, 59, 28, 60, 29, 61, 30, 62, 31, 63};

TIPPERARY_AVX512BF16 Packed PackHead(const uint16_t* qkv, size_t ld, int len, int heads, int d,
                                     int head, AmxAttentionScratch* scratch) {
  const int h = heads * d;
  const int rows = RoundUp(len, kKeyStep);
  const int steps = d / 32;
  const size_t elements = static_cast<size_t>(rows) * d;
  uint16_t* q = Grow(scratch->q, elements);
  uint16_t* k = Grow(scratch->k, elements);
  uint16_t* v = Grow(scratch->v, elements);
  const uint16_t* qs = qkv + static_cast<size_t>(head) * d;
  const uint16_t* ks = qs + h;
  const uint16_t* vs = qs + 2 * h;
  for (int r = 0; r < rows; ++r) {
    for (int t = 0; t < steps; ++t)
      _mm512_storeu_si512(q + r * d + t * 32, HeadRow(qs, ld, len, r, t));
  }
  for (int r0 = 0; r0 < rows; r0 += kTile) {
    for (int t = 0; t < steps; ++t) {
      __m512i block[16];
      for (int i = 0; i < 16; ++i) block[i] = HeadRow(ks, ld, len, r0 + i, t);
      Transpose16x16(block);
      uint16_t* tile = k + (static_cast<size_t>(r0 / kTile) * steps + t) * 512;
      for (int i = 0; i < 16; ++i) _mm512_storeu_si512(tile + i * 32, block[i]);
    }
  }
  // Value c of key 2 r + e goes to element 2 (c % 16) + e of its tile's row r % 16.
  const __m512i lo = _mm512_load_si512(kInterleaveLo);
  const __m512i hi = _mm512_load_si512(kInterleaveHi);
  const int blocks = d / 16;
  for (int r = 0; r < rows; r += 2) {
    uint16_t* tile = v + static_cast<size_t>(r / kKeyStep) * blocks * 512 + (r % kKeyStep / 2) * 32;
    for (int t = 0; t < steps; ++t) {
      const __m512i even = HeadRow(vs, ld, len, r, t), odd = HeadRow(vs, ld, len, r + 1, t);
      _mm512_storeu_si512(tile + (2 * t) * 512, _mm512_permutex2var_epi16(even, lo, odd));
      _mm512_storeu_si512(tile + (2 * t + 1) * 512, _mm512_permutex2var_epi16(even, hi, odd));
    }
  }
  return {q, k, v};
}

// What both kernels derive from (len, d) for one (sequence, head) block, and the scratch of one
// pass of 2 x 16 query rows: scores s, softmax numerators p (`keys` wide) and the reciprocals of
// their sums.
struct Pass {
  static constexpr int kRows = 2 * kTile;  // query rows per pass: two tiles
  int keys;                                // len rounded up to a PV step of keys
  int steps;                               // QK^T steps of 32 along d
  int blocks;                              // PV output blocks of 16 along d
  uint16_t* p;
  float* s;
  float inv[kRows];

  Pass(int len, int d, AmxAttentionScratch* scratch)
      : keys(RoundUp(len, kKeyStep)),
        steps(d / 32),
        blocks(d / 16),
        p(Grow(scratch->p, static_cast<size_t>(kRows) * keys)),
        s(Grow(scratch->s, static_cast<size_t>(kRows) * keys)) {}
};

// 2^y for 16 lanes, y <= 0 and finite: 2^round(y) by VSCALEFPS times a degree-3 minimax
// polynomial of 2^f, f in [-1/2, 1/2], relative error 7.5e-5 — far below the 2^-9 of the bf16
// the result is rounded to, and three FMAs fewer than a float-accurate exp.
TIPPERARY_AVX512BF16 inline __m512 Exp2Bf16(__m512 y) {
  const __m512 n = _mm512_roundscale_ps(y, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 f = _mm512_sub_ps(y, n);
  __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(0.0551716704f), f, _mm512_set1_ps(0.242611143f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.693260987f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.999928072f));
  return _mm512_scalef_ps(p, n);
}

// exp(scale (s - max)) for the 16 scores at s, given vscale = scale log2(e) and
// offset = max vscale.
TIPPERARY_AVX512BF16 inline __m512 ExpAt(const float* s, __m512 vscale, __m512 offset) {
  return Exp2Bf16(_mm512_fmsub_ps(_mm512_loadu_ps(s), vscale, offset));
}

// p[0..keys) (bf16) = exp(scale * (s - max s)) over s[0..len), zeros from len to keys (masked
// keys); returns 1 / their sum, by which the row's outputs are multiplied after P V (len
// divisions become d). keys is a multiple of 32.
TIPPERARY_AVX512BF16 float SoftmaxToBf16(const float* s, int len, int keys, float scale,
                                         uint16_t* p) {
  // Whole vectors unmasked, in two independent chains; the masks only for the last ones.
  __m512 max0 = _mm512_set1_ps(-3.0e38f), max1 = max0;
  int j = 0;
  for (; j + 32 <= len; j += 32) {
    max0 = _mm512_max_ps(max0, _mm512_loadu_ps(s + j));
    max1 = _mm512_max_ps(max1, _mm512_loadu_ps(s + j + 16));
  }
  for (; j < len; j += 16)
    max0 = _mm512_mask_max_ps(max0, LanesBelow(j, len), max0, _mm512_loadu_ps(s + j));
  // exp(scale (s - max)) = 2^(s scale log2(e) - max scale log2(e)).
  const __m512 vscale = _mm512_set1_ps(scale * 1.44269504088896341f);
  const __m512 offset =
      _mm512_mul_ps(_mm512_set1_ps(_mm512_reduce_max_ps(_mm512_max_ps(max0, max1))), vscale);
  __m512 sum0 = _mm512_setzero_ps(), sum1 = sum0;
  for (j = 0; j + 32 <= len; j += 32) {
    const __m512 lo = ExpAt(s + j, vscale, offset), hi = ExpAt(s + j + 16, vscale, offset);
    sum0 = _mm512_add_ps(sum0, lo);
    sum1 = _mm512_add_ps(sum1, hi);
    _mm512_storeu_si512(p + j, ToBf16x32(lo, hi));
  }
  for (; j < keys; j += 32) {
    const __m512 lo = _mm512_maskz_mov_ps(LanesBelow(j, len), ExpAt(s + j, vscale, offset));
    const __m512 hi =
        _mm512_maskz_mov_ps(LanesBelow(j + 16, len), ExpAt(s + j + 16, vscale, offset));
    sum0 = _mm512_add_ps(sum0, lo);
    sum1 = _mm512_add_ps(sum1, hi);
    _mm512_storeu_si512(p + j, ToBf16x32(lo, hi));
  }
  return 1.0f / _mm512_reduce_add_ps(_mm512_add_ps(sum0, sum1));
}

// out[0..d) = bf16(row[0..d) * inv).
TIPPERARY_AVX512BF16 inline void ScaleRowToBf16(const float* row, int d, float inv, uint16_t* out) {
  const __m512 v = _mm512_set1_ps(inv);
  for (int c = 0; c < d; c += 32) {
    _mm512_storeu_si512(out + c, ToBf16x32(_mm512_mul_ps(_mm512_loadu_ps(row + c), v),
                                           _mm512_mul_ps(_mm512_loadu_ps(row + c + 16), v)));
  }
}

}  // namespace

bool AmxAttentionAvailable() {
  static const bool available = [] {
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512bf16") || !__builtin_cpu_supports("avx512bw")) {
      return false;
    }
    // CPUID.(EAX=7,ECX=0):EDX bit 22 = AMX-BF16, bit 24 = AMX-TILE.
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d) == 0) return false;
    if ((d & (1u << 22)) == 0 || (d & (1u << 24)) == 0) return false;
    return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
  }();
  return available;
}

TIPPERARY_AMX void AmxAttention(const uint16_t* qkv, size_t ld, int len, int heads, int d, int head,
                                float scale, uint16_t* ctx, int ctx_stride,
                                AmxAttentionScratch* scratch) {
  const Packed packed = PackHead(qkv, ld, len, heads, d, head, scratch);
  const uint16_t* q = packed.q;
  const uint16_t* kp = packed.k;
  const uint16_t* vp = packed.v;
  const int stride = d;  // packed Q rows
  constexpr int kRows = Pass::kRows;
  Pass pass(len, d, scratch);
  const int keys = pass.keys, steps = pass.steps, blocks = pass.blocks;
  uint16_t* p = pass.p;
  float* s = pass.s;
  float* o = Grow(scratch->o, static_cast<size_t>(kRows) * d);

  // Loaded on every call: oneDNN's kernels on this thread configure the tiles their own way.
  TileConfig config;
  for (int t = 0; t < 8; ++t) {
    config.colsb[t] = 64;
    config.rows[t] = kTile;
  }
  _tile_loadconfig(&config);
  // Each pass is a 2 x 2 block of tiles (two query tiles x two key or value tiles), so that four
  // independent TDPBF16PS overlap instead of each waiting on the one before.
  // Tiles: 0, 3, 4, 5 accumulate; 1, 2 hold Q (then P); 6, 7 hold K (then V).
  const size_t s_half = static_cast<size_t>(kTile) * keys;
  for (int q0 = 0; q0 < len; q0 += kRows) {
    const uint16_t* qa = q + static_cast<size_t>(q0) * stride;
    const uint16_t* qb = qa + static_cast<size_t>(kTile) * stride;
    for (int j = 0; j < keys / kTile; j += 2) {
      _tile_zero(0);
      _tile_zero(3);
      _tile_zero(4);
      _tile_zero(5);
      for (int t = 0; t < steps; ++t) {
        _tile_loadd(1, qa + t * 32, stride * 2);
        _tile_loadd(2, qb + t * 32, stride * 2);
        _tile_loadd(6, kp + (static_cast<size_t>(j) * steps + t) * 512, 64);
        _tile_loadd(7, kp + (static_cast<size_t>(j + 1) * steps + t) * 512, 64);
        _tile_dpbf16ps(0, 1, 6);
        _tile_dpbf16ps(4, 2, 6);
        _tile_dpbf16ps(3, 1, 7);
        _tile_dpbf16ps(5, 2, 7);
      }
      _tile_stored(0, s + j * kTile, keys * 4);
      _tile_stored(3, s + (j + 1) * kTile, keys * 4);
      _tile_stored(4, s + s_half + j * kTile, keys * 4);
      _tile_stored(5, s + s_half + (j + 1) * kTile, keys * 4);
    }
    const int n = std::min(kRows, len - q0);
    for (int r = 0; r < n; ++r) {
      pass.inv[r] = SoftmaxToBf16(s + static_cast<size_t>(r) * keys, len, keys, scale,
                                  p + static_cast<size_t>(r) * keys);
    }
    // Rows past the sequence only feed output rows that are dropped; zeros keep them finite.
    std::memset(p + static_cast<size_t>(n) * keys, 0, static_cast<size_t>(kRows - n) * keys * 2);
    // fp32 outputs into o, then normalised and rounded into ctx row by row.
    float* out = o;
    const int out_stride = d;
    float* out_b = out + static_cast<size_t>(kTile) * out_stride;
    for (int c = 0; c < blocks; c += 2) {
      _tile_zero(0);
      _tile_zero(3);
      _tile_zero(4);
      _tile_zero(5);
      for (int b = 0; b < keys / kKeyStep; ++b) {
        _tile_loadd(1, p + b * kKeyStep, keys * 2);
        _tile_loadd(2, p + s_half + b * kKeyStep, keys * 2);
        const uint16_t* vb = vp + (static_cast<size_t>(b) * blocks + c) * 512;
        _tile_loadd(6, vb, 64);
        _tile_loadd(7, vb + 512, 64);
        _tile_dpbf16ps(0, 1, 6);
        _tile_dpbf16ps(3, 1, 7);
        _tile_dpbf16ps(4, 2, 6);
        _tile_dpbf16ps(5, 2, 7);
      }
      _tile_stored(0, out + c * 16, out_stride * 4);
      _tile_stored(3, out + c * 16 + 16, out_stride * 4);
      _tile_stored(4, out_b + c * 16, out_stride * 4);
      _tile_stored(5, out_b + c * 16 + 16, out_stride * 4);
    }
    for (int r = 0; r < n; ++r) {
      ScaleRowToBf16(o + static_cast<size_t>(r) * d, d, pass.inv[r],
                     ctx + static_cast<size_t>(q0 + r) * ctx_stride);
    }
  }
  _tile_release();
}

bool Avx512Bf16AttentionAvailable() {
  static const bool available = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw");
  }();
  return available;
}

namespace {

// The pair of bf16 at p (two elements, one 32-bit lane) in all 16 lanes.
TIPPERARY_AVX512BF16 inline __m512bh BroadcastPair(const uint16_t* p) {
  int32_t pair;
  std::memcpy(&pair, p, sizeof(pair));
  return reinterpret_cast<__m512bh>(_mm512_set1_epi32(pair));
}

TIPPERARY_AVX512BF16 inline __m512bh LoadBh(const void* p) {
  return reinterpret_cast<__m512bh>(_mm512_loadu_si512(p));
}

}  // namespace

// The same blocks, layouts and softmax as AmxAttention, with VDPBF16PS (16 fp32 lanes, each the
// dot product of a bf16 pair) in place of the tiles: one row of a K tile holds one d pair of 16
// keys, one row of a V tile one key pair of 16 values, so a broadcast pair of Q (or P) times a
// tile row is one instruction. Four query rows x two tiles share each load (eight accumulators).
TIPPERARY_AVX512BF16 void Avx512Bf16Attention(const uint16_t* qkv, size_t ld, int len, int heads,
                                              int d, int head, float scale, uint16_t* ctx,
                                              int ctx_stride, AmxAttentionScratch* scratch) {
  const Packed packed = PackHead(qkv, ld, len, heads, d, head, scratch);
  const uint16_t* q = packed.q;
  const uint16_t* kp = packed.k;
  const uint16_t* vp = packed.v;
  constexpr int kRows = Pass::kRows;
  constexpr int kGroup = 4;  // query rows per register block
  Pass pass(len, d, scratch);
  const int keys = pass.keys, steps = pass.steps, blocks = pass.blocks;
  uint16_t* p = pass.p;
  float* s = pass.s;
  for (int q0 = 0; q0 < len; q0 += kRows) {
    const int n = std::min(kRows, len - q0);
    const int groups = (n + kGroup - 1) / kGroup;
    // Scores: s[r][j] for the rows of this pass (rows past n read finite padding; unused).
    for (int g = 0; g < groups; ++g) {
      const uint16_t* qg = q + static_cast<size_t>(q0 + g * kGroup) * d;
      for (int j = 0; j < keys / kTile; j += 2) {
        __m512 acc[kGroup][2];
        for (auto& a : acc) a[0] = a[1] = _mm512_setzero_ps();
        for (int t = 0; t < steps; ++t) {
          const uint16_t* k0 = kp + (static_cast<size_t>(j) * steps + t) * 512;
          const uint16_t* k1 = kp + (static_cast<size_t>(j + 1) * steps + t) * 512;
          for (int i = 0; i < 16; ++i) {
            const __m512bh kb0 = LoadBh(k0 + i * 32);
            const __m512bh kb1 = LoadBh(k1 + i * 32);
            for (int r = 0; r < kGroup; ++r) {
              const __m512bh qb = BroadcastPair(qg + static_cast<size_t>(r) * d + t * 32 + 2 * i);
              acc[r][0] = _mm512_dpbf16_ps(acc[r][0], qb, kb0);
              acc[r][1] = _mm512_dpbf16_ps(acc[r][1], qb, kb1);
            }
          }
        }
        for (int r = 0; r < kGroup; ++r) {
          float* row = s + static_cast<size_t>(g * kGroup + r) * keys + j * kTile;
          _mm512_storeu_ps(row, acc[r][0]);
          _mm512_storeu_ps(row + kTile, acc[r][1]);
        }
      }
    }
    for (int r = 0; r < n; ++r) {
      pass.inv[r] = SoftmaxToBf16(s + static_cast<size_t>(r) * keys, len, keys, scale,
                                  p + static_cast<size_t>(r) * keys);
    }
    std::memset(p + static_cast<size_t>(n) * keys, 0,
                static_cast<size_t>(groups * kGroup - n) * keys * 2);
    // Context: ctx[r][c] = sum over keys of p[r][key] v[key][c], key pairs at a time.
    for (int g = 0; g < groups; ++g) {
      const uint16_t* pg = p + static_cast<size_t>(g * kGroup) * keys;
      for (int c = 0; c < blocks; c += 2) {
        __m512 acc[kGroup][2];
        for (auto& a : acc) a[0] = a[1] = _mm512_setzero_ps();
        for (int b = 0; b < keys / kKeyStep; ++b) {
          const uint16_t* v0 = vp + (static_cast<size_t>(b) * blocks + c) * 512;
          const uint16_t* v1 = v0 + 512;
          for (int i = 0; i < 16; ++i) {
            const __m512bh vb0 = LoadBh(v0 + i * 32);
            const __m512bh vb1 = LoadBh(v1 + i * 32);
            for (int r = 0; r < kGroup; ++r) {
              const __m512bh pb =
                  BroadcastPair(pg + static_cast<size_t>(r) * keys + b * kKeyStep + 2 * i);
              acc[r][0] = _mm512_dpbf16_ps(acc[r][0], pb, vb0);
              acc[r][1] = _mm512_dpbf16_ps(acc[r][1], pb, vb1);
            }
          }
        }
        for (int r = 0; r < kGroup && g * kGroup + r < n; ++r) {
          uint16_t* out = ctx + static_cast<size_t>(q0 + g * kGroup + r) * ctx_stride + c * 16;
          const __m512 inv = _mm512_set1_ps(pass.inv[g * kGroup + r]);
          _mm512_storeu_si512(
              out, ToBf16x32(_mm512_mul_ps(acc[r][0], inv), _mm512_mul_ps(acc[r][1], inv)));
        }
      }
    }
  }
}

#else  // !__x86_64__

bool AmxAttentionAvailable() { return false; }

void AmxAttention(const uint16_t*, size_t, int, int, int, int, float, uint16_t*, int,
                  AmxAttentionScratch*) {
  std::abort();  // unreachable: AmxAttentionAvailable() is false
}

bool Avx512Bf16AttentionAvailable() { return false; }

void Avx512Bf16Attention(const uint16_t*, size_t, int, int, int, int, float, uint16_t*, int,
                         AmxAttentionScratch*) {
  std::abort();  // unreachable: Avx512Bf16AttentionAvailable() is false
}

#endif

}  // namespace tipperary::model::internal
