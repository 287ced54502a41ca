#include "amx_attention.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "cpu_math.h"

#if defined(__x86_64__)
// GCC 12's AVX-512 intrinsics initialise their "undefined" operands from themselves and then
// warn about it at -O2 (GCC bug 105593, fixed in 13): not a defect of this file.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <cpuid.h>
#include <immintrin.h>
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
// What runs without the tiles too (the packing, the softmax, the VDPBF16PS kernel).
#define TIPPERARY_AVX512BF16 \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")))

int RoundUp(int n, int to) { return (n + to - 1) / to * to; }

template <typename T>
T* Grow(std::vector<T>& v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

// What both kernels derive from (len, d) for one (sequence, head) block, and the scratch of one
// pass of 2 x 16 query rows: scores s and probabilities p, `keys` wide.
struct Pass {
  static constexpr int kRows = 2 * kTile;  // query rows per pass: two tiles
  int keys;                                // len rounded up to a PV step of keys
  int steps;                               // QK^T steps of 32 along d
  int blocks;                              // PV output blocks of 16 along d
  uint16_t* p;
  float* s;

  Pass(int len, int d, AmxAttentionScratch* scratch)
      : keys(RoundUp(len, kKeyStep)),
        steps(d / 32),
        blocks(d / 16),
        p(Grow(scratch->p, static_cast<size_t>(kRows) * keys)),
        s(Grow(scratch->s, static_cast<size_t>(kRows) * keys)) {}
};

// 32 floats -> 32 bf16 (nearest even), as one 64-byte vector.
TIPPERARY_AVX512BF16 inline __m512i ToBf16x32(__m512 lo, __m512 hi) {
  return reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(hi, lo));
}

