// The fused variant's CUDA kernels against their CPU emulations (fused_math.h), and the fused
// encoder against the reference one on the same random model. GPU tests skip without a device;
// the option and shape checks that fail before any device call run everywhere.
#include "tipperary/kernels/fused_kernels.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "gpu_test_util.h"
#include "tipperary/kernels/fused_forward_pass.h"
#include "tipperary/kernels/fused_math.h"

namespace tipperary::kernels {
namespace {

using testing::DeviceArray;
using testing::FromBitsVector;
using testing::Quantize;
using testing::Random;
using testing::ToBitsVector;

// Absolute tolerance for O(1) values stored in the dtype (fp16: 11 bits, bf16: 8 bits).
double Tol(DType t) { return t == DType::kFloat16 ? 4e-3 : 3e-2; }

class FusedKernelsTest : public ::testing::TestWithParam<DType> {
 protected:
  void SetUp() override { TIPPERARY_SKIP_WITHOUT_GPU(); }
};

template <int kD>
void CheckAttention(DType dtype, int heads, const std::vector<int>& lengths) {
  std::mt19937 rng(kD * 7 + heads);
  const int hidden = heads * kD;
  const PackedLayout layout = BuildPackedLayout(lengths, kAttentionQueryTile);
  const int tokens = layout.tokens();
  std::vector<float> qkv = Random(rng, size_t(tokens) * 3 * hidden, -1.0f, 1.0f);
  Quantize(dtype, qkv);
  const std::vector<float> bias = Random(rng, size_t(3) * hidden, -0.5f, 0.5f);
  std::vector<float> want(size_t(tokens) * hidden);
  VarlenAttentionEmulated<kD>(qkv.data(), bias.data(), layout, heads, want.data());

  DeviceArray<uint16_t> d_qkv(ToBitsVector(dtype, qkv));
  DeviceArray<float> d_bias(bias);
  DeviceArray<int32_t> d_cu(layout.cu_seqlens);
  DeviceArray<int32_t> d_tiles(layout.tiles);
  // A sentinel everywhere, so a row the kernel never writes shows.
  DeviceArray<uint16_t> d_ctx(ToBitsVector(dtype, std::vector<float>(want.size(), 100.0f)));
  ASSERT_CUDA_OK(LaunchVarlenAttention(dtype, d_qkv.get(), d_bias.get(), d_cu.get(), d_tiles.get(),
                                       layout.tile_count(), heads, kD, d_ctx.get(), nullptr));
  ASSERT_CUDA_OK(cudaDeviceSynchronize());
  const std::vector<float> got = FromBitsVector(dtype, d_ctx.Download());
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_NEAR(got[i], want[i], Tol(dtype)) << "head_dim " << kD << " element " << i;
  }
}

TEST_P(FusedKernelsTest, VarlenAttentionHeadDim32MatchesEmulation) {
  CheckAttention<32>(GetParam(), 3, {1, 9, 70, 130, 2, 64, 65});
}

TEST_P(FusedKernelsTest, VarlenAttentionHeadDim64MatchesEmulation) {
  CheckAttention<64>(GetParam(), 2, {17, 1, 128, 200});
}

TEST_P(FusedKernelsTest, WarpBiasResidualLayerNormMatchesEmulation) {
  const DType dtype = GetParam();
  std::mt19937 rng(31);
  for (int hidden : {64, 264, 384, 768, 1024}) {
    const int rows = 37;  // not a multiple of the 4 rows per block
    std::vector<float> x = Random(rng, size_t(rows) * hidden, -2.0f, 2.0f);
    std::vector<float> res = Random(rng, size_t(rows) * hidden, -2.0f, 2.0f);
    Quantize(dtype, x);
    Quantize(dtype, res);
    const std::vector<float> bias = Random(rng, hidden, -0.5f, 0.5f);
    const std::vector<float> gamma = Random(rng, hidden, 0.5f, 1.5f);
    const std::vector<float> beta = Random(rng, hidden, -0.5f, 0.5f);
    std::vector<float> want(size_t(rows) * hidden);
    for (int r = 0; r < rows; ++r) {
      std::vector<float> row(hidden);
      for (int i = 0; i < hidden; ++i) {
        row[i] = x[size_t(r) * hidden + i] + bias[i] + res[size_t(r) * hidden + i];
      }
      WarpLayerNormRowEmulated(row.data(), gamma.data(), beta.data(), hidden, 1e-12f,
                               &want[size_t(r) * hidden]);
    }
    DeviceArray<uint16_t> d_x(ToBitsVector(dtype, x));
    DeviceArray<uint16_t> d_res(ToBitsVector(dtype, res));  // also the output: in place
    DeviceArray<float> d_bias(bias), d_gamma(gamma), d_beta(beta);
    ASSERT_CUDA_OK(LaunchWarpBiasResidualLayerNorm(dtype, d_x.get(), d_bias.get(), d_res.get(),
                                                   d_gamma.get(), d_beta.get(), rows, hidden,
                                                   1e-12f, d_res.get(), nullptr));
    const std::vector<float> got = FromBitsVector(dtype, d_res.Download());
    for (size_t i = 0; i < got.size(); ++i) {
      ASSERT_NEAR(got[i], want[i], 2 * Tol(dtype)) << "hidden " << hidden << " element " << i;
    }
  }
}

TEST_P(FusedKernelsTest, BiasGeluVecMatchesErfGelu) {
  const DType dtype = GetParam();
  std::mt19937 rng(37);
  const int rows = 5, cols = 1536;
  std::vector<float> x = Random(rng, size_t(rows) * cols, -4.0f, 4.0f);
  Quantize(dtype, x);
  const std::vector<float> bias = Random(rng, cols, -0.5f, 0.5f);
  DeviceArray<uint16_t> d_x(ToBitsVector(dtype, x));
  DeviceArray<float> d_bias(bias);
  ASSERT_CUDA_OK(LaunchBiasGeluVec(dtype, d_x.get(), d_bias.get(), rows, cols, nullptr));
  const std::vector<float> got = FromBitsVector(dtype, d_x.Download());
  for (int r = 0; r < rows; ++r) {
    for (int c = 0; c < cols; ++c) {
      const float want = Gelu(x[size_t(r) * cols + c] + bias[c]);
      ASSERT_NEAR(got[size_t(r) * cols + c], want, Tol(dtype) * (1 + std::fabs(want)))
          << r << "," << c;
    }
  }
}

TEST_P(FusedKernelsTest, PackedEmbeddingAndPoolingFollowTheLayout) {
  const DType dtype = GetParam();
  std::mt19937 rng(41);
  const int hidden = 384, vocab = 30, max_pos = 20;
  std::vector<float> word = Random(rng, size_t(vocab) * hidden, -1, 1);
  std::vector<float> pos = Random(rng, size_t(max_pos) * hidden, -1, 1);
  std::vector<float> type = Random(rng, size_t(hidden), -0.1f, 0.1f);
  Quantize(dtype, word);
  Quantize(dtype, pos);
  Quantize(dtype, type);
  const std::vector<float> gamma = Random(rng, hidden, 0.5f, 1.5f);
  const std::vector<float> beta = Random(rng, hidden, -0.5f, 0.5f);
  const std::vector<int> lengths = {3, 17, 1};
  const PackedLayout layout = BuildPackedLayout(lengths, kAttentionQueryTile);
  const int tokens = layout.tokens();
  std::vector<int32_t> ids(tokens);
  for (int32_t& id : ids) id = static_cast<int32_t>(rng() % vocab);

  std::vector<float> want(size_t(tokens) * hidden);
  for (int t = 0; t < tokens; ++t) {
    std::vector<float> row(hidden);
    for (int i = 0; i < hidden; ++i) {
      row[i] = word[size_t(ids[t]) * hidden + i] + pos[size_t(layout.positions[t]) * hidden + i] +
               type[i];
    }
    WarpLayerNormRowEmulated(row.data(), gamma.data(), beta.data(), hidden, 1e-12f,
                             &want[size_t(t) * hidden]);
  }
  DeviceArray<int32_t> d_ids(ids), d_pos(layout.positions), d_cu(layout.cu_seqlens);
  DeviceArray<uint16_t> d_word(ToBitsVector(dtype, word)), d_posemb(ToBitsVector(dtype, pos)),
      d_type(ToBitsVector(dtype, type));
  DeviceArray<float> d_gamma(gamma), d_beta(beta);
  DeviceArray<uint16_t> d_out(size_t(tokens) * hidden);
  ASSERT_CUDA_OK(LaunchPackedEmbeddingLayerNorm(
      dtype, d_ids.get(), d_pos.get(), tokens, d_word.get(), d_posemb.get(), d_type.get(),
      d_gamma.get(), d_beta.get(), hidden, 1e-12f, d_out.get(), nullptr));
  const std::vector<float> got = FromBitsVector(dtype, d_out.Download());
  for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], want[i], 2 * Tol(dtype)) << i;

  for (bool cls : {false, true}) {
    DeviceArray<float> d_pooled(lengths.size() * hidden);
    ASSERT_CUDA_OK(LaunchPackedMeanPool(dtype, d_out.get(), d_cu.get(),
                                        static_cast<int>(lengths.size()), hidden, cls,
                                        /*normalize=*/true, d_pooled.get(), nullptr));
    const std::vector<float> pooled = d_pooled.Download();
    for (size_t b = 0; b < lengths.size(); ++b) {
      std::vector<float> ref(hidden, 0.0f);
      const int count = cls ? 1 : lengths[b];
      for (int t = layout.cu_seqlens[b]; t < layout.cu_seqlens[b] + count; ++t) {
        MeanPoolAccumulate(ref.data(), &got[size_t(t) * hidden], hidden);
      }
      MeanPoolFinish(ref.data(), hidden, count);
      L2NormalizeInPlace(ref.data(), hidden);
      for (int i = 0; i < hidden; ++i) {
        ASSERT_NEAR(pooled[b * hidden + i], ref[i], 1e-4) << "cls " << cls << " seq " << b;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(DTypes, FusedKernelsTest,
                         ::testing::Values(DType::kFloat16, DType::kBFloat16));

// ---- The fused encoder against the reference encoder ----

// Random BERT weights owned here; `view` points into them.
struct RandomBert {
  std::vector<std::vector<float>> store;
  BertWeightsHost view;

  const float* Add(std::mt19937& rng, size_t n, float lo, float hi) {
    store.push_back(Random(rng, n, lo, hi));
    return store.back().data();
  }

  RandomBert(int layers, int hidden, int heads, int inter, int vocab, int max_pos) {
    store.reserve(8 + 16 * static_cast<size_t>(layers));  // pointers stay valid
    std::mt19937 rng(hidden + heads);
    view.layers = layers;
    view.hidden = hidden;
    view.heads = heads;
    view.intermediate = inter;
    view.vocab = vocab;
    view.max_position = max_pos;
    view.type_vocab = 2;
    const size_t h = hidden;
    const float wr = 1.7f / std::sqrt(float(hidden));
    const float wi = 1.7f / std::sqrt(float(inter));
    view.word_emb = Add(rng, vocab * h, -1, 1);
    view.pos_emb = Add(rng, max_pos * h, -0.5, 0.5);
    view.type_emb = Add(rng, 2 * h, -0.1, 0.1);
    view.emb_ln_gamma = Add(rng, h, 0.8, 1.2);
    view.emb_ln_beta = Add(rng, h, -0.1, 0.1);
    for (int i = 0; i < layers; ++i) {
      BertLayerWeightsHost l;
      l.query_w = Add(rng, h * h, -wr, wr);
      l.query_b = Add(rng, h, -0.1, 0.1);
      l.key_w = Add(rng, h * h, -wr, wr);
      l.key_b = Add(rng, h, -0.1, 0.1);
      l.value_w = Add(rng, h * h, -wr, wr);
      l.value_b = Add(rng, h, -0.1, 0.1);
      l.attn_out_w = Add(rng, h * h, -wr, wr);
      l.attn_out_b = Add(rng, h, -0.1, 0.1);
      l.attn_ln_gamma = Add(rng, h, 0.8, 1.2);
      l.attn_ln_beta = Add(rng, h, -0.1, 0.1);
      l.ffn_in_w = Add(rng, h * inter, -wr, wr);
      l.ffn_in_b = Add(rng, inter, -0.1, 0.1);
      l.ffn_out_w = Add(rng, h * inter, -wi, wi);
      l.ffn_out_b = Add(rng, h, -0.1, 0.1);
      l.ffn_ln_gamma = Add(rng, h, 0.8, 1.2);
      l.ffn_ln_beta = Add(rng, h, -0.1, 0.1);
      view.layer.push_back(l);
    }
  }
};

class FusedEncoderTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { TIPPERARY_SKIP_WITHOUT_GPU(); }
};

TEST_P(FusedEncoderTest, MatchesReferenceVariant) {
  for (int heads : {4, 2}) {  // head_dim 32 and 64
    const RandomBert m(2, 128, heads, 256, 97, 160);
    CudaEncoderOptions options;
    options.dtype = GetParam();
    options.max_batch_size = 7;
    options.max_batch_tokens = 300;  // several packed passes, some sequences > one query tile
    options.max_seq_len = 150;
    auto reference = CreateCudaEncoder(options, m.view);
    options.variant = "fused";
    auto fused = CreateCudaEncoder(options, m.view);
    ASSERT_TRUE(reference.ok()) << reference.status();
    ASSERT_TRUE(fused.ok()) << fused.status();

    std::mt19937 rng(heads);
    std::vector<std::vector<int32_t>> seqs;
    for (int len : {1, 150, 3, 64, 65, 129, 7, 40, 2, 100, 17, 31}) {
      std::vector<int32_t> s(len);
      for (int32_t& id : s) id = static_cast<int32_t>(rng() % 97);
      seqs.push_back(std::move(s));
    }
    std::vector<float> want, got;
    ASSERT_TRUE((*reference)->Encode(seqs, &want).ok());
    ASSERT_TRUE((*fused)->Encode(seqs, &got).ok());
    ASSERT_EQ(got.size(), want.size());
    const double min_cos = GetParam() == "float16" ? 0.999 : 0.995;
    for (size_t i = 0; i < seqs.size(); ++i) {
      EXPECT_GE(testing::Cosine(got.data() + i * 128, want.data() + i * 128, 128), min_cos)
          << "heads " << heads << " sequence " << i << " (" << seqs[i].size() << " tokens)";
    }
    // Alone or packed with others: the same vector (no leak across packed sequences).
    std::vector<float> single;
    ASSERT_TRUE((*fused)->Encode({seqs[5]}, &single).ok());
    EXPECT_GE(testing::Cosine(single.data(), got.data() + 5 * 128, 128), 0.9995);
  }
}

INSTANTIATE_TEST_SUITE_P(DTypes, FusedEncoderTest, ::testing::Values("float16", "bfloat16"));

// ---- Checks that fail before any device call (they run without a GPU) ----

TEST(FusedOptionsTest, UnknownVariantAndUnsupportedShapesAreRejected) {
  const RandomBert m(1, 72, 2, 128, 10, 8);  // head_dim 36: not supported by the fused kernels
  CudaEncoderOptions options;
  options.variant = "turbo";
  auto bad = CreateCudaEncoder(options, m.view);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("unknown variant \"turbo\""), std::string::npos);
  options.variant = "fused";
  auto shape = CreateCudaEncoder(options, m.view);
  EXPECT_EQ(shape.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(shape.status().message().find("head_dim"), std::string::npos) << shape.status();

  EXPECT_TRUE(FusedShapeSupported(384, 12, 1536));   // MiniLM
  EXPECT_TRUE(FusedShapeSupported(768, 12, 3072));   // BERT-base
  EXPECT_TRUE(FusedShapeSupported(1024, 16, 4096));  // BERT-large
  EXPECT_FALSE(FusedShapeSupported(72, 2, 128));
  EXPECT_FALSE(FusedShapeSupported(2048, 32, 8192));  // wider than one warp's registers
  EXPECT_EQ(LaunchVarlenAttention(DType::kFloat16, nullptr, nullptr, nullptr, nullptr, 1, 2, 48,
                                  nullptr, nullptr),
            cudaErrorInvalidValue);
  EXPECT_EQ(LaunchWarpBiasResidualLayerNorm(DType::kFloat16, nullptr, nullptr, nullptr, nullptr,
                                            nullptr, 1, 1032, 1e-12f, nullptr, nullptr),
            cudaErrorInvalidValue);
  EXPECT_EQ(LaunchBiasGeluVec(DType::kFloat16, nullptr, nullptr, 1, 12, nullptr),
            cudaErrorInvalidValue);
}

}  // namespace
}  // namespace tipperary::kernels
