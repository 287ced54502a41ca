// LayerNormRowsBf16 against a double-precision LayerNorm, for widths with and without a tail
// below 16 lanes, and its bf16 copy against the fp32 result rounded to nearest even.
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

INSTANTIATE_TEST_SUITE_P(Widths, LayerNormRowsBf16Test, ::testing::Values(16, 40, 384, 392, 768));

}  // namespace
}  // namespace tipperary::model
