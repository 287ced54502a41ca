// Internal: the element-wise passes of the CPU encoder's bf16 path, in AVX-512 (they run only
// where the bf16 attention does, which needs AVX512-BF16).
//
// Why not cpu_math.h's portable loops: a LayerNorm row's sums there are one dependency chain
// (each add waits for the one before) and end in a scalar horizontal sum; over the 49,152 rows of
// a 32 x 128 batch that was ~5 % of the forward pass. Here each sum runs in four independent
// accumulators and the row is rounded to bf16 in the same pass.
//
//   if (Avx512Bf16AttentionAvailable()) {
//     LayerNormRowsBf16(x, gamma, beta, eps, rows, n, x16);
//   }
#pragma once

#include <cstddef>
#include <cstdint>

namespace tipperary::model::internal {

// x = LayerNorm(x) * gamma + beta in place (two passes: the mean, then the mean of squared
// deviations), and x16 = x rounded to bf16 (nearest even), both row stride n.
// Requires AVX512-BF16.
void LayerNormRowsBf16(float* x, const float* gamma, const float* beta, float eps, int rows, int n,
                       uint16_t* x16);

// y = Gelu(y) (the exact, erf GELU of BERT) in place on `count` bf16 values, computed in fp32
// with cpu_math.h's rational erf (a few ulp) and a reciprocal refined by one Newton step
// instead of a division, then rounded to bf16 (nearest even). Requires AVX512-BF16.
void GeluBf16InPlace(uint16_t* y, size_t count);

}  // namespace tipperary::model::internal
