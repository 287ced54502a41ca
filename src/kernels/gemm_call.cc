#include "tipperary/kernels/gemm_call.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace tipperary::kernels {
namespace {

const char* TypeName(GemmType t) {
  switch (t) {
    case GemmType::kFloat32:
      return "f32";
    case GemmType::kFloat16:
      return "f16";
    case GemmType::kBFloat16:
      return "bf16";
  }
  return "?";
}

const char* EpilogueName(GemmEpilogue e) {
  switch (e) {
    case GemmEpilogue::kNone:
      return "";
    case GemmEpilogue::kBias:
      return " bias";
    case GemmEpilogue::kBiasGelu:
      return " bias_gelu";
  }
  return " ?";
}

}  // namespace

int GemmTypeSize(GemmType type) { return type == GemmType::kFloat32 ? 4 : 2; }

std::string DescribeGemmCall(const GemmCall& g) {
  std::string s =
      absl::StrCat(g.name != nullptr ? g.name : "", ": ", g.trans_a == GemmOp::kT ? "T" : "N", " ",
                   g.trans_b == GemmOp::kT ? "T" : "N", " m=", g.m, " n=", g.n, " k=", g.k,
                   " lda=", g.lda, " ldb=", g.ldb, " ldc=", g.ldc);
  if (g.batch != 1) {
    absl::StrAppend(&s, " batch=", g.batch, " strides=", g.stride_a, ",", g.stride_b, ",",
                    g.stride_c);
  }
  absl::StrAppend(&s, " ", TypeName(g.a_type), ",", TypeName(g.b_type), "->", TypeName(g.c_type),
                  EpilogueName(g.epilogue));
  return s;
}

absl::Status ValidateGemmCall(const GemmCall& g) {
  auto fail = [&](const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat("GEMM ", DescribeGemmCall(g), ": ", why));
  };
  if (g.m < 0 || g.n < 0 || g.k < 0) return fail("negative dimension");
  if (g.batch < 1) return fail("batch must be >= 1");
  const int64_t a_rows = g.trans_a == GemmOp::kN ? g.m : g.k;
  const int64_t b_rows = g.trans_b == GemmOp::kN ? g.k : g.n;
  if (g.lda < std::max<int64_t>(1, a_rows)) return fail("lda < rows of A as stored");
  if (g.ldb < std::max<int64_t>(1, b_rows)) return fail("ldb < rows of B as stored");
  if (g.ldc < std::max<int64_t>(1, g.m)) return fail("ldc < m");
  if (g.stride_a < 0 || g.stride_b < 0 || g.stride_c < 0) return fail("negative stride");
  if (g.a_type != g.b_type) return fail("A and B must have the same type");
  if (g.c_type != GemmType::kFloat32 && g.c_type != g.a_type) {
    return fail("C must be fp32 or A's type");
  }
  const bool wants_bias = g.epilogue != GemmEpilogue::kNone;
  if (wants_bias != (g.bias != nullptr)) {
    return fail(wants_bias ? "the epilogue needs a bias" : "a bias without an epilogue");
  }
  if (wants_bias && g.batch != 1) return fail("epilogues are for unbatched calls only");
  if (g.m > 0 && g.n > 0 && (g.c == nullptr || (g.k > 0 && (g.a == nullptr || g.b == nullptr)))) {
    return fail("null matrix");
  }
  return absl::OkStatus();
}

}  // namespace tipperary::kernels
