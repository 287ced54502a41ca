// CPU checks of the shared kernel math against straightforward double-precision references.
#include "tipperary/kernels/math.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

namespace tipperary::kernels {
namespace {

std::vector<float> RandomVector(std::mt19937& rng, int n, float lo, float hi) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

TEST(GeluTest, MatchesErfFormInDouble) {
  for (double x = -8.0; x <= 8.0; x += 0.01) {
    const double want = 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0)));
    EXPECT_NEAR(Gelu(static_cast<float>(x)), want, 1e-6 + 1e-6 * std::fabs(want)) << x;
  }
  EXPECT_EQ(Gelu(0.0f), 0.0f);
  // Distinguishes erf GELU from the tanh approximation (they differ by ~1.5e-4 near 2.1).
  EXPECT_NEAR(Gelu(2.1f), 2.0624847, 2e-5);
}

TEST(LayerNormTest, MatchesDoubleReference) {
  std::mt19937 rng(1);
  for (int n : {1, 7, 384, 1024}) {
    std::vector<float> x = RandomVector(rng, n, -3.0f, 5.0f);
    for (float& v : x) v += 100.0f;  // a large mean must not spoil the variance
    const std::vector<float> gamma = RandomVector(rng, n, 0.5f, 1.5f);
    const std::vector<float> beta = RandomVector(rng, n, -0.5f, 0.5f);
    const float eps = 1e-5f;
    std::vector<float> out(n);
    LayerNormRow(x.data(), gamma.data(), beta.data(), n, eps, out.data());

    double mean = 0;
    for (float v : x) mean += v;
    mean /= n;
    double var = 0;
    for (float v : x) var += (v - mean) * (v - mean);
    var /= n;
    for (int i = 0; i < n; ++i) {
      const double want = (x[i] - mean) / std::sqrt(var + eps) * gamma[i] + beta[i];
      EXPECT_NEAR(out[i], want, 2e-4) << "n=" << n << " i=" << i;
    }
  }
}

TEST(LayerNormTest, InPlaceAndTinyEps) {
  std::vector<float> x = {1.0f, 2.0f, 3.0f, 4.0f};
  const std::vector<float> gamma(4, 1.0f);
  const std::vector<float> beta(4, 0.0f);
  LayerNormRow(x.data(), gamma.data(), beta.data(), 4, 1e-12f, x.data());
  const double sd = std::sqrt(1.25);
  EXPECT_NEAR(x[0], -1.5 / sd, 1e-6);
  EXPECT_NEAR(x[3], 1.5 / sd, 1e-6);
}

TEST(MaskedSoftmaxTest, MatchesDoubleReference) {
  std::mt19937 rng(2);
  for (int n : {1, 5, 128, 512}) {
    std::vector<float> row = RandomVector(rng, n, -20.0f, 20.0f);
    std::vector<int32_t> mask(n);
    for (int i = 0; i < n; ++i) mask[i] = (i == 0 || rng() % 4 != 0) ? 1 : 0;
    const float scale = 0.125f;
    const std::vector<float> in = row;
    MaskedSoftmaxRow(row.data(), mask.data(), n, scale);

    double max_v = -1e300;
    for (int i = 0; i < n; ++i) {
      if (mask[i]) max_v = std::max(max_v, static_cast<double>(in[i]) * scale);
    }
    double sum = 0;
    for (int i = 0; i < n; ++i) {
      if (mask[i]) sum += std::exp(in[i] * static_cast<double>(scale) - max_v);
    }
    double total = 0;
    for (int i = 0; i < n; ++i) {
      const double want = mask[i] ? std::exp(in[i] * static_cast<double>(scale) - max_v) / sum : 0;
      EXPECT_NEAR(row[i], want, 1e-6) << "n=" << n << " i=" << i;
      total += row[i];
    }
    EXPECT_NEAR(total, 1.0, 1e-5);
  }
}

TEST(MaskedSoftmaxTest, LargeLogitsDoNotOverflow) {
  std::vector<float> row = {1000.0f, 1001.0f, -1000.0f};
  const std::vector<int32_t> mask = {1, 1, 1};
  MaskedSoftmaxRow(row.data(), mask.data(), 3, 1.0f);
  EXPECT_NEAR(row[0], 1.0 / (1.0 + std::exp(1.0)), 1e-6);
  EXPECT_NEAR(row[1], std::exp(1.0) / (1.0 + std::exp(1.0)), 1e-6);
  EXPECT_EQ(row[2], 0.0f);
}

TEST(MaskedSoftmaxTest, FullyMaskedRowIsZeros) {
  std::vector<float> row = {1.0f, 2.0f};
  const std::vector<int32_t> mask = {0, 0};
  MaskedSoftmaxRow(row.data(), mask.data(), 2, 1.0f);
  EXPECT_EQ(row[0], 0.0f);
  EXPECT_EQ(row[1], 0.0f);
}

