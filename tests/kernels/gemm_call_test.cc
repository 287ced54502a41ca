// RunGemmOnCpu against a plain double-precision loop that reads every operand through the
// cuBLAS definition (column-major, leading dimensions, batch strides): all transposes, padded
// leading dimensions, batches, beta, fp16/bf16 storage and the epilogues. Plus the validation.
#include "tipperary/kernels/gemm_call.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "tipperary/kernels/math.h"

namespace tipperary::kernels {
namespace {

float FromStorage(GemmType t, const std::vector<uint16_t>& bits, const std::vector<float>& f,
                  int64_t i) {
  if (t == GemmType::kFloat32) return f[i];
  return t == GemmType::kFloat16 ? HalfBitsToFloat(bits[i]) : Bf16BitsToFloat(bits[i]);
}

// A matrix buffer of either storage kind, filled with random values.
struct Buffer {
  GemmType type;
  std::vector<float> f;
  std::vector<uint16_t> bits;
  Buffer(GemmType t, size_t n, std::mt19937& rng) : type(t) {
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    if (t == GemmType::kFloat32) {
      f.resize(n);
      for (float& v : f) v = dist(rng);
    } else {
      bits.resize(n);
      for (uint16_t& v : bits) {
        v = t == GemmType::kFloat16 ? FloatToHalfBits(dist(rng)) : FloatToBf16Bits(dist(rng));
      }
    }
  }
  void* data() { return type == GemmType::kFloat32 ? static_cast<void*>(f.data()) : bits.data(); }
  float at(int64_t i) const { return FromStorage(type, bits, f, i); }
};

struct Case {
  GemmOp ta, tb;
  int m, n, k, batch;
  int pad;  // extra rows in every leading dimension
  GemmType type, c_type;
  GemmEpilogue epilogue;
  float beta;
};

void RunCase(const Case& cs) {
  std::mt19937 rng(cs.m * 131 + cs.n * 7 + cs.k);
  GemmCall g;
  g.name = "test";
  g.trans_a = cs.ta;
  g.trans_b = cs.tb;
  g.m = cs.m;
  g.n = cs.n;
  g.k = cs.k;
  g.batch = cs.batch;
  const int64_t a_rows = cs.ta == GemmOp::kN ? cs.m : cs.k;
  const int64_t a_cols = cs.ta == GemmOp::kN ? cs.k : cs.m;
  const int64_t b_rows = cs.tb == GemmOp::kN ? cs.k : cs.n;
  const int64_t b_cols = cs.tb == GemmOp::kN ? cs.n : cs.k;
  g.lda = a_rows + cs.pad;
  g.ldb = b_rows + cs.pad;
  g.ldc = cs.m + cs.pad;
  g.stride_a = g.lda * a_cols + 3;  // gaps between batch matrices too
  g.stride_b = g.ldb * b_cols + 5;
  g.stride_c = g.ldc * cs.n + 1;
  g.a_type = g.b_type = cs.type;
  g.c_type = cs.c_type;
  g.alpha = 0.75f;
  g.beta = cs.beta;
  g.epilogue = cs.epilogue;
  Buffer a(cs.type, g.stride_a * cs.batch, rng);
  Buffer b(cs.type, g.stride_b * cs.batch, rng);
  Buffer c(cs.c_type, g.stride_c * cs.batch, rng);
  std::vector<float> bias(cs.m);
  std::uniform_real_distribution<float> dist(-0.5f, 0.5f);
  for (float& v : bias) v = dist(rng);
  if (cs.epilogue != GemmEpilogue::kNone) g.bias = bias.data();
  const Buffer before = c;
  g.a = a.data();
  g.b = b.data();
  g.c = c.data();
  ASSERT_TRUE(RunGemmOnCpu(g).ok()) << DescribeGemmCall(g);

  // fp16 output keeps 11 bits, bf16 8: the tolerance is the storage rounding of C.
  const double tol = cs.c_type == GemmType::kFloat32   ? 1e-4
                     : cs.c_type == GemmType::kFloat16 ? 4e-3
                                                       : 3e-2;
  for (int i = 0; i < cs.batch; ++i) {
    for (int col = 0; col < cs.n; ++col) {
      for (int r = 0; r < cs.m; ++r) {
        double acc = 0;
        for (int p = 0; p < cs.k; ++p) {
          const int64_t ai = cs.ta == GemmOp::kN ? r + p * g.lda : p + r * g.lda;
          const int64_t bi = cs.tb == GemmOp::kN ? p + col * g.ldb : col + p * g.ldb;
          acc += double{a.at(i * g.stride_a + ai)} * b.at(i * g.stride_b + bi);
        }
        const int64_t ci = i * g.stride_c + r + col * g.ldc;
        double want = 0.75 * acc;
        if (cs.beta != 0.0f) want += double{cs.beta} * before.at(ci);
        if (cs.epilogue != GemmEpilogue::kNone) want += bias[r];
        if (cs.epilogue == GemmEpilogue::kBiasGelu) want = Gelu(static_cast<float>(want));
        ASSERT_NEAR(c.at(ci), want, tol * (1 + std::fabs(want)))
            << DescribeGemmCall(g) << " batch " << i << " (" << r << ", " << col << ")";
      }
    }
    // Padding rows of C (beyond m) are untouched.
    for (int col = 0; col < cs.n; ++col) {
      for (int r = cs.m; r < g.ldc; ++r) {
        const int64_t ci = i * g.stride_c + r + col * g.ldc;
        ASSERT_EQ(c.at(ci), before.at(ci)) << "padding overwritten at " << r << ", " << col;
      }
    }
  }
}

TEST(GemmCallTest, CpuMirrorMatchesDefinition) {
  for (GemmOp ta : {GemmOp::kN, GemmOp::kT}) {
    for (GemmOp tb : {GemmOp::kN, GemmOp::kT}) {
      for (GemmType t : {GemmType::kFloat32, GemmType::kFloat16, GemmType::kBFloat16}) {
        SCOPED_TRACE(testing::Message() << int(ta) << int(tb) << int(t));
        RunCase({ta, tb, 7, 5, 9, 1, 0, t, t, GemmEpilogue::kNone, 0.0f});
        RunCase({ta, tb, 7, 5, 9, 3, 2, t, t, GemmEpilogue::kNone, 0.5f});
        RunCase({ta, tb, 6, 4, 3, 2, 1, t, GemmType::kFloat32, GemmEpilogue::kNone, 0.0f});
        RunCase({ta, tb, 13, 6, 8, 1, 3, t, t, GemmEpilogue::kBias, 0.0f});
        RunCase({ta, tb, 13, 6, 8, 1, 0, t, t, GemmEpilogue::kBiasGelu, 0.0f});
      }
    }
  }
}

TEST(GemmCallTest, ValidationNamesTheCall) {
  float x[64] = {};
  GemmCall g;
  g.name = "layer 2 attention.qk";
  g.m = 4;
  g.n = 4;
  g.k = 4;
  g.a = g.b = g.c = x;
  g.lda = g.ldb = g.ldc = 4;
  EXPECT_TRUE(ValidateGemmCall(g).ok());
  GemmCall bad = g;
  bad.lda = 3;
  absl::Status s = ValidateGemmCall(bad);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("layer 2 attention.qk"), std::string::npos) << s;
  EXPECT_NE(s.message().find("lda"), std::string::npos) << s;
  bad = g;
  bad.trans_a = GemmOp::kT;
  bad.k = 8;  // A stored k x m = 8 x 4 needs lda >= 8
  EXPECT_FALSE(ValidateGemmCall(bad).ok());
  bad = g;
  bad.ldc = 2;
  EXPECT_FALSE(ValidateGemmCall(bad).ok());
  bad = g;
  bad.epilogue = GemmEpilogue::kBias;  // no bias pointer
  EXPECT_FALSE(ValidateGemmCall(bad).ok());
  bad.bias = x;
  bad.batch = 2;  // epilogues are unbatched only
  EXPECT_FALSE(ValidateGemmCall(bad).ok());
  bad = g;
  bad.a_type = GemmType::kFloat16;  // A and B differ
  EXPECT_FALSE(ValidateGemmCall(bad).ok());
  bad = g;
  bad.a_type = bad.b_type = GemmType::kFloat16;
  bad.c_type = GemmType::kBFloat16;
  EXPECT_FALSE(ValidateGemmCall(bad).ok());
  EXPECT_FALSE(RunGemmOnCpu(bad).ok());  // the CPU executor validates too
}

}  // namespace
}  // namespace tipperary::kernels
