// The CPU encoder against (1) a double-precision reference on tiny random models (mean and CLS
// pooling, padding invariance) and (2) sentence-transformers' own embeddings of the fixture
// corpus (tests/fixtures/embeddings.f32, computed from tests/fixtures/tokens.jsonl).
#include "tipperary/model/cpu_encoder.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <bit>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "../../src/model/cpu_math.h"     // internal; tested directly
#include "../../src/model/onednn_gemm.h"  // internal; tested directly
#include "tiny_model.h"

namespace tipperary::model {
namespace {

using ::testing::HasSubstr;

std::filesystem::path TempPath(const std::string& name) {
  return std::filesystem::temp_directory_path() /
         absl::StrCat("tipperary_cpu_encoder_test_", ::getpid(), "_", name);
}

double Cosine(const float* a, const float* b, int n) {
  double ab = 0, aa = 0, bb = 0;
  for (int i = 0; i < n; ++i) {
    ab += static_cast<double>(a[i]) * b[i];
    aa += static_cast<double>(a[i]) * a[i];
    bb += static_cast<double>(b[i]) * b[i];
  }
  return ab / std::sqrt(aa * bb);
}

TEST(CpuMathTest, FastErfAndExpMatchLibm) {
  double max_erf = 0, max_exp = 0;
  for (float x = -6.0f; x <= 6.0f; x += 0.001f) {
    max_erf = std::max(max_erf, std::abs(static_cast<double>(internal::FastErf(x)) - std::erf(x)));
  }
  for (float x = -87.0f; x <= 88.0f; x += 0.01f) {
    const double ref = std::exp(static_cast<double>(x));
    max_exp = std::max(max_exp, std::abs(internal::FastExp(x) - ref) / ref);
  }
  EXPECT_LT(max_erf, 1e-6);
  EXPECT_LT(max_exp, 5e-7);
  EXPECT_EQ(internal::FastExp(-1000.0f) < 1e-37f, true);
}

class TinyModelTest : public ::testing::TestWithParam<bool /*cls*/> {
 protected:
  void SetUp() override {
    config_.cls = GetParam();
    weights_ = testing::TinyWeights(config_);
    dir_ = TempPath(config_.cls ? "cls" : "mean");
    std::filesystem::remove_all(dir_);
    testing::WriteTinyModel(dir_, config_, weights_);
    auto bundle = LoadModel(dir_.string());
    ASSERT_TRUE(bundle.ok()) << bundle.status();
    bundle_ = *bundle;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  testing::TinyConfig config_;
  testing::Weights weights_;
  std::filesystem::path dir_;
  std::shared_ptr<const ModelBundle> bundle_;
};

TEST_P(TinyModelTest, MatchesTheReferenceForwardPass) {
  // The small batch (27 tokens) runs on the calling thread alone; the large one (127 tokens,
  // over the encoder's 96-token threshold) on the whole team.
  const std::vector<std::vector<int32_t>> small = {
      {1, 5, 9, 2}, {1, 2}, {1, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 3, 2}, {4}};
  std::vector<std::vector<int32_t>> large = small;
  for (int j = 0; j < 5; ++j) {
    std::vector<int32_t> seq(20);
    for (int p = 0; p < 20; ++p) seq[p] = (j * 3 + p) % 27 + 1;
    large.push_back(std::move(seq));
  }
  for (int threads : {1, 2, 3}) {
    auto enc = CreateCpuEncoder(bundle_, {.threads = threads});
    ASSERT_TRUE(enc.ok()) << enc.status();
    EXPECT_EQ((*enc)->hidden_size(), 8);
    EXPECT_EQ((*enc)->backend_name(), "cpu");
    EXPECT_EQ((*enc)->dtype(), "float32");
    const std::vector<std::vector<int32_t>>* batches[] = {&small, &large};
    for (const auto* batch : batches) {
      std::vector<float> out;
      ASSERT_TRUE((*enc)->Encode(*batch, &out).ok());
      ASSERT_EQ(out.size(), batch->size() * 8);
      for (size_t b = 0; b < batch->size(); ++b) {
        std::vector<double> ref = testing::ReferenceEncode(config_, weights_, (*batch)[b]);
        for (int i = 0; i < 8; ++i) {
          EXPECT_NEAR(out[b * 8 + i], ref[i], 1e-4)
              << "threads " << threads << " batch of " << batch->size() << " seq " << b;
        }
      }
    }
  }
}

TEST_P(TinyModelTest, OutputDoesNotDependOnBatchCompanions) {
  auto enc = CreateCpuEncoder(bundle_, {.threads = 2});
  ASSERT_TRUE(enc.ok());
  const std::vector<int32_t> seq = {1, 11, 12, 13, 2};
  std::vector<float> alone, together;
  ASSERT_TRUE((*enc)->Encode({seq}, &alone).ok());
  ASSERT_TRUE(
      (*enc)->Encode({{1, 2}, std::vector<int32_t>(19, 6), seq, {1, 3, 2}}, &together).ok());
  for (int i = 0; i < 8; ++i) EXPECT_NEAR(alone[i], together[2 * 8 + i], 1e-5);
  // Over 96 tokens the whole team runs the batch.
  std::vector<std::vector<int32_t>> many(6, std::vector<int32_t>(20, 8));
  many.push_back(seq);
  ASSERT_TRUE((*enc)->Encode(many, &together).ok());
  for (int i = 0; i < 8; ++i) EXPECT_NEAR(alone[i], together[6 * 8 + i], 1e-5);
}

TEST_P(TinyModelTest, IdlePriorityEncoderComputesTheSameVectors) {
  // Same team size, same partition of the work: the vectors must be bit-identical, for a batch
  // on one member (under 96 tokens) and one on the whole team.
  auto normal = CreateCpuEncoder(bundle_, {.threads = 2});
  auto idle = CreateCpuEncoder(bundle_, {.threads = 2, .idle_priority = true});
  ASSERT_TRUE(normal.ok() && idle.ok());
  EXPECT_FALSE((*normal)->idle_priority());
#ifdef __linux__
  EXPECT_TRUE((*idle)->idle_priority());  // Linux lets any thread lower itself to SCHED_IDLE
#endif
  std::vector<std::vector<int32_t>> small = {{1, 11, 12, 13, 2}, {1, 3, 2}};
  std::vector<std::vector<int32_t>> large(6, std::vector<int32_t>(20, 8));
  large.push_back({1, 11, 12, 13, 2});
  for (const auto* batch : {&small, &large}) {
    std::vector<float> a, b;
    ASSERT_TRUE((*normal)->Encode(*batch, &a).ok());
    ASSERT_TRUE((*idle)->Encode(*batch, &b).ok());
    EXPECT_EQ(a, b);
  }
}

TEST_P(TinyModelTest, EncodersSharingWeightsRunConcurrentlyAndMatchAnOwnCopy) {
  // A model's instances share one copy of the weights (LoadCpuEncoderWeights): run two of them
  // at once, from two threads, each on its own team, and compare with an encoder that loaded its
  // own copy: bit-identical (same team size, same partition), for every dtype this CPU has.
  std::vector<std::string> dtypes = {"float32"};
  if (CpuEncoderSupportsBfloat16()) dtypes.push_back("bfloat16");
  if (CpuEncoderSupportsInt8()) dtypes.push_back("int8");
  std::vector<std::vector<int32_t>> small = {{1, 11, 12, 13, 2}, {1, 3, 2}};
  std::vector<std::vector<int32_t>> large(6, std::vector<int32_t>(20, 8));
  large.push_back({1, 11, 12, 13, 2});
  for (const std::string& dtype : dtypes) {
    auto weights = LoadCpuEncoderWeights(bundle_, dtype);
    ASSERT_TRUE(weights.ok()) << dtype << ": " << weights.status();
    auto first = CreateCpuEncoder(*weights, {.threads = 2, .dtype = dtype});
    auto second = CreateCpuEncoder(*weights, {.threads = 2, .dtype = dtype, .idle_priority = true});
    auto own = CreateCpuEncoder(bundle_, {.threads = 2, .dtype = dtype});
    ASSERT_TRUE(first.ok() && second.ok() && own.ok()) << dtype;
    EXPECT_EQ((*first)->dtype(), dtype);
    std::vector<float> want_small, want_large;
    ASSERT_TRUE((*own)->Encode(small, &want_small).ok());
    ASSERT_TRUE((*own)->Encode(large, &want_large).ok());
    auto run = [&](Encoder* enc, const std::vector<std::vector<int32_t>>* batch,
                   const std::vector<float>* want, int* mismatches) {
      for (int i = 0; i < 50; ++i) {
        std::vector<float> out;
        if (!enc->Encode(*batch, &out).ok() || out != *want) ++*mismatches;
      }
    };
    int bad_first = 0, bad_second = 0;
    std::thread a(run, first->get(), &small, &want_small, &bad_first);
    std::thread b(run, second->get(), &large, &want_large, &bad_second);
    a.join();
    b.join();
    EXPECT_EQ(bad_first, 0) << dtype;
    EXPECT_EQ(bad_second, 0) << dtype;
  }
}

TEST_P(TinyModelTest, RejectsBadInput) {
  auto enc = CreateCpuEncoder(bundle_, {.threads = 1});
  ASSERT_TRUE(enc.ok());
  std::vector<float> out;
  EXPECT_THAT((*enc)->Encode({{1, 2}, {}}, &out).message(), HasSubstr("sequence 1 has 0 tokens"));
  EXPECT_THAT((*enc)->Encode({std::vector<int32_t>(21, 1)}, &out).message(),
              HasSubstr("expected 1..20"));
  EXPECT_THAT((*enc)->Encode({{1, 30}}, &out).message(), HasSubstr("token id 30"));
  EXPECT_THAT((*enc)->Encode({{-1}}, &out).message(), HasSubstr("token id -1"));
  ASSERT_TRUE((*enc)->Encode({}, &out).ok());
  EXPECT_TRUE(out.empty());
  EXPECT_FALSE(CreateCpuEncoder(bundle_, {.threads = -1}).ok());
  EXPECT_FALSE(CreateCpuEncoder(nullptr).ok());
  EXPECT_THAT(CreateCpuEncoder(bundle_, {.threads = 1, .dtype = "float16"}).status().message(),
              HasSubstr("float32, bfloat16 or int8"));
}

INSTANTIATE_TEST_SUITE_P(Pooling, TinyModelTest, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& p) {
                           return p.param ? "Cls" : "Mean";
                         });

TEST(L2NormalizeRowsTest, NormalisesEachRowAndLeavesZeros) {
  std::vector<float> m = {3, 4, 0, 0, 0, 5};
  L2NormalizeRows(m, 2);
  EXPECT_THAT(m, ::testing::ElementsAre(0.6f, 0.8f, 0.0f, 0.0f, 0.0f, 1.0f));
}

// Reads the "ids" arrays of tests/fixtures/tokens.jsonl, in line order.
std::vector<std::vector<int32_t>> ReadTokens(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::vector<int32_t>> rows;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const size_t open = line.find("\"ids\"");
    const size_t begin = line.find('[', open);
    const size_t end = line.find(']', begin);
    if (open == std::string::npos || begin == std::string::npos || end == std::string::npos) {
      ADD_FAILURE() << "bad line in " << path << ": " << line;
      return {};
    }
    std::stringstream ss(line.substr(begin + 1, end - begin - 1));
    std::vector<int32_t> ids;
    std::string item;
    while (std::getline(ss, item, ',')) ids.push_back(std::stoi(item));
    rows.push_back(std::move(ids));
  }
  return rows;
}

float RoundToBf16(float f) {
  uint32_t u = std::bit_cast<uint32_t>(f);
  u += 0x7fffu + ((u >> 16) & 1u);
  return std::bit_cast<float>(u & 0xffff0000u);
}

// The oneDNN bf16 GEMM against a double-precision product of the bf16-rounded operands, for row
// counts that exercise tail primitives (1, 17), whole 16-row multiples (48), and more than one
// 256-row block with a ragged end (300); shapes that are not multiples of 16 or 32.
void ExpectBf16LinearMatches(const internal::Bf16Linear& linear, const std::vector<float>& w,
                             int rows, std::mt19937& rng, internal::Bf16Scratch* scratch) {
  const int n = linear.n(), k = linear.k();
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(rows) * k);
  for (float& v : x) v = dist(rng);
  // A sentinel row after the output: tails must not write past `rows`.
  std::vector<float> y(static_cast<size_t>(rows + 1) * n, -7.0f);
  ASSERT_TRUE(linear.Run(x.data(), rows, y.data(), scratch).ok());
  double worst = 0;
  for (int r = 0; r < rows; ++r) {
    for (int c = 0; c < n; ++c) {
      double ref = 0;
      for (int i = 0; i < k; ++i) {
        ref += static_cast<double>(RoundToBf16(x[static_cast<size_t>(r) * k + i])) *
               RoundToBf16(w[static_cast<size_t>(c) * k + i]);
      }
      worst = std::max(worst, std::abs(ref - y[static_cast<size_t>(r) * n + c]));
    }
  }
  EXPECT_LT(worst, 1e-4) << rows << " rows, " << n << " x " << k;
  for (int c = 0; c < n; ++c) {
    ASSERT_EQ(y[static_cast<size_t>(rows) * n + c], -7.0f) << rows << " rows: wrote past the end";
  }
}

