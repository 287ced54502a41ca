#include "bf16_rows.h"

#include <cmath>
#include <cstddef>
#include <cstdlib>

#include "avx512_bf16.h"
#include "cpu_math.h"

namespace tipperary::model::internal {

#if defined(__x86_64__)

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
      const __mmask16 m = LanesBelow(i, n);
      s[a] = _mm512_add_ps(s[a], _mm512_maskz_loadu_ps(m, row + i));
    }
    const __m512 mean = _mm512_set1_ps(
        _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s[0], s[1]), _mm512_add_ps(s[2], s[3]))) *
        inv_n);
    __m512 q[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                   _mm512_setzero_ps()};
    for (int i = 0, a = 0; i < n; i += 16, a = (a + 1) % 4) {
      const __m512 d = _mm512_maskz_sub_ps(LanesBelow(i, n),
                                           _mm512_maskz_loadu_ps(LanesBelow(i, n), row + i), mean);
      q[a] = _mm512_fmadd_ps(d, d, q[a]);
    }
    const float var =
        _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(q[0], q[1]), _mm512_add_ps(q[2], q[3]))) *
        inv_n;
    const __m512 inv = _mm512_set1_ps(1.0f / std::sqrt(var + eps));
    for (int i = 0; i < n; i += 16) {
      const __mmask16 m = LanesBelow(i, n);
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
  __m512 p = _mm512_set1_ps(kErfP[0]);
  for (size_t i = 1; i < std::size(kErfP); ++i)
    p = _mm512_fmadd_ps(p, z2, _mm512_set1_ps(kErfP[i]));
  p = _mm512_mul_ps(p, z);
  __m512 q = _mm512_set1_ps(kErfQ[0]);
  for (size_t i = 1; i < std::size(kErfQ); ++i)
    q = _mm512_fmadd_ps(q, z2, _mm512_set1_ps(kErfQ[i]));
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
    _mm512_storeu_si512(y + i, ToBf16x32(lo, hi));
  }
  for (; i < count; i += 16) {
    const __mmask16 m = LanesBelow(0, static_cast<int>(count - i));
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
