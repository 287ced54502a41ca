// The AMX attention kernel against a double-precision attention of the same bf16-rounded Q, K,
// V, for lengths around its 16-row tiles and 32-key steps, two head sizes, and rows past the
// sequence filled with large values (they must be masked out, not mixed in).
#include "../../src/model/amx_attention.h"  // internal; tested directly

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

namespace tipperary::model {
namespace {

float Bf16ToFloat(uint16_t b) { return std::bit_cast<float>(static_cast<uint32_t>(b) << 16); }

struct Case {
  int len, d;
};

class AmxAttentionTest : public ::testing::TestWithParam<Case> {};

TEST_P(AmxAttentionTest, MatchesDoubleReferenceOfRoundedInputs) {
  if (!internal::AmxAttentionAvailable()) GTEST_SKIP() << "no AMX-BF16 here";
  const auto [len, d] = GetParam();
  ASSERT_TRUE(internal::AmxAttentionSupports(d));
  const int heads = 2, h = heads * d, stride = 3 * h;
  const int rows = len + internal::kAmxAttentionOverread;
  std::mt19937 rng(len * 100 + d);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> qkv(static_cast<size_t>(rows) * stride), bias(stride);
  for (float& x : qkv) x = 2.0f * normal(rng);
  for (float& x : bias) x = 0.5f * normal(rng);
  // Past the sequence: values that would dominate any softmax or sum they leaked into.
  for (size_t i = static_cast<size_t>(len) * stride; i < qkv.size(); ++i) qkv[i] = 3.0e4f;
  std::vector<uint16_t> qkv16(qkv.size());
  internal::BiasToBf16Rows(qkv.data(), bias.data(), rows, stride, qkv16.data());

  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  // A sentinel row after the output: the kernel must not write past `len` rows.
  std::vector<float> ctx(static_cast<size_t>(len + 1) * h, -7.0f);
  internal::AmxAttentionScratch scratch;
  for (int head = 0; head < heads; ++head) {
    const uint16_t* q = qkv16.data() + head * d;
    internal::AmxAttention(q, q + h, q + 2 * h, stride, len, d, scale, ctx.data() + head * d, h,
                           &scratch);
  }

  auto at = [&](int row, int part, int head, int i) {
    return static_cast<double>(
        Bf16ToFloat(qkv16[static_cast<size_t>(row) * stride + part * h + head * d + i]));
  };
  double worst = 0;
  for (int head = 0; head < heads; ++head) {
    for (int i = 0; i < len; ++i) {
      std::vector<double> p(len);
      double max = -1e300, sum = 0;
      for (int j = 0; j < len; ++j) {
        double s = 0;
        for (int c = 0; c < d; ++c) s += at(i, 0, head, c) * at(j, 1, head, c);
        p[j] = s * scale;
        max = std::max(max, p[j]);
      }
      for (double& x : p) sum += (x = std::exp(x - max));
      for (int c = 0; c < d; ++c) {
        double ref = 0, mag = 0;
        for (int j = 0; j < len; ++j) {
          ref += p[j] / sum * at(j, 2, head, c);
          mag += p[j] / sum * std::abs(at(j, 2, head, c));
        }
        // The probabilities are rounded to bf16 (relative 2^-9) before PV.
        const double err = std::abs(ref - ctx[static_cast<size_t>(i) * h + head * d + c]);
        worst = std::max(worst, err / (mag + 1e-3));
      }
    }
  }
  EXPECT_LT(worst, 8e-3) << "len " << len << ", head_dim " << d;
  for (int c = 0; c < h; ++c) {
    ASSERT_EQ(ctx[static_cast<size_t>(len) * h + c], -7.0f) << "wrote past row " << len;
  }
}

INSTANTIATE_TEST_SUITE_P(Lengths, AmxAttentionTest,
                         ::testing::Values(Case{1, 32}, Case{12, 32}, Case{16, 32}, Case{17, 32},
                                           Case{32, 32}, Case{33, 32}, Case{100, 32}, Case{256, 32},
                                           Case{5, 64}, Case{47, 64}, Case{130, 64}),
                         [](const auto& p) {
                           return "len" + std::to_string(p.param.len) + "_d" +
                                  std::to_string(p.param.d);
                         });

}  // namespace
}  // namespace tipperary::model
