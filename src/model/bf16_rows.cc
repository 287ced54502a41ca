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

#else  // !__x86_64__

void LayerNormRowsBf16(float*, const float*, const float*, float, int, int, uint16_t*) {
  std::abort();  // unreachable: the bf16 attention is x86-64 only
}

#endif

}  // namespace tipperary::model::internal
