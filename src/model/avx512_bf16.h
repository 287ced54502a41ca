// Internal: what the CPU encoder's hand-written AVX-512 kernels share (amx_attention.cc,
// bf16_rows.cc): the intrinsics, the target attribute they compile under, and small helpers.
// The rest of the binary stays baseline x86-64; these functions run only after a CPUID check
// (Avx512Bf16AttentionAvailable, AmxAttentionAvailable).
//
//   TIPPERARY_AVX512BF16 void Kernel(const float* x, int n, uint16_t* y) {
//     for (int i = 0; i < n; i += 32) { ... ToBf16x32(lo, hi) ... LanesBelow(i + 16, n) ... }
//   }
#pragma once

#if defined(__x86_64__)
// GCC 12's AVX-512 intrinsics initialise their "undefined" operands from themselves and then
// warn about it at -O2 (GCC bug 105593, fixed in 13): not a defect of the files that include
// this one.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <immintrin.h>

// AVX-512 with bf16 conversions and dot products (Cooper Lake, Sapphire Rapids, AMD Zen 4).
#define TIPPERARY_AVX512BF16 \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")))

namespace tipperary::model::internal {

// 32 floats -> 32 bf16 (nearest even), as one 64-byte vector.
TIPPERARY_AVX512BF16 inline __m512i ToBf16x32(__m512 lo, __m512 hi) {
  return reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(hi, lo));
}

// Lanes i .. i + 15 that are below n (none when i >= n).
inline __mmask16 LanesBelow(int i, int n) {
  const int left = n - i;
  return left >= 16 ? __mmask16{0xffff} : (left <= 0 ? __mmask16{0} : __mmask16((1u << left) - 1));
}

}  // namespace tipperary::model::internal

#endif  // __x86_64__
