#include "bf16_rows.h"

#include <cmath>
#include <cstddef>
#include <cstdlib>

#if defined(__x86_64__)
// GCC 12's AVX-512 intrinsics initialise their "undefined" operands from themselves and then
// warn about it at -O2 (GCC bug 105593, fixed in 13): not a defect of this file.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <immintrin.h>
#endif

namespace tipperary::model::internal {

#if defined(__x86_64__)

#define TIPPERARY_AVX512BF16 \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")))

namespace {

// Lanes i .. i + 15 that are below n.
inline __mmask16 Below(int i, int n) {
  return n - i >= 16 ? __mmask16{0xffff} : __mmask16((1u << (n - i)) - 1);
}

}  // namespace

TIPPERARY_AVX512BF16 void LayerNormRowsBf16(float* x, const float* gamma, const float* beta,
                                            float eps, int rows, int n, uint16_t* x16) {
  const float inv_n = 1.0f / static_cast<float>(n);
  for (int r = 0; r < rows; ++r) {
    float* row = x + static_cast<size_t>(r) * n;
    uint16_t* out = x16 + static_cast<size_t>(r) * n;
    // Four accumulators per sum; lanes past n load as zero (masked), and for the deviations
    // are masked out again.
    __m512 s[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                   _mm512_setzero_ps()};
    for (int i = 0, a = 0; i < n; i += 16, a = (a + 1) % 4) {
      const __mmask16 m = Below(i, n);
      s[a] = _mm512_add_ps(s[a], _mm512_maskz_loadu_ps(m, row + i));
    }
    const __m512 mean = _mm512_set1_ps(
        _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s[0], s[1]), _mm512_add_ps(s[2], s[3]))) *
        inv_n);
    __m512 q[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                   _mm512_setzero_ps()};
    for (int i = 0, a = 0; i < n; i += 16, a = (a + 1) % 4) {
      const __m512 d =
          _mm512_maskz_sub_ps(Below(i, n), _mm512_maskz_loadu_ps(Below(i, n), row + i), mean);
      q[a] = _mm512_fmadd_ps(d, d, q[a]);
    }
    const float var =
        _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(q[0], q[1]), _mm512_add_ps(q[2], q[3]))) *
        inv_n;
    const __m512 inv = _mm512_set1_ps(1.0f / std::sqrt(var + eps));
    for (int i = 0; i < n; i += 16) {
      const __mmask16 m = Below(i, n);
      const __m512 v = _mm512_fmadd_ps(
          _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, row + i), mean), inv),
          _mm512_maskz_loadu_ps(m, gamma + i), _mm512_maskz_loadu_ps(m, beta + i));
      _mm512_mask_storeu_ps(row + i, m, v);
      _mm256_mask_storeu_epi16(out + i, m, reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(v)));
    }
  }
}

namespace {

// 16 bf16 -> 16 floats (exact).
TIPPERARY_AVX512BF16 inline __m512 Widen(__m256i v) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(v), 16));
}

// Gelu(x) = x Phi(x) = x (1 + erf(x / sqrt 2)) / 2, erf as cpu_math.h's FastErf.
TIPPERARY_AVX512BF16 inline __m512 Gelu16(__m512 x) {
  const __m512 z = _mm512_max_ps(
      _mm512_min_ps(_mm512_mul_ps(x, _mm512_set1_ps(0.70710678118654752f)), _mm512_set1_ps(4.0f)),
      _mm512_set1_ps(-4.0f));
  const __m512 z2 = _mm512_mul_ps(z, z);
  __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(-2.72614225801306e-10f), z2,
                             _mm512_set1_ps(2.77068142495902e-08f));
  p = _mm512_fmadd_ps(p, z2, _mm512_set1_ps(-2.10102402082508e-06f));
  p = _mm512_fmadd_ps(p, z2, _mm512_set1_ps(-5.69250639462346e-05f));
  p = _mm512_fmadd_ps(p, z2, _mm512_set1_ps(-7.34990630326855e-04f));
  p = _mm512_fmadd_ps(p, z2, _mm512_set1_ps(-2.95459980854025e-03f));
  p = _mm512_fmadd_ps(p, z2, _mm512_set1_ps(-1.60960333262415e-02f));
  p = _mm512_mul_ps(p, z);
  __m512 q = _mm512_fmadd_ps(_mm512_set1_ps(-1.45660718464996e-05f), z2,
                             _mm512_set1_ps(-2.13374055278905e-04f));
  q = _mm512_fmadd_ps(q, z2, _mm512_set1_ps(-1.68282697438203e-03f));
  q = _mm512_fmadd_ps(q, z2, _mm512_set1_ps(-7.37332916720468e-03f));
  q = _mm512_fmadd_ps(q, z2, _mm512_set1_ps(-1.42647390514189e-02f));
  // 1 / q: VRCP14PS (relative error 2^-14) and one Newton step (~2^-28).
  __m512 r = _mm512_rcp14_ps(q);
  r = _mm512_mul_ps(r, _mm512_fnmadd_ps(q, r, _mm512_set1_ps(2.0f)));
  const __m512 erf = _mm512_mul_ps(p, r);
  const __m512 half = _mm512_mul_ps(x, _mm512_set1_ps(0.5f));
  return _mm512_fmadd_ps(half, erf, half);
}

}  // namespace

TIPPERARY_AVX512BF16 void GeluBf16InPlace(uint16_t* y, size_t count) {
  size_t i = 0;
  for (; i + 32 <= count; i += 32) {
    const __m512i v = _mm512_loadu_si512(y + i);
    const __m512 lo = Gelu16(Widen(_mm512_castsi512_si256(v)));
    const __m512 hi = Gelu16(Widen(_mm512_extracti64x4_epi64(v, 1)));
    _mm512_storeu_si512(y + i, reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(hi, lo)));
  }
  for (; i < count; i += 16) {
    const __mmask16 m = count - i >= 16 ? __mmask16{0xffff} : __mmask16((1u << (count - i)) - 1);
    const __m512 v = Gelu16(Widen(_mm256_maskz_loadu_epi16(m, y + i)));
    _mm256_mask_storeu_epi16(y + i, m, reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(v)));
  }
}

#else  // !__x86_64__

void LayerNormRowsBf16(float*, const float*, const float*, float, int, int, uint16_t*) {
  std::abort();  // unreachable: the bf16 attention is x86-64 only
}

void GeluBf16InPlace(uint16_t*, size_t) {
  std::abort();  // unreachable: the bf16 attention is x86-64 only
}

#endif

}  // namespace tipperary::model::internal
