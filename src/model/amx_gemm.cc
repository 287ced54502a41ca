#include "amx_gemm.h"

#include <algorithm>
#include <bit>
#include <cstring>

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace tipperary::model::internal {
namespace {

// Rows rounded to bf16 at once: 256 x 1536 bf16 = 768 KiB stays in a core's L2 while every
// 32-column block of the weight passes over it.
constexpr int kAmxMacroRows = 256;

// Round to nearest even, as VCVTNE2PS2BF16 does (NaN stays NaN).
uint16_t ToBf16(float f) {
  uint32_t u = std::bit_cast<uint32_t>(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

#if defined(__x86_64__)
#define TIPPERARY_HAVE_AMX_CODE 1
// Only these functions are compiled for AMX; they run only after AmxBf16Usable(), so the rest of
// the binary stays baseline x86-64.
#define AMX_TARGET __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512vl,avx512bf16")))

constexpr int kArchReqXcompPerm = 0x1023;
constexpr int kXfeatureXtiledata = 18;

bool DetectAmx() {
  unsigned a, b, c, d;
  if (__get_cpuid_max(0, nullptr) < 7) return false;
  __cpuid_count(7, 0, a, b, c, d);
  const bool amx_bf16 = (d >> 22) & 1, amx_tile = (d >> 24) & 1;
  __cpuid_count(7, 1, a, b, c, d);
  const bool avx512_bf16 = (a >> 5) & 1;
  __builtin_cpu_init();
  if (!amx_bf16 || !amx_tile || !avx512_bf16 || !__builtin_cpu_supports("avx512f") ||
      !__builtin_cpu_supports("avx512bw") || !__builtin_cpu_supports("avx512vl")) {
    return false;
  }
  // Linux keeps the 8 KiB tile state off until a process asks for it.
  return ::syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
}

struct alignas(64) TileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// Tiles 0-3: C (2 x 2 blocks of 16 x 16 fp32); 4-5: A (16 rows x 32 bf16); 6-7: B (16 pairs x 16).
AMX_TARGET void ConfigureTiles() {
  TileConfig cfg;
  for (int t = 0; t < 8; ++t) {
    cfg.rows[t] = 16;
    cfg.colsb[t] = 64;
  }
  _tile_loadconfig(&cfg);
}

// Rounds `rows` rows of x (k floats each) to bf16 into a (row stride k); rows up to `padded` are
// zeroed so that the tiles read defined data.
AMX_TARGET void ConvertRows(const float* x, int rows, int padded, int k, uint16_t* a) {
  for (int r = 0; r < rows; ++r) {
    const float* src = x + static_cast<size_t>(r) * k;
    uint16_t* dst = a + static_cast<size_t>(r) * k;
    for (int i = 0; i < k; i += 32) {
      const __m512 lo = _mm512_loadu_ps(src + i);
      const __m512 hi = _mm512_loadu_ps(src + i + 16);
      _mm512_storeu_si512(dst + i, reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(hi, lo)));
    }
  }
  std::memset(a + static_cast<size_t>(rows) * k, 0,
              static_cast<size_t>(padded - rows) * k * sizeof(uint16_t));
}

// Copies the first `valid` rows of a 16 x 16 fp32 tile (stored at c) to y.
void CopyTileRows(const float* c, int valid, float* y, int ldy) {
  for (int r = 0; r < valid; ++r) std::memcpy(y + static_cast<size_t>(r) * ldy, c + r * 16, 64);
}

AMX_TARGET void Linear(const float* x, int rows, const PackedBf16Weight& w, float* y, uint16_t* a,
                       float* c) {
  const int n = w.n, k = w.k, kb_count = k / 32;
  const size_t lda = static_cast<size_t>(k) * sizeof(uint16_t);
  const size_t ldy = static_cast<size_t>(n) * sizeof(float);
  const uint16_t* wdata = w.data.data();
  ConfigureTiles();
  // Weights are read once per macro block of rows: from L3 they cost far more than the tile
  // arithmetic (a 32-row block would re-stream all 21 MB of the model per 32 tokens).
  for (int big0 = 0; big0 < rows; big0 += kAmxMacroRows) {
    const int big_rows = std::min(kAmxMacroRows, rows - big0);
    const int padded = (big_rows + 15) / 16 * 16;
    ConvertRows(x + static_cast<size_t>(big0) * k, big_rows, padded, k, a);
    float* ybig = y + static_cast<size_t>(big0) * n;
    for (int n0 = 0; n0 < n; n0 += 32) {
      // The 32-column block's tiles: kb_count pairs of 1 KiB tiles, contiguous.
      const uint16_t* b = wdata + static_cast<size_t>(n0) * k;
      for (int m0 = 0; m0 < padded; m0 += 32) {
        const int mr = std::min(32, big_rows - m0);
        const bool two = padded - m0 >= 32;
        const uint16_t* a0 = a + static_cast<size_t>(m0) * k;
        const uint16_t* a1 = a0 + static_cast<size_t>(16) * k;
        float* y0 = ybig + static_cast<size_t>(m0) * n + n0;
        float* y1 = y0 + static_cast<size_t>(16) * n;
        _tile_zero(0);
        _tile_zero(1);
        if (two) {
          _tile_zero(2);
          _tile_zero(3);
          for (int kb = 0; kb < kb_count; ++kb) {
            _tile_loadd(4, a0 + kb * 32, lda);
            _tile_loadd(5, a1 + kb * 32, lda);
            _tile_loadd(6, b + kb * 1024, 64);
            _tile_loadd(7, b + kb * 1024 + 512, 64);
            _tile_dpbf16ps(0, 4, 6);
            _tile_dpbf16ps(1, 4, 7);
            _tile_dpbf16ps(2, 5, 6);
            _tile_dpbf16ps(3, 5, 7);
          }
        } else {
          for (int kb = 0; kb < kb_count; ++kb) {
            _tile_loadd(4, a0 + kb * 32, lda);
            _tile_loadd(6, b + kb * 1024, 64);
            _tile_loadd(7, b + kb * 1024 + 512, 64);
            _tile_dpbf16ps(0, 4, 6);
            _tile_dpbf16ps(1, 4, 7);
          }
        }
        // Whole tiles go straight to y; a partial one (the last rows) through c, since the rows
        // after it belong to someone else.
        const int valid0 = std::min(16, mr);
        if (valid0 == 16) {
          _tile_stored(0, y0, ldy);
          _tile_stored(1, y0 + 16, ldy);
        } else {
          _tile_stored(0, c, 64);
          CopyTileRows(c, valid0, y0, n);
          _tile_stored(1, c, 64);
          CopyTileRows(c, valid0, y0 + 16, n);
        }
        if (two) {
          const int valid1 = mr - 16;
          if (valid1 == 16) {
            _tile_stored(2, y1, ldy);
            _tile_stored(3, y1 + 16, ldy);
          } else {
            _tile_stored(2, c, 64);
            CopyTileRows(c, valid1, y1, n);
            _tile_stored(3, c, 64);
            CopyTileRows(c, valid1, y1 + 16, n);
          }
        }
      }
    }
  }
}
#endif

}  // namespace

bool AmxBf16Usable() {
#ifdef TIPPERARY_HAVE_AMX_CODE
  static const bool usable = DetectAmx();
  return usable;
#else
  return false;
#endif
}

bool AmxShapeSupported(int n, int k) { return n > 0 && k > 0 && n % 32 == 0 && k % 32 == 0; }

PackedBf16Weight PackBf16Weight(const float* w, int n, int k) {
  PackedBf16Weight p;
  p.n = n;
  p.k = k;
  p.data.resize(static_cast<size_t>(n) * k);
  uint16_t* out = p.data.data();
  // Order: 32-column block, k slice of 32, tile (columns +0 / +16), pair row r, column, pair.
  for (int n0 = 0; n0 < n; n0 += 32) {
    for (int k0 = 0; k0 < k; k0 += 32) {
      for (int half = 0; half < 2; ++half) {
        for (int r = 0; r < 16; ++r) {
          for (int col = 0; col < 16; ++col) {
            const float* row = w + static_cast<size_t>(n0 + half * 16 + col) * k + k0 + 2 * r;
            *out++ = ToBf16(row[0]);
            *out++ = ToBf16(row[1]);
          }
        }
      }
    }
  }
  return p;
}

void AmxLinear(const float* x, int rows, const PackedBf16Weight& w, float* y, AmxScratch* scratch) {
  if (rows <= 0) return;
#ifdef TIPPERARY_HAVE_AMX_CODE
  const size_t a_size = static_cast<size_t>(kAmxMacroRows) * w.k;
  if (scratch->a.size() < a_size) scratch->a.resize(a_size);
  if (scratch->c.size() < 256) scratch->c.resize(256);
  Linear(x, rows, w, y, scratch->a.data(), scratch->c.data());
#else
  (void)x, (void)w, (void)y, (void)scratch;
#endif
}

}  // namespace tipperary::model::internal
