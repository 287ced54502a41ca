// The attention kernels (AMX tiles; AVX512-BF16 dot products), packing included, against a
// double-precision attention of the same bf16 Q, K, V, for lengths around its 16-row tiles and
// 32-key steps, two head sizes, and rows past the sequence filled with large values (they must
// not be read, or at least not mixed in).
#include "../../src/model/amx_attention.h"  // internal; tested directly

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <tuple>
#include <vector>

namespace tipperary::model {
namespace {

struct Case {
  int len, d;
};

enum class Kernel { kAmx, kAvx512Bf16 };

class AmxAttentionTest : public ::testing::TestWithParam<std::tuple<Kernel, Case>> {};

TEST_P(AmxAttentionTest, MatchesDoubleReferenceOfRoundedInputs) {
  const auto [kernel, shape] = GetParam();
  if (kernel == Kernel::kAmx && !internal::AmxAttentionAvailable()) {
    GTEST_SKIP() << "no AMX-BF16 here";
  }
  if (kernel == Kernel::kAvx512Bf16 && !internal::Avx512Bf16AttentionAvailable()) {
    GTEST_SKIP() << "no AVX512-BF16 here";
  }
  const auto [len, d] = shape;
  ASSERT_TRUE(internal::AmxAttentionSupports(d));
  const int heads = 2, h = heads * d, stride = 3 * h;
  const int rows = internal::AmxAttentionRows(len);
  std::mt19937 rng(len * 100 + d);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  // bf16 rows as the QKV GEMM writes them (bias added), the sequence under test after another
  // one's rows: a kernel reading the wrong rows shows.
  auto round = [](float f) {
    uint32_t u = std::bit_cast<uint32_t>(f);
    u += 0x7fffu + ((u >> 16) & 1u);
    return static_cast<uint16_t>(u >> 16);
  };
  const int other = 7;
  std::vector<uint16_t> qkv(static_cast<size_t>(other + rows) * stride);
  for (size_t i = 0; i < qkv.size(); ++i) qkv[i] = round(2.0f * normal(rng) + 0.3f);
  // Past the sequence: values that would dominate any softmax or sum they leaked into.
  for (size_t i = static_cast<size_t>(other + len) * stride; i < qkv.size(); ++i) {
    qkv[i] = round(3.0e4f);
  }
  const uint16_t* seq = qkv.data() + static_cast<size_t>(other) * stride;

  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  // A sentinel row after the output: the kernel must not write past `len` rows.
  const uint16_t sentinel = round(-7.0f);
  std::vector<uint16_t> ctx(static_cast<size_t>(len + 1) * h, sentinel);
  internal::AmxAttentionScratch scratch;
  // The heads in reverse order, so that each packs over the scratch of a different one.
  for (int head = heads - 1; head >= 0; --head) {
    auto* attention =
        kernel == Kernel::kAmx ? internal::AmxAttention : internal::Avx512Bf16Attention;
    attention(seq, stride, len, heads, d, head, scale, ctx.data() + head * d, h, &scratch);
  }

  auto at = [&](int row, int part, int head, int i) {
    const int col = part * h + head * d + i;
    return static_cast<double>(
        std::bit_cast<float>(uint32_t{seq[static_cast<size_t>(row) * stride + col]} << 16));
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
        // The softmax numerators are rounded to bf16 (relative 2^-9) before PV, the output
        // after it.
        const float got =
            std::bit_cast<float>(uint32_t{ctx[static_cast<size_t>(i) * h + head * d + c]} << 16);
        const double err = std::abs(ref - got);
        worst = std::max(worst, err / (mag + 1e-3));
      }
    }
  }
  EXPECT_LT(worst, 8e-3) << "len " << len << ", head_dim " << d;
  for (int c = 0; c < h; ++c) {
    ASSERT_EQ(ctx[static_cast<size_t>(len) * h + c], sentinel) << "wrote past row " << len;
  }
}

std::string ParamName(const ::testing::TestParamInfo<std::tuple<Kernel, Case>>& param) {
  const Case shape = std::get<1>(param.param);
  return std::string(std::get<0>(param.param) == Kernel::kAmx ? "amx" : "avx512bf16") + "_len" +
         std::to_string(shape.len) + "_d" + std::to_string(shape.d);
}

INSTANTIATE_TEST_SUITE_P(
    Lengths, AmxAttentionTest,
    ::testing::Combine(::testing::Values(Kernel::kAmx, Kernel::kAvx512Bf16),
                       ::testing::Values(Case{1, 32}, Case{12, 32}, Case{16, 32}, Case{17, 32},
                                         Case{32, 32}, Case{33, 32}, Case{100, 32}, Case{256, 32},
                                         Case{5, 64}, Case{47, 64}, Case{130, 64})),
    ParamName);

}  // namespace
}  // namespace tipperary::model
