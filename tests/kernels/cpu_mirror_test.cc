// The GPU encoder's forward pass (forward_pass.h) run on the CPU mirror: the same GemmCall
// layouts and element-wise stages on host fp16/bf16 storage, compared with CpuEncode (the double-
// accumulating reference) on small random BERTs and with sentence-transformers on the real
// model. A layout slip in the shared code (transpose, leading dimension, stride, offset) fails
// here without a GPU; LayoutMutationsAreCaught proves that the comparison would see one.
#include "tipperary/kernels/cpu_mirror.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "host_model.h"
#include "real_model.h"

namespace tipperary::kernels {
namespace {

using testing::Cosine;

// Delegates to CpuMirrorOps; alters the GEMMs whose name matches (a deliberate layout bug) and
// records every call's name.
class MutatingOps : public CpuMirrorOps {
 public:
  std::string target;
  std::function<void(GemmCall*)> mutate;
  std::set<std::string> seen;

  absl::Status Gemm(const GemmCall& call) override {
    seen.insert(call.name);
    GemmCall g = call;
    if (mutate && target == call.name) mutate(&g);
    return CpuMirrorOps::Gemm(g);
  }
};

CudaEncoderOptions SmallLimits(const std::string& dtype) {
  // Limits small enough to force several passes and several attention chunks per pass, as the
  // GPU test does.
  CudaEncoderOptions options;
  options.dtype = dtype;
  options.max_batch_size = 5;
  options.max_batch_tokens = 160;
  options.max_seq_len = 40;
  options.attention_workspace_bytes = 1;  // one sequence's scores at a time
  return options;
}

// Worst cosine of the encoder's outputs against CpuEncode, or -1 when Encode fails.
double WorstAgainstReference(model::Encoder* encoder, const testing::HostModel& m,
                             const std::vector<std::vector<int32_t>>& seqs) {
  std::vector<float> out;
  if (!encoder->Encode(seqs, &out).ok()) return -1;
  const int h = m.view.hidden;
  double worst = 1;
  for (size_t i = 0; i < seqs.size(); ++i) {
    const std::vector<float> want = testing::CpuEncode(m.view, seqs[i]);
    const double c = Cosine(out.data() + i * h, want.data(), h);
    if (std::isnan(c)) return -2;  // std::min would drop a NaN
    worst = std::min(worst, c);
  }
  return worst;
}

class CpuMirrorTest : public ::testing::TestWithParam<std::string> {
 protected:
  // The GPU gates (cuda_encoder_test): the mirror rounds as the GPU does, so it must pass them.
  double min_cosine() const { return GetParam() == "float16" ? 0.999 : 0.995; }
};

TEST_P(CpuMirrorTest, MatchesCpuReferenceOnRandomModel) {
  for (int heads : {4, 2}) {  // head_dim 32 and 64
    testing::HostModel m = testing::RandomModel(2, 128, heads, 256, 97, 64);
    auto encoder = CreateCpuMirrorEncoder(SmallLimits(GetParam()), m.view);
    ASSERT_TRUE(encoder.ok()) << encoder.status();
    EXPECT_EQ((*encoder)->dtype(), GetParam());
    std::mt19937 rng(heads);
    const auto seqs = testing::RandomSequences(rng, 13, 40, 97);
    const double worst = WorstAgainstReference(encoder->get(), m, seqs);
    EXPECT_GE(worst, min_cosine()) << "heads=" << heads;
    std::printf("[%s heads=%d] worst cosine vs CpuEncode %.6f\n", GetParam().c_str(), heads, worst);

    // A row alone gives the same vector as in its batch (padding and batching do not leak).
    std::vector<float> all, single;
    ASSERT_TRUE((*encoder)->Encode(seqs, &all).ok());
    ASSERT_TRUE((*encoder)->Encode({seqs[3]}, &single).ok());
    EXPECT_GE(Cosine(single.data(), all.data() + 3 * 128, 128), 0.9995);
  }
}

TEST_P(CpuMirrorTest, LayoutMutationsAreCaught) {
  // Each GEMM of the pass, altered in its layout, must break the comparison (an error from
  // validation or a cosine far below the gate): the test above would catch such a bug in the
  // shared forward pass. Several passes and chunks run (the small limits), so strides and
  // offsets of every batch entry count.
  testing::HostModel m = testing::RandomModel(2, 128, 4, 256, 97, 64);
  std::mt19937 rng(7);
  const auto seqs = testing::RandomSequences(rng, 9, 40, 97);
  MutatingOps ops;
  auto encoder = CreateCpuMirrorEncoder(SmallLimits(GetParam()), m.view, &ops);
  ASSERT_TRUE(encoder.ok()) << encoder.status();
  ASSERT_GE(WorstAgainstReference(encoder->get(), m, seqs), min_cosine());
  const std::set<std::string> names = ops.seen;
  EXPECT_EQ(names, (std::set<std::string>{"attention.qkv", "attention.qk", "attention.pv",
                                          "attention.output", "ffn.in", "ffn.out"}));
  // Every mutation reads within the extent the correct call reads (so the mirror never reads
  // outside its buffers): a transpose with a consistent leading dimension, a smaller leading
  // dimension (an error when below the rows, as cuBLAS would give), a halved batch stride.
  auto transpose_a = [](GemmCall* g) {
    const bool was_n = g->trans_a == GemmOp::kN;
    g->trans_a = was_n ? GemmOp::kT : GemmOp::kN;
    g->lda = was_n ? g->k : g->m;  // the rows of A as now stored
  };
  auto transpose_b = [](GemmCall* g) {
    const bool was_n = g->trans_b == GemmOp::kN;
    g->trans_b = was_n ? GemmOp::kT : GemmOp::kN;
    g->ldb = was_n ? g->n : g->k;
  };
  const std::vector<std::pair<std::string, std::function<void(GemmCall*)>>> mutations = {
      {"transpose A", transpose_a},
      {"transpose B", transpose_b},
      {"lda - 8", [](GemmCall* g) { g->lda -= 8; }},
      {"ldb - 8", [](GemmCall* g) { g->ldb -= 8; }},
  };
  for (const std::string& name : names) {
    for (const auto& [what, fn] : mutations) {
      ops.target = name;
      ops.mutate = fn;
      const double worst = WorstAgainstReference(encoder->get(), m, seqs);
      EXPECT_LT(worst, 0.99) << what << " on " << name << " went unnoticed";
    }
  }
  // Batch strides of the attention GEMMs (one chunk holds several (sequence, head) matrices).
  for (const char* name : {"attention.qk", "attention.pv"}) {
    ops.target = name;
    ops.mutate = [](GemmCall* g) { g->stride_b /= 2; };
    EXPECT_LT(WorstAgainstReference(encoder->get(), m, seqs), 0.99) << "stride_b on " << name;
  }
}

TEST_P(CpuMirrorTest, RealModelMatchesSentenceTransformers) {
  const std::string dir = testing::RealModelDir();
  if (dir.empty() || !std::filesystem::exists(dir + "/config.json")) {
    GTEST_SKIP() << "no model (TIPPERARY_MODEL_DIR); scripts/install-deps installs it";
  }
  testing::HostModel m;
  ASSERT_TRUE(testing::LoadRealModel(dir, &m).ok());
  testing::Fixtures f;
  ASSERT_TRUE(testing::ReadFixtures(m.view.hidden, &f).ok());
  // A sample (the mirror is slow): short texts batched with the longest, so most rows are padded.
  const std::vector<size_t> sample = testing::FixtureSample(f);
  std::vector<std::vector<int32_t>> texts;
  for (size_t i : sample) texts.push_back(f.tokens[i]);
  const int h = m.view.hidden;
  // Both variants: "fused" is the packed pass with the fused kernels' algorithms.
  for (const char* variant : {"reference", "fused"}) {
    // The worker's limits for this model (batch of 64 sequences, 8192 tokens).
    CudaEncoderOptions options;
    options.dtype = GetParam();
    options.variant = variant;
    options.max_batch_size = 64;
    options.max_batch_tokens = 8192;
    auto encoder = CreateCpuMirrorEncoder(options, m.view);
    ASSERT_TRUE(encoder.ok()) << encoder.status();
    std::vector<float> out;
    ASSERT_TRUE((*encoder)->Encode(texts, &out).ok()) << variant;
    double worst = 1;
    for (size_t j = 0; j < sample.size(); ++j) {
      const size_t i = sample[j];
      const double c = Cosine(out.data() + j * h, f.embeddings.data() + i * h, h);
      worst = std::min(worst, c);
      EXPECT_GE(c, min_cosine()) << variant << ": text " << i << " (" << f.tokens[i].size()
                                 << " tokens)";
    }
    std::printf("[%s %s] CPU mirror, %zu texts: worst cosine vs sentence-transformers %.6f\n",
                GetParam().c_str(), variant, texts.size(), worst);
  }
}

INSTANTIATE_TEST_SUITE_P(DTypes, CpuMirrorTest, ::testing::Values("float16", "bfloat16"),
                         [](const ::testing::TestParamInfo<std::string>& param_info) {
                           return param_info.param == "float16" ? std::string("Float16")
                                                                : std::string("BFloat16");
                         });

// The reference itself: CpuEncode (fp32 activations, double dot products) against the fixture
// embeddings that sentence-transformers computed in fp32 on PyTorch.
TEST(CpuReferenceTest, CpuEncodeMatchesSentenceTransformers) {
  const std::string dir = testing::RealModelDir();
  if (dir.empty() || !std::filesystem::exists(dir + "/config.json")) {
    GTEST_SKIP() << "no model (TIPPERARY_MODEL_DIR); scripts/install-deps installs it";
  }
  testing::HostModel m;
  ASSERT_TRUE(testing::LoadRealModel(dir, &m).ok());
  testing::Fixtures f;
  ASSERT_TRUE(testing::ReadFixtures(m.view.hidden, &f).ok());
  const int h = m.view.hidden;
  double worst = 1;
  for (size_t i : testing::FixtureSample(f)) {
    const std::vector<float> got = testing::CpuEncode(m.view, f.tokens[i]);
    const double c = Cosine(got.data(), f.embeddings.data() + i * h, h);
    worst = std::min(worst, c);
    EXPECT_GE(c, 0.999999) << "text " << i << " (" << f.tokens[i].size() << " tokens)";
  }
  std::printf("CpuEncode: worst cosine vs sentence-transformers %.8f\n", worst);
}

}  // namespace
}  // namespace tipperary::kernels

namespace tipperary::kernels {
namespace {

// A stage that fails as a faulted GPU does: the error names the stage and layer, and keeps the
// payload the worker acts on (model::IsEncoderUnusable).
class FaultyOps : public CpuMirrorOps {
 public:
  absl::Status BiasGelu(GemmType, void*, const float*, int, int) override {
    return model::EncoderUnusableError("cudaErrorIllegalAddress");
  }
};

TEST(CpuMirrorFaultTest, StageErrorsNameTheStageAndKeepTheUnusablePayload) {
  testing::HostModel m = testing::RandomModel(2, 64, 2, 128, 50, 16);
  FaultyOps ops;
  auto encoder = CreateCpuMirrorEncoder(CudaEncoderOptions{}, m.view, &ops);
  ASSERT_TRUE(encoder.ok()) << encoder.status();
  std::vector<float> out;
  const absl::Status s = (*encoder)->Encode({{1, 2, 3}}, &out);
  EXPECT_TRUE(model::IsEncoderUnusable(s)) << s;
  EXPECT_NE(s.message().find("ffn.bias_gelu in layer 0"), std::string::npos) << s;
}

}  // namespace
}  // namespace tipperary::kernels
