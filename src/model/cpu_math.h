// Internal: the CPU encoder's element-wise kernels. Branch-free and written so that GCC
// vectorises the loops (built with -fopenmp-simd for the reductions; no libm calls in the hot paths: glibc's erff/expf are scalar).
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>

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

// erf(x) as a rational approximation (the one in Eigen/XLA), accurate to a few ulp.
inline float FastErf(float x) {
  x = x < -4.0f ? -4.0f : (x > 4.0f ? 4.0f : x);
  const float x2 = x * x;
  float p = -2.72614225801306e-10f;
  p = p * x2 + 2.77068142495902e-08f;
  p = p * x2 + -2.10102402082508e-06f;
  p = p * x2 + -5.69250639462346e-05f;
  p = p * x2 + -7.34990630326855e-04f;
  p = p * x2 + -2.95459980854025e-03f;
  p = p * x2 + -1.60960333262415e-02f;
  p = p * x;
  float q = -1.45660718464996e-05f;
  q = q * x2 + -2.13374055278905e-04f;
  q = q * x2 + -1.68282697438203e-03f;
  q = q * x2 + -7.37332916720468e-03f;
  q = q * x2 + -1.42647390514189e-02f;
  return p / q;
}

// The exact (erf) GELU of BERT: x * Phi(x).
inline float Gelu(float x) { return 0.5f * x * (1.0f + FastErf(x * 0.70710678118654752f)); }

// y[i] = Gelu(y[i] + bias[i]) for one row.
inline void BiasGeluRow(float* __restrict y, const float* __restrict bias, int n) {
  for (int i = 0; i < n; ++i) y[i] = Gelu(y[i] + bias[i]);
}

// y[i] += bias[i].
inline void BiasRow(float* __restrict y, const float* __restrict bias, int n) {
  for (int i = 0; i < n; ++i) y[i] += bias[i];
}

// x = LayerNorm(x + y + bias) * gamma + beta, in place on x (the residual stream).
inline void BiasResidualLayerNormRow(float* __restrict x, const float* __restrict y,
                                     const float* __restrict bias, const float* __restrict gamma,
                                     const float* __restrict beta, float eps, int n) {
  float sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int i = 0; i < n; ++i) {
    x[i] += y[i] + bias[i];
    sum += x[i];
  }
  const float mean = sum / n;
  float var = 0;
#pragma omp simd reduction(+ : var)
  for (int i = 0; i < n; ++i) {
    const float d = x[i] - mean;
    var += d * d;
  }
  const float inv = 1.0f / std::sqrt(var / n + eps);
  for (int i = 0; i < n; ++i) x[i] = (x[i] - mean) * inv * gamma[i] + beta[i];
}

// In-place softmax of one row.
inline void SoftmaxRow(float* __restrict s, int n) {
  float max = s[0];
#pragma omp simd reduction(max : max)
  for (int i = 1; i < n; ++i) max = s[i] > max ? s[i] : max;
  float sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int i = 0; i < n; ++i) {
    s[i] = FastExp(s[i] - max);
    sum += s[i];
  }
  const float inv = 1.0f / sum;
  for (int i = 0; i < n; ++i) s[i] *= inv;
}

}  // namespace tipperary::model::internal
