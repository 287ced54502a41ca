// Internal: the CPU encoder's element-wise kernels. Branch-free and written so that GCC
// vectorises the loops (built with -fopenmp-simd for the reductions; no libm calls in the hot
// paths: glibc's erff/expf are scalar).
#pragma once

#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <iterator>

namespace tipperary::model::internal {

// exp(x) to ~2 ulp for x in [-87, 88]; clamps outside (softmax inputs are <= 0 anyway).
inline float FastExp(float x) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  // n = round(x / ln2) via the 1.5 * 2^23 trick (exact for |n| < 2^22, no rounding instruction).
  const float kMagic = 12582912.0f;
  float n = (x * 1.44269504088896341f + kMagic) - kMagic;
  // Cody-Waite reduction: r = x - n ln2 in two parts keeps r exact.
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  // Cephes expf polynomial on [-ln2/2, ln2/2].
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  return p * std::bit_cast<float>(bits);
}

// erf(x) as a rational approximation (the one in Eigen/XLA), accurate to a few ulp, for x
// clamped to [-4, 4]: x P(x^2) / Q(x^2), coefficients from the highest power down. Shared with
// the AVX-512 GELU (bf16_rows.cc).
inline constexpr float kErfP[] = {
    -2.72614225801306e-10f, 2.77068142495902e-08f,  -2.10102402082508e-06f, -5.69250639462346e-05f,
    -7.34990630326855e-04f, -2.95459980854025e-03f, -1.60960333262415e-02f};
inline constexpr float kErfQ[] = {-1.45660718464996e-05f, -2.13374055278905e-04f,
                                  -1.68282697438203e-03f, -7.37332916720468e-03f,
                                  -1.42647390514189e-02f};

inline float FastErf(float x) {
  x = x < -4.0f ? -4.0f : (x > 4.0f ? 4.0f : x);
  const float x2 = x * x;
  float p = kErfP[0];
  for (size_t i = 1; i < std::size(kErfP); ++i) p = p * x2 + kErfP[i];
  p = p * x;
  float q = kErfQ[0];
  for (size_t i = 1; i < std::size(kErfQ); ++i) q = q * x2 + kErfQ[i];
  return p / q;
}

// The exact (erf) GELU of BERT: x * Phi(x).
inline float Gelu(float x) { return 0.5f * x * (1.0f + FastErf(x * 0.70710678118654752f)); }

// Whole-block kernels over `rows` rows of `n` floats (row stride n), compiled for several ISAs
// (AVX-512, AVX2, baseline) and picked at load time: see cpu_math.cc.

// y = Gelu(y + bias).
void BiasGeluRows(float* y, const float* bias, int rows, int n);
// y += bias.
void BiasRows(float* y, const float* bias, int rows, int n);
// x = LayerNorm(x + y + bias) * gamma + beta, in place on x (the residual stream).
void BiasResidualLayerNormRows(float* x, const float* y, const float* bias, const float* gamma,
                               const float* beta, float eps, int rows, int n);
// Row-wise softmax in place.
void SoftmaxRows(float* s, int rows, int n);
// dst = mean of `rows` rows of x (row stride n).
void MeanRows(const float* x, int rows, int n, float* dst);

}  // namespace tipperary::model::internal