TEST(Bf16LinearTest, MatchesBf16RoundedReference) {
  if (!internal::Bf16MatmulNative())
    GTEST_SKIP() << "no native bf16 matmul (AMX or AVX512-BF16) from oneDNN here";
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  for (auto [n, k] : {std::pair{96, 64}, std::pair{100, 70}}) {
    std::vector<float> w(static_cast<size_t>(n) * k);
    for (float& v : w) v = dist(rng);
    absl::StatusOr<std::unique_ptr<internal::Bf16Linear>> linear =
        internal::Bf16Linear::Create(w.data(), n, k);
    ASSERT_TRUE(linear.ok()) << linear.status();
    internal::Bf16Scratch scratch;
    for (int rows : {1, 17, 48, 300}) ExpectBf16LinearMatches(**linear, w, rows, rng, &scratch);
  }
}

// accumulate: y += x w^T + bias inside the kernel (the residual stream of the bf16 path), from
// bf16 input, for a tail, a 16-row multiple and more than one 256-row block.
TEST(Bf16LinearTest, AccumulatesBiasAndProductIntoTheOutput) {
  if (!internal::Bf16MatmulNative())
    GTEST_SKIP() << "no native bf16 matmul (AMX or AVX512-BF16) from oneDNN here";
  constexpr int kN = 96, kK = 64;
  std::mt19937 rng(13);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> w(kN * kK), bias(kN);
  for (float& v : w) v = dist(rng);
  for (float& v : bias) v = dist(rng);
  absl::StatusOr<std::unique_ptr<internal::Bf16Linear>> linear =
      internal::Bf16Linear::Create(w.data(), kN, kK, {.bias = bias.data(), .accumulate = true});
  ASSERT_TRUE(linear.ok()) << linear.status();
  internal::Bf16Scratch scratch;
  for (int rows : {3, 32, 300}) {
    std::vector<uint16_t> x(static_cast<size_t>(rows) * kK);
    for (uint16_t& v : x) v = std::bit_cast<uint32_t>(RoundToBf16(dist(rng))) >> 16;
    std::vector<float> y(static_cast<size_t>(rows + 1) * kN);
    for (float& v : y) v = 10.0f * dist(rng);
    const std::vector<float> before = y;
    ASSERT_TRUE((*linear)->Run(x.data(), rows, y.data(), &scratch).ok());
    double worst = 0;
    for (int r = 0; r < rows; ++r) {
      for (int c = 0; c < kN; ++c) {
        double ref = before[static_cast<size_t>(r) * kN + c] + bias[c];
        for (int i = 0; i < kK; ++i) {
          ref += static_cast<double>(
                     std::bit_cast<float>(uint32_t{x[static_cast<size_t>(r) * kK + i]} << 16)) *
                 RoundToBf16(w[static_cast<size_t>(c) * kK + i]);
        }
        worst = std::max(worst, std::abs(ref - y[static_cast<size_t>(r) * kN + c]));
      }
    }
    EXPECT_LT(worst, 1e-4) << rows << " rows";
    for (int c = 0; c < kN; ++c) {
      const size_t at = static_cast<size_t>(rows) * kN + c;
      ASSERT_EQ(y[at], before[at]) << rows << " rows: wrote past the end";
    }
  }
  // A sum into bf16 would round the residual stream: refused.
  EXPECT_EQ(
      internal::Bf16Linear::Create(w.data(), kN, kK, {.bf16_output = true, .accumulate = true})
          .status()
          .code(),
      absl::StatusCode::kInvalidArgument);
}

