// RunFusedForwardPass, the code the GPU encoder's fused variant runs, on the CPU mirror
// (FusedCpuMirrorOps: OpenBLAS for its GemmCalls, fused_math.h's kernel emulations, fp16/bf16
// storage): packed spans of a random BERT against each text encoded alone in double precision.
#include "tipperary/kernels/fused_cpu_mirror.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "fused_cpu_model.h"
#include "tipperary/kernels/forward_pass.h"
#include "tipperary/kernels/fused_forward_pass.h"
#include "tipperary/kernels/gemm_call.h"
#include "tipperary/kernels/linear_gemm.h"
#include "tipperary/kernels/stage_ablation.h"

namespace tipperary::kernels {
namespace {

using fused_test::TinyBert;

double Cosine(const float* a, const float* b, int n) {
  double dot = 0, na = 0, nb = 0;
  for (int i = 0; i < n; ++i) {
    dot += double{a[i]} * b[i];
    na += double{a[i]} * a[i];
    nb += double{b[i]} * b[i];
  }
  return dot / (std::sqrt(na) * std::sqrt(nb) + 1e-300);
}

// TinyBert's weights in the device's storage (16-bit bits, biases fp32), host side.
struct HostFusedModel {
  std::vector<std::vector<uint16_t>> mats;
  ForwardModel model;

  const void* Mat(GemmType dt, const std::vector<float>& v) {
    mats.push_back(ToStorageBits(dt, {v.data()}, v.size()));
    return mats.back().data();
  }

