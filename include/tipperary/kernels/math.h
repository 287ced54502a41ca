// Element-wise and per-row math of the BERT encoder, shared by the CUDA kernels and the CPU.
//
// Every function is `__host__ __device__` under nvcc and plain inline C++ elsewhere, so the CUDA
// kernels and their CPU unit tests run the very same arithmetic. Row functions are the simple
// sequential form (a kernel splits the same sums across threads); they are the reference the
// GPU tests compare against.
//
//   float g = tipperary::kernels::Gelu(x);
//   tipperary::kernels::LayerNormRow(row, gamma, beta, 384, 1e-12f, out);
//   uint16_t h = tipperary::kernels::FloatToHalfBits(1.5f);
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#ifdef __CUDACC__
#define TIPPERARY_HD __host__ __device__
#else
#define TIPPERARY_HD
#endif

namespace tipperary::kernels {

// GELU with the exact erf form (BERT's "gelu"), not the tanh approximation.
TIPPERARY_HD inline float Gelu(float x) {
  return 0.5f * x * (1.0f + erff(x * 0.70710678118654752440f));
}

// Applies LayerNorm to one value once the row's mean and 1/sqrt(var + eps) are known.
TIPPERARY_HD inline float LayerNormApply(float x, float mean, float rstd, float gamma, float beta) {
  return (x - mean) * rstd * gamma + beta;
}

// Row mean, then the (biased) variance around it: two passes so that rows with a large mean do
// not lose the variance to cancellation, in fp32 as the kernels do.
TIPPERARY_HD inline void RowMeanVar(const float* x, int n, float* mean, float* var) {
  float sum = 0.0f;
  for (int i = 0; i < n; ++i) sum += x[i];
  const float m = sum / static_cast<float>(n);
  float sq = 0.0f;
  for (int i = 0; i < n; ++i) {
    const float d = x[i] - m;
    sq += d * d;
  }
  *mean = m;
  *var = sq / static_cast<float>(n);
}

// out = (x - mean) / sqrt(var + eps) * gamma + beta over one row of n. out may alias x.
TIPPERARY_HD inline void LayerNormRow(const float* x, const float* gamma, const float* beta, int n,
                                      float eps, float* out) {
  float mean = 0.0f;
  float var = 0.0f;
  RowMeanVar(x, n, &mean, &var);
  const float rstd = 1.0f / sqrtf(var + eps);
  for (int i = 0; i < n; ++i) out[i] = LayerNormApply(x[i], mean, rstd, gamma[i], beta[i]);
}

// In place: row[i] = softmax(scale * row)[i] over the entries whose mask is non-zero; masked
// entries become 0. A row with every entry masked becomes all zeros (never NaN).
TIPPERARY_HD inline void MaskedSoftmaxRow(float* row, const int32_t* mask, int n, float scale) {
  float max_v = -INFINITY;
  for (int i = 0; i < n; ++i) {
    if (mask[i] != 0) max_v = fmaxf(max_v, row[i] * scale);
  }
  if (max_v == -INFINITY) {
    for (int i = 0; i < n; ++i) row[i] = 0.0f;
    return;
  }
  float sum = 0.0f;
  for (int i = 0; i < n; ++i) {
    const float e = mask[i] != 0 ? expf(row[i] * scale - max_v) : 0.0f;
    row[i] = e;
    sum += e;
  }
  const float inv = 1.0f / sum;
  for (int i = 0; i < n; ++i) row[i] *= inv;
}

// Mean pooling in two steps, so a kernel can accumulate token by token.
TIPPERARY_HD inline void MeanPoolAccumulate(float* acc, const float* row, int n) {
  for (int i = 0; i < n; ++i) acc[i] += row[i];
}

// Divides the accumulated sum by the token count (count 0 leaves zeros).
TIPPERARY_HD inline void MeanPoolFinish(float* acc, int n, int count) {
  const float inv = count > 0 ? 1.0f / static_cast<float>(count) : 0.0f;
  for (int i = 0; i < n; ++i) acc[i] *= inv;
}

TIPPERARY_HD inline float L2Norm(const float* v, int n) {
  float sq = 0.0f;
  for (int i = 0; i < n; ++i) sq += v[i] * v[i];
  return sqrtf(sq);
}

// The factor that L2-normalises a vector of the given norm; zero vectors stay zero.
TIPPERARY_HD inline float L2InverseNorm(float norm) { return norm > 0.0f ? 1.0f / norm : 0.0f; }

TIPPERARY_HD inline void L2NormalizeInPlace(float* v, int n) {
  const float inv = L2InverseNorm(L2Norm(v, n));
  for (int i = 0; i < n; ++i) v[i] *= inv;
}

// ---- fp16 / bf16 bit conversions (host side: weights are converted before upload) ----

TIPPERARY_HD inline uint32_t FloatBits(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
}

TIPPERARY_HD inline float BitsToFloat(uint32_t u) {
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

// IEEE binary16, round to nearest even; overflow -> inf, NaN stays NaN, subnormals kept.
TIPPERARY_HD inline uint16_t FloatToHalfBits(float f) {
  const uint32_t x = FloatBits(f);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const uint32_t abs = x & 0x7fffffffu;
  if (abs >= 0x7f800000u) {  // inf or NaN
    return static_cast<uint16_t>(sign | 0x7c00u | (abs > 0x7f800000u ? 0x200u : 0u));
  }
  if (abs >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds past 65504
  if (abs < 0x38800000u) {  // below the smallest normal half (2^-14): subnormal or zero
    if (abs < 0x33000000u) return sign;  // below half of the smallest subnormal (2^-25)
    const uint32_t exp = abs >> 23;
    const uint32_t mant = (abs & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126u - exp;  // 14..24 for this range
    uint32_t half_mant = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1u);
    const uint32_t halfway = 1u << (shift - 1u);
    if (rem > halfway || (rem == halfway && (half_mant & 1u))) ++half_mant;
    return static_cast<uint16_t>(sign | half_mant);
  }
  uint32_t h = ((abs >> 13) - (112u << 10));  // re-bias exponent 127 -> 15
  const uint32_t rem = abs & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;  // may carry into the exponent
  return static_cast<uint16_t>(sign | h);
}

TIPPERARY_HD inline float HalfBitsToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t mant = h & 0x3ffu;
  if (exp == 0) {
    // Zero or subnormal: mant * 2^-24, exact in float.
    const float v = static_cast<float>(mant) * 5.9604644775390625e-8f;
    return sign ? -v : v;
  }
  if (exp == 31) return BitsToFloat(sign | 0x7f800000u | (mant << 13));
  return BitsToFloat(sign | ((exp + 112u) << 23) | (mant << 13));
}

// bfloat16 is the top half of a float; round to nearest even, NaN kept quiet.
TIPPERARY_HD inline uint16_t FloatToBf16Bits(float f) {
  const uint32_t x = FloatBits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);
  const uint32_t rounding = 0x7fffu + ((x >> 16) & 1u);
  return static_cast<uint16_t>((x + rounding) >> 16);
}

TIPPERARY_HD inline float Bf16BitsToFloat(uint16_t b) {
  return BitsToFloat(static_cast<uint32_t>(b) << 16);
}

}  // namespace tipperary::kernels