// The encoder's team members run one weight's primitives at once, each with its own scratch.
TEST(Bf16LinearTest, RunsConcurrentlyWithSeparateScratches) {
  if (!internal::Bf16MatmulNative())
    GTEST_SKIP() << "no native bf16 matmul (AMX or AVX512-BF16) from oneDNN here";
  constexpr int kN = 96, kK = 64;
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> w(kN * kK);
  for (float& v : w) v = dist(rng);
  absl::StatusOr<std::unique_ptr<internal::Bf16Linear>> linear =
      internal::Bf16Linear::Create(w.data(), kN, kK);
  ASSERT_TRUE(linear.ok()) << linear.status();
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 local(100 + t);
      internal::Bf16Scratch scratch;
      for (int i = 0; i < 20; ++i)
        ExpectBf16LinearMatches(**linear, w, 1 + 37 * i, local, &scratch);
    });
  }
  for (auto& th : threads) th.join();
}

// float32 (OpenBLAS) and bfloat16 (AMX GEMMs, where the CPU has them) against the reference.
class RealModelTest : public ::testing::TestWithParam<const char* /*dtype*/> {};

INSTANTIATE_TEST_SUITE_P(Dtypes, RealModelTest, ::testing::Values("float32", "bfloat16"),
                         [](const auto& p) { return std::string(p.param); });