  HostFusedModel(const TinyBert& m, GemmType dt) {
    mats.reserve(4 + 4 * m.l.size());
    model.dtype = dt;
    model.hidden = m.hidden;
    model.heads = m.heads;
    model.intermediate = m.inter;
    model.eps = m.eps;
    model.word_emb = Mat(dt, m.word);
    model.pos_emb = Mat(dt, m.pos);
    model.type_emb = Mat(dt, m.type);
    model.emb_ln_gamma = m.emb_g.data();
    model.emb_ln_beta = m.emb_b.data();
    for (const TinyBert::Layer& y : m.l) {
      ForwardLayer l;
      l.qkv_w = Mat(dt, y.qkv_w);
      l.qkv_b = y.qkv_b.data();
      l.attn_out_w = Mat(dt, y.o_w);
      l.attn_out_b = y.o_b.data();
      l.attn_ln_gamma = y.ln1_g.data();
      l.attn_ln_beta = y.ln1_b.data();
      l.ffn_in_w = Mat(dt, y.i_w);
      l.ffn_in_b = y.i_b.data();
      l.ffn_out_w = Mat(dt, y.f_w);
      l.ffn_out_b = y.f_b.data();
      l.ffn_ln_gamma = y.ln2_g.data();
      l.ffn_ln_beta = y.ln2_b.data();
      model.layers.push_back(l);
    }
  }
};

// Encodes through PlanPackedSpans / PackPackedSpan / RunFusedForwardPass, as the GPU encoder.
std::vector<float> MirrorEncode(const HostFusedModel& hm, const ForwardLimits& limits,
                                const std::vector<std::vector<int32_t>>& seqs,
                                FusedCpuMirrorOps* ops_in = nullptr,
                                const StageScales& scales = StageScales()) {
  const int h = hm.model.hidden;
  const size_t t = static_cast<size_t>(limits.max_tokens);
  std::vector<uint16_t> x(t * h), qkv(t * 3 * h), ctx(t * h), tmp(t * h),
      inter(t * hm.model.intermediate);
  ForwardBuffers buf;
  buf.x = x.data();
  buf.qkv = qkv.data();
  buf.ctx = ctx.data();
  buf.tmp = tmp.data();
  buf.inter = inter.data();
  std::vector<int32_t> input(PackedInputCapacity(limits));
  std::vector<float> out(seqs.size() * h);
  FusedCpuMirrorOps own_ops;
  FusedCpuMirrorOps* ops = ops_in != nullptr ? ops_in : &own_ops;
  for (const PackedSpan& span : PlanPackedSpans(seqs, limits)) {
    EXPECT_LE(span.count, static_cast<size_t>(limits.max_batch));
    EXPECT_LE(span.tokens, limits.max_tokens);
    const int tiles = PackPackedSpan(seqs, span, input.data());
    EXPECT_LE(PackedInputSize(span, tiles), input.size());
    const absl::Status s =
        RunFusedForwardPass(hm.model, buf, PackedInputAt(input.data(), span, tiles), span,
                            /*normalize=*/false, out.data() + span.begin * h, ops, scales);
    EXPECT_TRUE(s.ok()) << s;
  }
  return out;
}

class FusedCpuMirrorTest : public ::testing::TestWithParam<GemmType> {};

TEST_P(FusedCpuMirrorTest, PackedSpansMatchEachTextAloneInDouble) {
  const TinyBert m(43);
  const HostFusedModel hm(m, GetParam());
  ForwardLimits limits;
  limits.max_batch = 3;
  limits.max_tokens = 60;  // several spans, each closed by max_batch or max_tokens
  limits.max_seq = limits.max_seq_real = 40;
  std::mt19937 rng(47);
  std::vector<std::vector<int32_t>> seqs;
  for (int len : {1, 40, 3, 17, 2, 33, 9, 25}) {
    std::vector<int32_t> s(len);
    for (int32_t& id : s) id = static_cast<int32_t>(rng() % m.vocab);
    seqs.push_back(std::move(s));
  }
  EXPECT_EQ(PlanPackedSpans(seqs, limits).size(), 3u);  // {1,40,3} {17,2,33} {9,25}
  const std::vector<float> got = MirrorEncode(hm, limits, seqs);
  // fp16 keeps 11 bits, bf16 8: the same pass drifts further in bf16.
  const double min_cos = GetParam() == GemmType::kFloat16 ? 0.9999 : 0.999;
  for (size_t b = 0; b < seqs.size(); ++b) {
    const std::vector<float> want = fused_test::ReferenceEncode(m, seqs[b]);
    EXPECT_GE(Cosine(got.data() + b * m.hidden, want.data(), m.hidden), min_cos)
        << "text " << b << " (" << seqs[b].size() << " tokens)";
  }
}

INSTANTIATE_TEST_SUITE_P(DTypes, FusedCpuMirrorTest,
                         ::testing::Values(GemmType::kFloat16, GemmType::kBFloat16),
                         [](const ::testing::TestParamInfo<GemmType>& p) {
                           return std::string(p.param == GemmType::kFloat16 ? "Float16"
                                                                            : "BFloat16");
                         });

TEST(FusedPlanTest, SpansRespectLimitsAndLinearGemmCallIsRowMajor) {
  ForwardLimits limits;
  limits.max_batch = 2;
  limits.max_tokens = 10;
  const std::vector<std::vector<int32_t>> seqs = {{1, 2, 3}, {4}, {5, 6, 7, 8, 9, 10, 11}, {12}};
  const std::vector<PackedSpan> spans = PlanPackedSpans(seqs, limits);
  ASSERT_EQ(spans.size(), 2u);
  EXPECT_EQ(spans[0].count, 2u);  // max_batch
  EXPECT_EQ(spans[0].tokens, 4);
  EXPECT_EQ(spans[1].begin, 2u);
  EXPECT_EQ(spans[1].tokens, 8);
  std::vector<int32_t> block(PackedInputCapacity(limits), -1);
  const int tiles = PackPackedSpan(seqs, spans[1], block.data());
  EXPECT_EQ(tiles, 2);
  const PackedInput in = PackedInputAt(block.data(), spans[1], tiles);
  EXPECT_EQ(std::vector<int32_t>(in.ids, in.ids + 8),
            (std::vector<int32_t>{5, 6, 7, 8, 9, 10, 11, 12}));
  EXPECT_EQ(std::vector<int32_t>(in.positions, in.positions + 8),
            (std::vector<int32_t>{0, 1, 2, 3, 4, 5, 6, 0}));
  EXPECT_EQ(std::vector<int32_t>(in.cu_seqlens, in.cu_seqlens + 3),
            (std::vector<int32_t>{0, 7, 8}));
  EXPECT_EQ(std::vector<int32_t>(in.tiles, in.tiles + 4), (std::vector<int32_t>{0, 0, 1, 0}));

  // y[2, 3] = x[2, 4] * w^T, w [3, 4]: element by element.
  const std::vector<float> x = {1, 2, 3, 4, 5, 6, 7, 8};
  const std::vector<float> w = {1, 0, 0, 0, 0, 1, 0, 0, 1, 1, 1, 1};
  std::vector<float> y(6, 0.0f);
  const GemmCall g = LinearGemmCall("t", x.data(), w.data(), 2, 4, 3, y.data(), GemmType::kFloat32);
  ASSERT_TRUE(RunGemmOnCpu(g).ok());
  EXPECT_EQ(y, (std::vector<float>{1, 2, 10, 5, 6, 26}));

  EXPECT_TRUE(FusedShapeSupported(384, 12, 1536));
  EXPECT_FALSE(FusedShapeSupported(72, 2, 128));
}

// Delegates to FusedCpuMirrorOps; counts every issued stage by name (all layers together).
class CountingFusedOps : public FusedCpuMirrorOps {
 public:
  std::map<std::string, int> issued;
  absl::Status AfterStage(const char* stage, int layer) override {
    (void)layer;
    ++issued[stage];
    return absl::OkStatus();
  }
};

// The bench's stage ablation (stage_ablation.h) on the fused pass: each stage's launches issued
// 0 or 2 times, the others untouched. The table is written out here, not taken from
// fused_forward_pass.cc, so that a stage wired to the wrong switch fails.
TEST(FusedStageAblationTest, EachStageIssuedZeroOrTwoTimes) {
  const std::map<std::string, std::set<std::string>> stages = {
      {"embedding", {"fused.embedding_layernorm"}},
      {"qkv_gemm", {"fused.attention.qkv"}},
      {"attention", {"fused.attention.varlen"}},
      {"attn_out_gemm", {"fused.attention.output"}},
      {"layernorm", {"fused.attention.layernorm", "fused.ffn.layernorm"}},
      {"ffn_gemms", {"fused.ffn.in", "fused.ffn.out"}},
      {"gelu", {"fused.ffn.bias_gelu"}},
      {"pooling", {"fused.pooling"}},
  };
  const TinyBert m(53);
  const HostFusedModel hm(m, GemmType::kFloat16);
  ForwardLimits limits;
  limits.max_batch = 3;
  limits.max_tokens = 60;
  limits.max_seq = limits.max_seq_real = 40;
  std::mt19937 rng(59);
  std::vector<std::vector<int32_t>> seqs;
  for (int len : {5, 40, 3, 17}) {
    std::vector<int32_t> s(len);
    for (int32_t& id : s) id = static_cast<int32_t>(rng() % m.vocab);
    seqs.push_back(std::move(s));
  }
  CountingFusedOps base_ops;
  const std::vector<float> base = MirrorEncode(hm, limits, seqs, &base_ops);
  ASSERT_FALSE(base_ops.issued.empty());
  for (int i = 0; i < kAblationStageCount; ++i) {
    const auto stage = static_cast<AblationStage>(i);
    const std::string name = AblationStageName(stage);
    if (!VariantHasStage("fused", stage)) {
      EXPECT_FALSE(stages.count(name)) << name;
      continue;
    }
    ASSERT_TRUE(stages.count(name)) << name;
    for (int scale : {0, 2}) {
      StageScales scales;
      scales.scale[i] = scale;
      CountingFusedOps ops;
      const std::vector<float> got = MirrorEncode(hm, limits, seqs, &ops, scales);
      for (const auto& [stage_name, count] : base_ops.issued) {
        const int want = stages.at(name).count(stage_name) ? scale * count : count;
        EXPECT_EQ(ops.issued[stage_name], want) << name << "=" << scale << ": " << stage_name;
      }
      if (scale == 0) {
        EXPECT_NE(got, base) << name << "=0 left the output unchanged";
      }
    }
  }
  // Scale 1 everywhere, spelt out, is the normal pass bit for bit.
  StageScales ones;
  for (int& s : ones.scale) s = 1;
  EXPECT_EQ(MirrorEncode(hm, limits, seqs, nullptr, ones), base);
}

}  // namespace
}  // namespace tipperary::kernels