// exp(x) for 16 lanes: FastExp's reduction and polynomial (cpu_math.h), 2^n by VSCALEFPS.
TIPPERARY_AVX512BF16 inline __m512 Exp16(__m512 x) {
  x = _mm512_max_ps(_mm512_min_ps(x, _mm512_set1_ps(88.0f)), _mm512_set1_ps(-87.0f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(p, n);
}

// Lanes j0 .. j0 + 15 that are below len.
inline __mmask16 Below(int j0, int len) {
  const int n = len - j0;
  return n >= 16 ? __mmask16{0xffff} : (n <= 0 ? __mmask16{0} : __mmask16((1u << n) - 1));
}

// p[0..keys) (bf16) = softmax(scale * s[0..len)), zeros from len to keys (masked keys); s is
// overwritten. keys is a multiple of 32.
TIPPERARY_AVX512BF16 void SoftmaxToBf16(float* s, int len, int keys, float scale, uint16_t* p) {
  __m512 max = _mm512_set1_ps(-3.0e38f);
  for (int j = 0; j < len; j += 16) {
    max = _mm512_mask_max_ps(max, Below(j, len), max, _mm512_loadu_ps(s + j));
  }
  const __m512 vscale = _mm512_set1_ps(scale);
  const __m512 offset = _mm512_mul_ps(_mm512_set1_ps(_mm512_reduce_max_ps(max)), vscale);
  __m512 sum = _mm512_setzero_ps();
  for (int j = 0; j < keys; j += 16) {
    // e = exp(scale s - scale max) below len, 0 above.
    const __m512 e = _mm512_maskz_mov_ps(
        Below(j, len), Exp16(_mm512_fmsub_ps(_mm512_loadu_ps(s + j), vscale, offset)));
    _mm512_storeu_ps(s + j, e);
    sum = _mm512_add_ps(sum, e);
  }
  const __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(sum));
  for (int j = 0; j < keys; j += 32) {
    const __m512 lo = _mm512_mul_ps(_mm512_loadu_ps(s + j), inv);
    const __m512 hi = _mm512_mul_ps(_mm512_loadu_ps(s + j + 16), inv);
    _mm512_storeu_si512(p + j, ToBf16x32(lo, hi));
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

TIPPERARY_AVX512BF16 void PackQkvRow(const float* row, const float* bias, int pos, int heads, int d,
                                     size_t plane, uint16_t* q, uint16_t* k, uint16_t* v) {
  const int h = heads * d;
  const int steps = d / 32;
  const int blocks = d / 16;
  // K: pair i of this key's d step t goes to row i, column pos % 16 of its tile (u32 units).
  const __m512i k_index =
      _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                         _mm512_set1_epi32(16));
  // V: value c of this key goes to row (pos % 32) / 2, element 2 c + pos % 2 of its tile.
  const int half = pos % 2;
  const __mmask32 v_mask = half == 0 ? 0x55555555u : 0xaaaaaaaau;
  for (int head = 0; head < heads; ++head) {
    const size_t base = static_cast<size_t>(head) * plane;
    const float* in = row + head * d;
    const float* b = bias + head * d;
    uint16_t* q_row = q + base + static_cast<size_t>(pos) * d;
    uint32_t* k_tiles = reinterpret_cast<uint32_t*>(k + base);
    uint16_t* v_tiles = v + base;
    for (int t = 0; t < steps; ++t) {
      const int c = t * 32;
      const __m512i q16 =
          ToBf16x32(_mm512_add_ps(_mm512_loadu_ps(in + c), _mm512_loadu_ps(b + c)),
                    _mm512_add_ps(_mm512_loadu_ps(in + c + 16), _mm512_loadu_ps(b + c + 16)));
      _mm512_storeu_si512(q_row + c, q16);
      const __m512i k16 = ToBf16x32(
          _mm512_add_ps(_mm512_loadu_ps(in + h + c), _mm512_loadu_ps(b + h + c)),
          _mm512_add_ps(_mm512_loadu_ps(in + h + c + 16), _mm512_loadu_ps(b + h + c + 16)));
      uint32_t* tile = k_tiles + (static_cast<size_t>(pos / kTile) * steps + t) * 256 + pos % kTile;
      _mm512_i32scatter_epi32(tile, k_index, k16, 4);
    }
    for (int c = 0; c < blocks; ++c) {
      const __m512 x =
          _mm512_add_ps(_mm512_loadu_ps(in + 2 * h + c * 16), _mm512_loadu_ps(b + 2 * h + c * 16));
      // 16 bf16 widened to 32-bit lanes, in the low or high half of each as pos is even or odd.
      __m512i wide = _mm512_cvtepu16_epi32(reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(x)));
      if (half != 0) wide = _mm512_slli_epi32(wide, 16);
      uint16_t* tile = v_tiles + (static_cast<size_t>(pos / kKeyStep) * blocks + c) * 512 +
                       static_cast<size_t>(pos % kKeyStep / 2) * 32;
      _mm512_mask_storeu_epi16(tile, v_mask, wide);
    }
  }
}

TIPPERARY_AMX void AmxAttention(const uint16_t* q, const uint16_t* kp, const uint16_t* vp, int len,
                                int d, float scale, float* ctx, int ctx_stride,
                                AmxAttentionScratch* scratch) {
  const int stride = d;  // packed Q rows
  constexpr int kRows = Pass::kRows;
  const Pass pass(len, d, scratch);
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
        _tile_dpbf16ps(3, 1, 7);
        _tile_dpbf16ps(4, 2, 6);
        _tile_dpbf16ps(5, 2, 7);
      }
      _tile_stored(0, s + j * kTile, keys * 4);
      _tile_stored(3, s + (j + 1) * kTile, keys * 4);
      _tile_stored(4, s + s_half + j * kTile, keys * 4);
      _tile_stored(5, s + s_half + (j + 1) * kTile, keys * 4);
    }
    const int n = std::min(kRows, len - q0);
    for (int r = 0; r < n; ++r) {
      SoftmaxToBf16(s + static_cast<size_t>(r) * keys, len, keys, scale,
                    p + static_cast<size_t>(r) * keys);
    }
    // Rows past the sequence only feed output rows that are dropped; zeros keep them finite.
    std::memset(p + static_cast<size_t>(n) * keys, 0, static_cast<size_t>(kRows - n) * keys * 2);
    // Whole passes store straight into ctx; the last, partial one through o.
    float* out = n == kRows ? ctx + static_cast<size_t>(q0) * ctx_stride : o;
    const int out_stride = n == kRows ? ctx_stride : d;
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
    if (n < kRows) {
      for (int r = 0; r < n; ++r) {
        std::memcpy(ctx + static_cast<size_t>(q0 + r) * ctx_stride, o + static_cast<size_t>(r) * d,
                    static_cast<size_t>(d) * sizeof(float));
      }
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
TIPPERARY_AVX512BF16 void Avx512Bf16Attention(const uint16_t* q, const uint16_t* kp,
                                              const uint16_t* vp, int len, int d, float scale,
                                              float* ctx, int ctx_stride,
                                              AmxAttentionScratch* scratch) {
  constexpr int kRows = Pass::kRows;
  constexpr int kGroup = 4;  // query rows per register block
  const Pass pass(len, d, scratch);
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
      SoftmaxToBf16(s + static_cast<size_t>(r) * keys, len, keys, scale,
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
          float* out = ctx + static_cast<size_t>(q0 + g * kGroup + r) * ctx_stride + c * 16;
          _mm512_storeu_ps(out, acc[r][0]);
          _mm512_storeu_ps(out + 16, acc[r][1]);
        }
      }
    }
  }
}

#else  // !__x86_64__

bool AmxAttentionAvailable() { return false; }

void PackQkvRow(const float*, const float*, int, int, int, size_t, uint16_t*, uint16_t*,
                uint16_t*) {
  std::abort();  // unreachable: AmxAttentionAvailable() is false
}

void AmxAttention(const uint16_t*, const uint16_t*, const uint16_t*, int, int, float, float*, int,
                  AmxAttentionScratch*) {
  std::abort();  // unreachable: AmxAttentionAvailable() is false
}

bool Avx512Bf16AttentionAvailable() { return false; }

void Avx512Bf16Attention(const uint16_t*, const uint16_t*, const uint16_t*, int, int, float, float*,
                         int, AmxAttentionScratch*) {
  std::abort();  // unreachable: Avx512Bf16AttentionAvailable() is false
}

#endif

}  // namespace tipperary::model::internal
