#include "cpu_math.h"

// The clones let one binary use AVX-512 where the CPU has it without requiring it anywhere
// (the build targets baseline x86-64). FastExp/FastErf inline into each clone. Not under the
// sanitizers: the clones' ifunc resolvers run while the dynamic loader relocates the binary,
// before the sanitizer runtime is initialised (under TSan the instrumented resolver crashes).
#if defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#define TIPPERARY_CLONES \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define TIPPERARY_CLONES
#endif

namespace tipperary::model::internal {
namespace {

// y[i] = Gelu(y[i] + bias[i]) for one row.
[[gnu::always_inline]] inline void BiasGeluRow(float* __restrict y, const float* __restrict bias,
                                               int n) {
  for (int i = 0; i < n; ++i) y[i] = Gelu(y[i] + bias[i]);
}

// y[i] += bias[i].
[[gnu::always_inline]] inline void BiasRow(float* __restrict y, const float* __restrict bias,
                                           int n) {
  for (int i = 0; i < n; ++i) y[i] += bias[i];
}

// x = LayerNorm(x + y + bias) * gamma + beta, in place on x (the residual stream).
[[gnu::always_inline]] inline void BiasResidualLayerNormRow(
    float* __restrict x, const float* __restrict y, const float* __restrict bias,
    const float* __restrict gamma, const float* __restrict beta, float eps, int n) {
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
[[gnu::always_inline]] inline void SoftmaxRow(float* __restrict s, int n) {
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

}  // namespace

TIPPERARY_CLONES void BiasGeluRows(float* y, const float* bias, int rows, int n) {
  for (int r = 0; r < rows; ++r) BiasGeluRow(y + static_cast<size_t>(r) * n, bias, n);
}

TIPPERARY_CLONES void BiasRows(float* y, const float* bias, int rows, int n) {
  for (int r = 0; r < rows; ++r) BiasRow(y + static_cast<size_t>(r) * n, bias, n);
}

TIPPERARY_CLONES void BiasResidualLayerNormRows(float* x, const float* y, const float* bias,
                                                const float* gamma, const float* beta, float eps,
                                                int rows, int n) {
  for (int r = 0; r < rows; ++r) {
    BiasResidualLayerNormRow(x + static_cast<size_t>(r) * n, y + static_cast<size_t>(r) * n, bias,
                             gamma, beta, eps, n);
  }
}

TIPPERARY_CLONES void SoftmaxRows(float* s, int rows, int n) {
  for (int r = 0; r < rows; ++r) SoftmaxRow(s + static_cast<size_t>(r) * n, n);
}

TIPPERARY_CLONES void MeanRows(const float* x, int rows, int n, float* __restrict dst) {
  for (int i = 0; i < n; ++i) dst[i] = 0.0f;
  for (int r = 0; r < rows; ++r) {
    const float* __restrict row = x + static_cast<size_t>(r) * n;
    for (int i = 0; i < n; ++i) dst[i] += row[i];
  }
  const float inv = 1.0f / static_cast<float>(rows);
  for (int i = 0; i < n; ++i) dst[i] *= inv;
}

}  // namespace tipperary::model::internal
