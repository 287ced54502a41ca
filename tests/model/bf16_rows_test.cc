// LayerNormRowsBf16 against a double-precision LayerNorm, for widths with and without a tail
// below 16 lanes, and its bf16 copy against the fp32 result rounded to nearest even; and
// GeluBf16InPlace against a double-precision GELU.
#include "../../src/model/bf16_rows.h"  // internal; tested directly

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "../../src/model/amx_attention.h"  // Avx512Bf16AttentionAvailable

namespace tipperary::model {
namespace {

class LayerNormRowsBf16Test : public ::testing::TestWithParam<int> {};

TEST_P(LayerNormRowsBf16Test, MatchesDoubleReferenceAndRoundsItsCopy) {
  if (!internal::Avx512Bf16AttentionAvailable()) GTEST_SKIP() << "no AVX512-BF16 here";
  const int n = GetParam(), rows = 5;
  std::mt19937 rng(n);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  // One extra row after the block: it must stay as it was.
  std::vector<float> x(static_cast<size_t>(rows + 1) * n), gamma(n), beta(n);
  for (float& v : x) v = 3.0f * normal(rng) + 40.0f;  // a large mean: a one-pass variance fails
  for (float& v : gamma) v = 1.0f + 0.2f * normal(rng);
  for (float& v : beta) v = 0.1f * normal(rng);
  const std::vector<float> before = x;
  std::vector<uint16_t> x16(static_cast<size_t>(rows + 1) * n, 0x1234);
  const float eps = 1e-12f;
  internal::LayerNormRowsBf16(x.data(), gamma.data(), beta.data(), eps, rows, n, x16.data());
  for (int r = 0; r < rows; ++r) {
    double mean = 0, var = 0;
    for (int i = 0; i < n; ++i) mean += before[static_cast<size_t>(r) * n + i];
    mean /= n;
    for (int i = 0; i < n; ++i) {
      const double d = before[static_cast<size_t>(r) * n + i] - mean;
      var += d * d;
    }
    var /= n;
    for (int i = 0; i < n; ++i) {
      const size_t at = static_cast<size_t>(r) * n + i;
      const double want = (before[at] - mean) / std::sqrt(var + eps) * gamma[i] + beta[i];
      ASSERT_NEAR(x[at], want, 2e-5 * (1 + std::abs(want))) << "row " << r << ", column " << i;
      uint32_t u = std::bit_cast<uint32_t>(x[at]);
      u += 0x7fffu + ((u >> 16) & 1u);
      ASSERT_EQ(x16[at], static_cast<uint16_t>(u >> 16)) << "row " << r << ", column " << i;
    }
  }
  for (int i = 0; i < n; ++i) {
    const size_t at = static_cast<size_t>(rows) * n + i;
    ASSERT_EQ(x[at], before[at]) << "wrote past the rows";
    ASSERT_EQ(x16[at], 0x1234) << "wrote past the rows";
  }
}

// GeluBf16InPlace against a double-precision erf GELU of the same bf16 inputs, over the range
// where GELU bends and beyond both clamps, with a count that leaves a tail of 7.
TEST(GeluBf16Test, MatchesDoubleErfGeluOfBf16Inputs) {
  if (!internal::Avx512Bf16AttentionAvailable()) GTEST_SKIP() << "no AVX512-BF16 here";
  auto to_bf16 = [](float f) {
    uint32_t u = std::bit_cast<uint32_t>(f);
    u += 0x7fffu + ((u >> 16) & 1u);
    return static_cast<uint16_t>(u >> 16);
  };
  auto to_float = [](uint16_t b) { return std::bit_cast<float>(uint32_t{b} << 16); };
  std::vector<uint16_t> y;
  for (float x = -12.0f; x <= 12.0f; x += 0.0137f) y.push_back(to_bf16(x));
  for (float x : {0.0f, -0.0f, 1e-30f, -1e-30f, 300.0f, -300.0f}) y.push_back(to_bf16(x));
  while (y.size() % 32 != 7) y.push_back(to_bf16(0.5f));
  const std::vector<uint16_t> in = y;
  internal::GeluBf16InPlace(y.data(), y.size());
  for (size_t i = 0; i < y.size(); ++i) {
    const double x = to_float(in[i]);
    const double want = 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0)));
    // One bf16 rounding of the result (2^-9 relative) and a little of the fp32 erf.
    ASSERT_NEAR(to_float(y[i]), want, std::abs(want) * (1.0 / 256) + 1e-6) << "x = " << x;
  }
}

INSTANTIATE_TEST_SUITE_P(Widths, LayerNormRowsBf16Test, ::testing::Values(16, 40, 384, 392, 768));

}  // namespace
}  // namespace tipperary::model