TEST(PoolingTest, MeanPoolAndL2Norm) {
  std::mt19937 rng(3);
  const int n = 384;
  const int tokens = 9;
  std::vector<std::vector<float>> rows;
  for (int t = 0; t < tokens; ++t) rows.push_back(RandomVector(rng, n, -1.0f, 1.0f));
  std::vector<float> acc(n, 0.0f);
  for (const auto& r : rows) MeanPoolAccumulate(acc.data(), r.data(), n);
  MeanPoolFinish(acc.data(), n, tokens);
  double sq = 0;
  for (int i = 0; i < n; ++i) {
    double want = 0;
    for (const auto& r : rows) want += r[i];
    want /= tokens;
    EXPECT_NEAR(acc[i], want, 1e-6);
    sq += want * want;
  }
  EXPECT_NEAR(L2Norm(acc.data(), n), std::sqrt(sq), 1e-5);
  L2NormalizeInPlace(acc.data(), n);
  EXPECT_NEAR(L2Norm(acc.data(), n), 1.0, 1e-6);

  std::vector<float> zeros(4, 0.0f);
  L2NormalizeInPlace(zeros.data(), 4);
  for (float z : zeros) EXPECT_EQ(z, 0.0f);
  MeanPoolFinish(zeros.data(), 4, 0);
  for (float z : zeros) EXPECT_EQ(z, 0.0f);
}

TEST(HalfTest, KnownValues) {
  EXPECT_EQ(FloatToHalfBits(0.0f), 0x0000);
  EXPECT_EQ(FloatToHalfBits(-0.0f), 0x8000);
  EXPECT_EQ(FloatToHalfBits(1.0f), 0x3c00);
  EXPECT_EQ(FloatToHalfBits(-2.0f), 0xc000);
  EXPECT_EQ(FloatToHalfBits(65504.0f), 0x7bff);
  EXPECT_EQ(FloatToHalfBits(65520.0f), 0x7c00);  // ties to even: past the largest half
  EXPECT_EQ(FloatToHalfBits(1e6f), 0x7c00);
  EXPECT_EQ(FloatToHalfBits(std::numeric_limits<float>::infinity()), 0x7c00);
  EXPECT_EQ(FloatToHalfBits(5.9604644775390625e-8f), 0x0001);   // smallest subnormal
  EXPECT_EQ(FloatToHalfBits(2.98023223876953125e-8f), 0x0000);  // exactly half of it: to even
  EXPECT_EQ(FloatToHalfBits(6.103515625e-5f), 0x0400);          // smallest normal
  EXPECT_EQ(FloatToHalfBits(1.0f + 1.0f / 2048.0f), 0x3c00);    // tie -> even
  EXPECT_EQ(FloatToHalfBits(1.0f + 3.0f / 2048.0f), 0x3c02);    // tie -> even (up)
  EXPECT_TRUE(std::isnan(HalfBitsToFloat(FloatToHalfBits(std::nanf("")))));
  EXPECT_EQ(HalfBitsToFloat(0x3555), 0.333251953125f);
  EXPECT_EQ(HalfBitsToFloat(0x0001), 5.9604644775390625e-8f);
  EXPECT_TRUE(std::isinf(HalfBitsToFloat(0xfc00)));
}

TEST(HalfTest, EveryHalfRoundTripsAndRoundingIsNearest) {
  for (uint32_t h = 0; h < 0x10000u; ++h) {
    const float f = HalfBitsToFloat(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    ASSERT_EQ(FloatToHalfBits(f), h) << std::hex << h;
  }
  // Random floats land on the nearest representable half.
  std::mt19937 rng(4);
  std::uniform_real_distribution<float> dist(-70000.0f, 70000.0f);
  for (int i = 0; i < 100000; ++i) {
    const float f = dist(rng) * (i % 2 ? 1.0f : 1e-6f);
    const uint16_t h = FloatToHalfBits(f);
    const double got = HalfBitsToFloat(h);
    if (std::isinf(got)) {
      ASSERT_GE(std::fabs(f), 65520.0f);
      continue;
    }
    const double err = std::fabs(got - f);
    for (int d : {-1, 1}) {
      const uint16_t other = static_cast<uint16_t>(h + d);
      const double alt = HalfBitsToFloat(other);
      if ((other & 0x7c00) == 0x7c00 || std::isnan(alt)) continue;
      if ((other ^ h) & 0x8000) continue;  // crossed the sign bit
      ASSERT_LE(err, std::fabs(alt - f)) << f;
    }
  }
}

TEST(Bf16Test, RoundingAndRoundTrip) {
  EXPECT_EQ(FloatToBf16Bits(1.0f), 0x3f80);
  EXPECT_EQ(FloatToBf16Bits(-2.0f), 0xc000);
  EXPECT_EQ(Bf16BitsToFloat(0x3f80), 1.0f);
  EXPECT_EQ(FloatToBf16Bits(BitsToFloat(0x3f808000u)), 0x3f80);  // tie -> even (down)
  EXPECT_EQ(FloatToBf16Bits(BitsToFloat(0x3f818000u)), 0x3f82);  // tie -> even (up)
  EXPECT_EQ(FloatToBf16Bits(BitsToFloat(0x3f808001u)), 0x3f81);
  EXPECT_TRUE(std::isnan(Bf16BitsToFloat(FloatToBf16Bits(std::nanf("")))));
  EXPECT_TRUE(std::isinf(Bf16BitsToFloat(FloatToBf16Bits(std::numeric_limits<float>::max()))));
  for (uint32_t b = 0; b < 0x10000u; ++b) {
    const float f = Bf16BitsToFloat(static_cast<uint16_t>(b));
    if (std::isnan(f)) continue;
    ASSERT_EQ(FloatToBf16Bits(f), b);
  }
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> dist(-10.0f, 10.0f);
  for (int i = 0; i < 10000; ++i) {
    const float f = dist(rng);
    EXPECT_NEAR(Bf16BitsToFloat(FloatToBf16Bits(f)), f, std::fabs(f) / 256.0f + 1e-30f);
  }
}

}  // namespace
}  // namespace tipperary::kernels