TEST_P(RealModelTest, MatchesSentenceTransformersOnTheFixtureCorpus) {
  const std::string dtype = GetParam();
  if (dtype == "bfloat16" && !internal::Bf16MatmulNative()) {
    GTEST_SKIP() << "no native bf16 matmul (AMX or AVX512-BF16) from oneDNN here";
  }
  const std::string model_dir = TIPPERARY_MODEL_DIR;
  if (model_dir.empty()) GTEST_SKIP() << "TIPPERARY_MODEL_DIR unset (run scripts/install-deps)";
  auto bundle = LoadModel(model_dir);
  ASSERT_TRUE(bundle.ok()) << bundle.status();
  const ModelConfig& config = (*bundle)->config();
  EXPECT_EQ(config.hidden_size, 384);
  EXPECT_EQ(config.num_hidden_layers, 6);
  EXPECT_EQ(config.max_seq_length, 256);
  EXPECT_EQ(config.pooling, PoolingMode::kMean);
  EXPECT_TRUE(config.normalize);

  const std::string fixtures = std::string(TIPPERARY_SOURCE_DIR) + "/tests/fixtures/";
  std::vector<std::vector<int32_t>> tokens = ReadTokens(fixtures + "tokens.jsonl");
  ASSERT_FALSE(tokens.empty());
  std::ifstream ref_in(fixtures + "embeddings.f32", std::ios::binary);
  std::vector<float> ref(tokens.size() * 384);
  ref_in.read(reinterpret_cast<char*>(ref.data()), static_cast<std::streamsize>(ref.size() * 4));
  ASSERT_EQ(ref_in.gcount(), static_cast<std::streamsize>(ref.size() * 4));

  auto enc = CreateCpuEncoder(*bundle, {.threads = 2, .dtype = dtype});
  ASSERT_TRUE(enc.ok()) << enc.status();
  EXPECT_EQ((*enc)->dtype(), dtype);
  // Batches of mixed lengths, as the batcher may form them.
  constexpr size_t kBatch = 24;
  double worst = 1.0;
  for (size_t start = 0; start < tokens.size(); start += kBatch) {
    std::vector<std::vector<int32_t>> batch(
        tokens.begin() + start, tokens.begin() + std::min(tokens.size(), start + kBatch));
    std::vector<float> out;
    ASSERT_TRUE((*enc)->Encode(batch, &out).ok());
    L2NormalizeRows(out, 384);
    for (size_t b = 0; b < batch.size(); ++b) {
      const double cos = Cosine(out.data() + b * 384, ref.data() + (start + b) * 384, 384);
      worst = std::min(worst, cos);
      EXPECT_GE(cos, 0.9999) << "text id " << start + b << " (" << batch[b].size() << " tokens)";
    }
  }
  RecordProperty("worst_cosine", absl::StrCat(worst));
  std::cout << dtype << ": worst cosine vs sentence-transformers: " << worst << "\n";
}

}  // namespace
}  // namespace tipperary::model
