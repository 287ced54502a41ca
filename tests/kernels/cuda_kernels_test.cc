// Each CUDA kernel against the CPU math of math.h on random data, in fp16 and bf16.
// Skips without a GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "gpu_test_util.h"

namespace tipperary::kernels {
namespace {

using testing::DeviceArray;
using testing::FromBitsVector;
using testing::Quantize;
using testing::Random;
using testing::ToBitsVector;

class KernelTest : public ::testing::TestWithParam<DType> {
 protected:
  void SetUp() override { TIPPERARY_SKIP_WITHOUT_GPU(); }
  DType dtype() const { return GetParam(); }
  // One rounding of an O(1..4) value to the storage type, plus fp32 reduction-order noise.
  float tol() const { return dtype() == DType::kFloat16 ? 6e-3f : 4e-2f; }
};

TEST_P(KernelTest, EmbeddingLayerNorm) {
  std::mt19937 rng(11);
  for (int hidden : {384, 100}) {
    const int batch = 3, seq = 16, vocab = 50, positions = 20, types = 2;
    const int tokens = batch * seq;
    std::vector<float> word = Random(rng, size_t(vocab) * hidden, -1, 1);
    std::vector<float> pos = Random(rng, size_t(positions) * hidden, -1, 1);
    std::vector<float> type = Random(rng, size_t(types) * hidden, -1, 1);
    Quantize(dtype(), word);
    Quantize(dtype(), pos);
    Quantize(dtype(), type);
    const std::vector<float> gamma = Random(rng, hidden, 0.5, 1.5);
    const std::vector<float> beta = Random(rng, hidden, -0.5, 0.5);
    std::vector<int32_t> ids(tokens), token_types(tokens);
    for (int t = 0; t < tokens; ++t) {
      ids[t] = static_cast<int32_t>(rng() % vocab);
      token_types[t] = static_cast<int32_t>(rng() % types);
    }
    DeviceArray<uint16_t> d_word(ToBitsVector(dtype(), word)), d_pos(ToBitsVector(dtype(), pos)),
        d_type(ToBitsVector(dtype(), type)), d_out(size_t(tokens) * hidden);
    DeviceArray<float> d_gamma(gamma), d_beta(beta);
    DeviceArray<int32_t> d_ids(ids), d_types(token_types);
    for (bool with_types : {false, true}) {
      ASSERT_CUDA_OK(LaunchEmbeddingLayerNorm(
          dtype(), d_ids.get(), with_types ? d_types.get() : nullptr, tokens, seq, d_word.get(),
          d_pos.get(), d_type.get(), d_gamma.get(), d_beta.get(), hidden, 1e-12f, d_out.get(),
          nullptr));
      const std::vector<float> got = FromBitsVector(dtype(), d_out.Download());
      std::vector<float> row(hidden), want(hidden);
      for (int t = 0; t < tokens; ++t) {
        const int ty = with_types ? token_types[t] : 0;
        for (int i = 0; i < hidden; ++i) {
          row[i] = word[size_t(ids[t]) * hidden + i] + pos[size_t(t % seq) * hidden + i] +
                   type[size_t(ty) * hidden + i];
        }
        LayerNormRow(row.data(), gamma.data(), beta.data(), hidden, 1e-12f, want.data());
        for (int i = 0; i < hidden; ++i) {
          ASSERT_NEAR(got[size_t(t) * hidden + i], want[i], tol() * (1 + std::fabs(want[i])))
              << "hidden=" << hidden << " t=" << t << " i=" << i;
        }
      }
    }
  }
}

TEST_P(KernelTest, SplitQkvBiasAndMergeHeads) {
  std::mt19937 rng(12);
  const int batch = 2, seq = 8, heads = 3, head_dim = 32;
  const int width = heads * head_dim;
  const int tokens = batch * seq;
  std::vector<float> qkv = Random(rng, size_t(tokens) * 3 * width, -2, 2);
  Quantize(dtype(), qkv);
  const std::vector<float> bias = Random(rng, 3 * width, -1, 1);
  DeviceArray<uint16_t> d_qkv(ToBitsVector(dtype(), qkv)), d_split(size_t(tokens) * 3 * width),
      d_merged(size_t(tokens) * width);
  DeviceArray<float> d_bias(bias);
  const size_t plane = size_t(tokens) * width;
  ASSERT_CUDA_OK(LaunchSplitQkvBias(dtype(), d_qkv.get(), d_bias.get(), batch, seq, heads, head_dim,
                                    d_split.get(), d_split.get() + plane, d_split.get() + 2 * plane,
                                    nullptr));
  const std::vector<float> split = FromBitsVector(dtype(), d_split.Download());
  for (int b = 0; b < batch; ++b) {
    for (int s = 0; s < seq; ++s) {
      for (int which = 0; which < 3; ++which) {
        for (int h = 0; h < heads; ++h) {
          for (int d = 0; d < head_dim; ++d) {
            const int c = which * width + h * head_dim + d;
            const float want = qkv[size_t(b * seq + s) * 3 * width + c] + bias[c];
            const float got =
                split[which * plane + ((size_t(b) * heads + h) * seq + s) * head_dim + d];
            ASSERT_NEAR(got, want, tol() * (1 + std::fabs(want)));
          }
        }
      }
    }
  }
  // Merging the query plane back gives the token-major query columns (a pure permutation).
  ASSERT_CUDA_OK(LaunchMergeHeads(dtype(), d_split.get(), batch, seq, heads, head_dim,
                                  d_merged.get(), nullptr));
  const std::vector<uint16_t> merged = d_merged.Download();
  const std::vector<uint16_t> split_bits = d_split.Download();
  for (int t = 0; t < tokens; ++t) {
    for (int c = 0; c < width; ++c) {
      const int b = t / seq, s = t % seq, h = c / head_dim, d = c % head_dim;
      ASSERT_EQ(merged[size_t(t) * width + c],
                split_bits[((size_t(b) * heads + h) * seq + s) * head_dim + d]);
    }
  }
}

TEST_P(KernelTest, MaskedSoftmaxInPlace) {
  std::mt19937 rng(13);
  const int batch = 3, heads = 2;
  for (int seq : {8, 136, 512}) {
    const std::vector<int32_t> lengths = {seq, 1, std::max(1, seq / 2 + 3)};
    const size_t n = size_t(batch) * heads * seq * seq;
    const std::vector<float> scores = Random(rng, n, -30, 30);
    DeviceArray<float> d_scores(scores);
    DeviceArray<int32_t> d_lengths(lengths);
    const float scale = 0.125f;
    ASSERT_CUDA_OK(LaunchMaskedSoftmax(dtype(), d_scores.get(), d_lengths.get(), batch, heads, seq,
                                       scale, nullptr));
    const std::vector<float> raw = d_scores.Download();
    std::vector<uint16_t> bits(n * 2);
    std::memcpy(bits.data(), raw.data(), n * sizeof(float));
    std::vector<float> row(seq);
    std::vector<int32_t> mask(seq);
    for (int bh = 0; bh < batch * heads; ++bh) {
      const int valid = std::min(lengths[bh / heads], seq);
      for (int j = 0; j < seq; ++j) mask[j] = j < valid ? 1 : 0;
      for (int i = 0; i < seq; ++i) {
        std::copy_n(scores.begin() + (size_t(bh) * seq + i) * seq, seq, row.begin());
        MaskedSoftmaxRow(row.data(), mask.data(), seq, scale);
        // Probabilities of row i sit at the start of the row's own fp32 storage.
        const uint16_t* got = bits.data() + (size_t(bh) * seq + i) * seq * 2;
        for (int j = 0; j < seq; ++j) {
          ASSERT_NEAR(testing::FromBits(dtype(), got[j]), row[j], tol() * 0.5f * (row[j] + 0.01f))
              << "seq=" << seq << " bh=" << bh << " i=" << i << " j=" << j;
          if (j >= valid) {
            ASSERT_EQ(testing::FromBits(dtype(), got[j]), 0.0f);
          }
        }
      }
    }
  }
}

TEST_P(KernelTest, BiasGelu) {
  std::mt19937 rng(14);
  const int rows = 7, cols = 1536;
  std::vector<float> x = Random(rng, size_t(rows) * cols, -5, 5);
  Quantize(dtype(), x);
  const std::vector<float> bias = Random(rng, cols, -1, 1);
  DeviceArray<uint16_t> d_x(ToBitsVector(dtype(), x));
  DeviceArray<float> d_bias(bias);
  ASSERT_CUDA_OK(LaunchBiasGelu(dtype(), d_x.get(), d_bias.get(), rows, cols, nullptr));
  const std::vector<float> got = FromBitsVector(dtype(), d_x.Download());
  for (int r = 0; r < rows; ++r) {
    for (int c = 0; c < cols; ++c) {
      const float want = Gelu(x[size_t(r) * cols + c] + bias[c]);
      ASSERT_NEAR(got[size_t(r) * cols + c], want, tol() * (0.05f + std::fabs(want)));
    }
  }
}

TEST_P(KernelTest, BiasResidualLayerNormInPlace) {
  std::mt19937 rng(15);
  const int rows = 9, hidden = 384;
  std::vector<float> x = Random(rng, size_t(rows) * hidden, -3, 3);
  std::vector<float> residual = Random(rng, size_t(rows) * hidden, -3, 3);
  Quantize(dtype(), x);
  Quantize(dtype(), residual);
  const std::vector<float> bias = Random(rng, hidden, -1, 1);
  const std::vector<float> gamma = Random(rng, hidden, 0.5, 1.5);
  const std::vector<float> beta = Random(rng, hidden, -0.5, 0.5);
  DeviceArray<uint16_t> d_x(ToBitsVector(dtype(), x)), d_res(ToBitsVector(dtype(), residual));
  DeviceArray<float> d_bias(bias), d_gamma(gamma), d_beta(beta);
  ASSERT_CUDA_OK(LaunchBiasResidualLayerNorm(dtype(), d_x.get(), d_bias.get(), d_res.get(),
                                             d_gamma.get(), d_beta.get(), rows, hidden, 1e-12f,
                                             d_res.get(), nullptr));
  const std::vector<float> got = FromBitsVector(dtype(), d_res.Download());
  std::vector<float> row(hidden), want(hidden);
  for (int r = 0; r < rows; ++r) {
    for (int i = 0; i < hidden; ++i) {
      row[i] = x[size_t(r) * hidden + i] + bias[i] + residual[size_t(r) * hidden + i];
    }
    LayerNormRow(row.data(), gamma.data(), beta.data(), hidden, 1e-12f, want.data());
    for (int i = 0; i < hidden; ++i) {
      ASSERT_NEAR(got[size_t(r) * hidden + i], want[i], tol() * (1 + std::fabs(want[i])));
    }
  }
}

TEST_P(KernelTest, MaskedMeanPoolAndNormalize) {
  std::mt19937 rng(16);
  const int batch = 4, seq = 24, hidden = 384;
  std::vector<float> h = Random(rng, size_t(batch) * seq * hidden, -2, 2);
  Quantize(dtype(), h);
  const std::vector<int32_t> lengths = {24, 1, 13, 7};
  DeviceArray<uint16_t> d_h(ToBitsVector(dtype(), h));
  DeviceArray<int32_t> d_lengths(lengths);
  DeviceArray<float> d_out(size_t(batch) * hidden);
  for (bool cls : {false, true}) {
    for (bool normalize : {false, true}) {
      ASSERT_CUDA_OK(LaunchMaskedMeanPool(dtype(), d_h.get(), d_lengths.get(), batch, seq, hidden,
                                          cls, normalize, d_out.get(), nullptr));
      const std::vector<float> got = d_out.Download();
      for (int b = 0; b < batch; ++b) {
        std::vector<float> acc(hidden, 0.0f);
        const int count = cls ? 1 : lengths[b];
        for (int s = 0; s < count; ++s) {
          MeanPoolAccumulate(acc.data(), h.data() + (size_t(b) * seq + s) * hidden, hidden);
        }
        MeanPoolFinish(acc.data(), hidden, count);
        if (normalize) L2NormalizeInPlace(acc.data(), hidden);
        for (int i = 0; i < hidden; ++i) {
          ASSERT_NEAR(got[size_t(b) * hidden + i], acc[i], 1e-5f)
              << "cls=" << cls << " normalize=" << normalize << " b=" << b << " i=" << i;
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(DTypes, KernelTest, ::testing::Values(DType::kFloat16, DType::kBFloat16),
                         [](const ::testing::TestParamInfo<DType>& param_info) {
                           return param_info.param == DType::kFloat16 ? std::string("Float16")
                                                                      : std::string("BFloat16");
                         });

TEST(CudaDeviceTest, AvailabilityDoesNotCrash) {
  const bool available = CudaDeviceAvailable();
  EXPECT_EQ(available, CudaDeviceAvailable());
  if (!available) {
    EXPECT_FALSE(CudaDeviceDescription(0).ok());
    return;
  }
  auto desc = CudaDeviceDescription(0);
  ASSERT_TRUE(desc.ok()) << desc.status();
  EXPECT_FALSE(desc->empty());
  auto stats = QueryGpuStats(0);
  if (stats.ok()) {
    EXPECT_GE(stats->utilization_ratio, 0.0);
    EXPECT_LE(stats->utilization_ratio, 1.0);
    EXPECT_GT(stats->memory_total_bytes, 0u);
    EXPECT_LE(stats->memory_used_bytes, stats->memory_total_bytes);
  }
}

TEST(CudaDeviceTest, NvmlFailsCleanlyOrAnswers) {
  // Without a driver NVML cannot load; the call must return an error, twice, not crash.
  auto a = QueryGpuStats(0);
  auto b = QueryGpuStats(0);
  EXPECT_EQ(a.ok(), b.ok());
  if (!CudaDeviceAvailable()) {
    EXPECT_FALSE(a.ok());
  }
}

}  // namespace
}  // namespace tipperary::kernels
