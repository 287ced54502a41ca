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
#include "tipperary/kernels/stage_ablation.h"

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

// ---- Stage ablation (gpu_encoder_bench --ablate): each stage issued 0 or 2 times ----

// Delegates to CpuMirrorOps; counts every issued stage by name (all layers together).
class CountingOps : public CpuMirrorOps {
 public:
  std::map<std::string, int> issued;
  absl::Status AfterStage(const char* stage, int layer) override {
    (void)layer;
    ++issued[stage];
    return absl::OkStatus();
  }
};

// The reference pass's stage names of each ablation stage, written out here rather than taken
// from forward_pass.cc, so that a stage wired to the wrong switch fails.
const std::map<std::string, std::set<std::string>> kReferenceStages = {
    {"embedding", {"embedding_layernorm"}},
    {"qkv_gemm", {"attention.qkv"}},
    {"qkv_permute", {"attention.split_qkv_bias", "attention.merge_heads"}},
    {"attention", {"attention.qk", "attention.softmax", "attention.pv"}},
    {"attn_out_gemm", {"attention.output"}},
    {"layernorm", {"attention.layernorm", "ffn.layernorm"}},
    {"ffn_gemms", {"ffn.in", "ffn.out"}},
    {"gelu", {"ffn.bias_gelu"}},
    {"pooling", {"pooling"}},
};

// Stages that rewrite their input in place: doubling them changes the output. The others write
// a fresh output from unchanged inputs, so running them twice gives the same bits (their second
// run is pure extra time, which is what the bench's "doubled" measures).
bool InPlace(const std::string& stage) { return stage == "layernorm" || stage == "gelu"; }

std::vector<std::string> AllStageNames() {
  std::vector<std::string> names;
  for (int i = 0; i < kAblationStageCount; ++i) {
    names.emplace_back(AblationStageName(static_cast<AblationStage>(i)));
  }
  return names;
}

TEST(StageAblationTest, ParsesStagesAndRefusesUnknownOnes) {
  EXPECT_TRUE(ParseStageScales("")->IsIdentity());
  absl::StatusOr<StageScales> s = ParseStageScales("attention=0,ffn_gemms=2");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->Of(AblationStage::kAttention), 0);
  EXPECT_EQ(s->Of(AblationStage::kFfnGemms), 2);
  EXPECT_EQ(s->Of(AblationStage::kGelu), 1);
  EXPECT_FALSE(s->IsIdentity());
  for (const char* bad : {"atention=0", "gelu=3", "gelu=-1", "gelu", "gelu=x", ",", "gelu=0,"}) {
    EXPECT_FALSE(ParseStageScales(bad).ok()) << bad;
  }
  EXPECT_NE(ParseStageScales("atention=0").status().message().find("known: embedding"),
            std::string::npos);
  // CreateCpuMirrorEncoder (and so CreateCudaEncoder) validate the option.
  testing::HostModel m = testing::RandomModel(1, 64, 2, 128, 50, 16);
  CudaEncoderOptions options;
  options.ablate = "softmax=0";
  EXPECT_EQ(CreateCpuMirrorEncoder(options, m.view).status().code(),
            absl::StatusCode::kInvalidArgument);
  // The table of this test covers every stage the reference pass has.
  for (const std::string& name : AllStageNames()) EXPECT_TRUE(kReferenceStages.count(name)) << name;
}

TEST(StageAblationTest, ReferencePassIssuesEachStageZeroOrTwoTimes) {
  testing::HostModel m = testing::RandomModel(2, 128, 4, 256, 97, 64);
  std::mt19937 rng(5);
  const auto seqs = testing::RandomSequences(rng, 7, 40, 97);
  auto run = [&](const std::string& ablate, std::map<std::string, int>* issued) {
    CountingOps ops;
    CudaEncoderOptions options = SmallLimits("float16");
    options.ablate = ablate;
    auto encoder = CreateCpuMirrorEncoder(options, m.view, &ops);
    EXPECT_TRUE(encoder.ok()) << encoder.status();
    std::vector<float> out;
    if (encoder.ok()) {
      EXPECT_TRUE((*encoder)->Encode(seqs, &out).ok()) << ablate;
    }
    *issued = ops.issued;
    return out;
  };
  std::map<std::string, int> base_issued;
  const std::vector<float> base = run("", &base_issued);
  for (const auto& [stage, names] : kReferenceStages) {
    for (int scale : {0, 2}) {
      const std::string ablate = stage + "=" + std::to_string(scale);
      std::map<std::string, int> issued;
      const std::vector<float> got = run(ablate, &issued);
      for (const auto& [name, count] : base_issued) {
        const int want = names.count(name) ? scale * count : count;
        EXPECT_EQ(issued[name], want) << ablate << ": " << name;
      }
      if (scale == 0 || InPlace(stage)) {
        EXPECT_NE(got, base) << ablate << " left the output unchanged";
      } else {
        EXPECT_EQ(got, base) << ablate << ": a stage with a fresh output run twice";
      }
    }
  }
}

// The default variant, auto: fused where its kernels take the model's shape, reference
// otherwise; the encoder then computes exactly what the resolved variant computes.
TEST(CudaVariantTest, AutoIsFusedWhereTheShapeAllowsElseReference) {
  testing::HostModel fits = testing::RandomModel(2, 128, 4, 256, 97, 64);  // head size 32
  testing::HostModel odd = testing::RandomModel(1, 72, 2, 128, 50, 64);    // head size 36
  EXPECT_EQ(ResolveCudaVariant("auto", fits.view), "fused");
  EXPECT_EQ(ResolveCudaVariant("auto", odd.view), "reference");
  EXPECT_EQ(ResolveCudaVariant("reference", fits.view), "reference");
  EXPECT_EQ(ResolveCudaVariant("fused", odd.view), "fused");  // then refused, naming the shape
  std::mt19937 rng(8);
  const auto seqs = testing::RandomSequences(rng, 7, 40, 50);
  auto encode = [&](const testing::HostModel& m, const std::string& variant) {
    CudaEncoderOptions options = SmallLimits("float16");
    options.variant = variant;
    auto encoder = CreateCpuMirrorEncoder(options, m.view);
    EXPECT_TRUE(encoder.ok()) << variant << ": " << encoder.status();
    std::vector<float> out;
    if (encoder.ok()) {
      EXPECT_TRUE((*encoder)->Encode(seqs, &out).ok()) << variant;
    }
    return out;
  };
  const std::vector<float> fused = encode(fits, "fused");
  ASSERT_FALSE(fused.empty());
  EXPECT_EQ(encode(fits, "auto"), fused);
  EXPECT_NE(encode(fits, "reference"), fused);  // so the equality above says something
  const std::vector<float> reference = encode(odd, "reference");
  ASSERT_FALSE(reference.empty());
  EXPECT_EQ(encode(odd, "auto"), reference);
}

class StageAblationVariantTest : public ::testing::TestWithParam<std::string> {};

// Through the encoder's option, for both variants: scale 1 everywhere is the normal pass bit for
// bit; removing any stage the variant has changes the output; doubling an in-place one too.
TEST_P(StageAblationVariantTest, OptionReachesThePass) {
  testing::HostModel m = testing::RandomModel(2, 128, 4, 256, 97, 64);
  std::mt19937 rng(6);
  const auto seqs = testing::RandomSequences(rng, 9, 40, 97);
  auto encode = [&](const std::string& ablate) {
    CudaEncoderOptions options = SmallLimits("float16");
    options.variant = GetParam();
    options.ablate = ablate;
    auto encoder = CreateCpuMirrorEncoder(options, m.view);
    EXPECT_TRUE(encoder.ok()) << encoder.status();
    std::vector<float> out;
    if (encoder.ok()) {
      EXPECT_TRUE((*encoder)->Encode(seqs, &out).ok()) << ablate;
    }
    return out;
  };
  const std::vector<float> base = encode("");
  ASSERT_EQ(base.size(), seqs.size() * 128);
  std::string all_ones;
  for (const std::string& name : AllStageNames()) {
    all_ones += (all_ones.empty() ? "" : ",") + name + "=1";
  }
  EXPECT_EQ(encode(all_ones), base);
  for (int i = 0; i < kAblationStageCount; ++i) {
    const auto stage = static_cast<AblationStage>(i);
    if (!VariantHasStage(GetParam(), stage)) continue;
    const std::string name = AblationStageName(stage);
    EXPECT_NE(encode(name + "=0"), base) << name << "=0";
    if (InPlace(name)) {
      EXPECT_NE(encode(name + "=2"), base) << name << "=2";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Variants, StageAblationVariantTest,
                         ::testing::Values("reference", "fused"));

}  // namespace
}  // namespace tipperary::kernels
