#include "tipperary/kernels/cublas_gemm.h"

#include <cstdint>
#include <memory>
#include <tuple>

#include "absl/strings/str_cat.h"

namespace tipperary::kernels {
namespace {

cudaDataType_t CudaType(GemmType t) {
  switch (t) {
    case GemmType::kFloat32:
      return CUDA_R_32F;
    case GemmType::kFloat16:
      return CUDA_R_16F;
    case GemmType::kBFloat16:
      return CUDA_R_16BF;
  }
  return CUDA_R_32F;
}

cublasOperation_t Op(GemmOp op) { return op == GemmOp::kT ? CUBLAS_OP_T : CUBLAS_OP_N; }

absl::Status Fail(const GemmCall& g, const char* what, cublasStatus_t st) {
  return absl::InternalError(
      absl::StrCat("GEMM ", DescribeGemmCall(g), ": ", what, ": ", cublasGetStatusString(st)));
}

struct LtDescDeleter {
  void operator()(cublasLtMatmulDescOpaque_t* d) const { cublasLtMatmulDescDestroy(d); }
};
struct LtLayoutDeleter {
  void operator()(cublasLtMatrixLayoutOpaque_t* l) const { cublasLtMatrixLayoutDestroy(l); }
};
struct LtPrefDeleter {
  void operator()(cublasLtMatmulPreferenceOpaque_t* p) const { cublasLtMatmulPreferenceDestroy(p); }
};

// The epilogue path: D = C = epilogue(alpha * op(A) op(B) + beta * C) in one cuBLASLt call.
absl::Status RunLt(const CublasContext& ctx, const GemmCall& g) {
  if (ctx.lt == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("GEMM ", DescribeGemmCall(g), ": an epilogue needs a cuBLASLt handle"));
  }
  cublasLtMatmulDesc_t raw_desc = nullptr;
  if (auto st = cublasLtMatmulDescCreate(&raw_desc, CUBLAS_COMPUTE_32F, CUDA_R_32F);
      st != CUBLAS_STATUS_SUCCESS) {
    return Fail(g, "cublasLtMatmulDescCreate", st);
  }
  std::unique_ptr<cublasLtMatmulDescOpaque_t, LtDescDeleter> desc(raw_desc);
  const cublasOperation_t ta = Op(g.trans_a);
  const cublasOperation_t tb = Op(g.trans_b);
  const cublasLtEpilogue_t epi =
      g.epilogue == GemmEpilogue::kBiasGelu ? CUBLASLT_EPILOGUE_GELU_BIAS : CUBLASLT_EPILOGUE_BIAS;
  const int32_t bias_type = static_cast<int32_t>(CudaType(g.bias_type));
  const void* bias = g.bias;
  for (auto [attr, value, size] :
       {std::tuple{CUBLASLT_MATMUL_DESC_TRANSA, static_cast<const void*>(&ta), sizeof ta},
        std::tuple{CUBLASLT_MATMUL_DESC_TRANSB, static_cast<const void*>(&tb), sizeof tb},
        std::tuple{CUBLASLT_MATMUL_DESC_EPILOGUE, static_cast<const void*>(&epi), sizeof epi},
        std::tuple{CUBLASLT_MATMUL_DESC_BIAS_POINTER, static_cast<const void*>(&bias), sizeof bias},
        std::tuple{CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, static_cast<const void*>(&bias_type),
                   sizeof bias_type}}) {
    if (auto st = cublasLtMatmulDescSetAttribute(desc.get(), attr, value, size);
        st != CUBLAS_STATUS_SUCCESS) {
      return Fail(g, "cublasLtMatmulDescSetAttribute", st);
    }
  }
  const uint64_t a_rows = g.trans_a == GemmOp::kN ? g.m : g.k;
  const uint64_t a_cols = g.trans_a == GemmOp::kN ? g.k : g.m;
  const uint64_t b_rows = g.trans_b == GemmOp::kN ? g.k : g.n;
  const uint64_t b_cols = g.trans_b == GemmOp::kN ? g.n : g.k;
  cublasLtMatrixLayout_t raw[3] = {nullptr, nullptr, nullptr};
  const struct {
    GemmType type;
    uint64_t rows, cols;
    int64_t ld;
  } shapes[3] = {{g.a_type, a_rows, a_cols, g.lda},
                 {g.b_type, b_rows, b_cols, g.ldb},
                 {g.c_type, static_cast<uint64_t>(g.m), static_cast<uint64_t>(g.n), g.ldc}};
  std::unique_ptr<cublasLtMatrixLayoutOpaque_t, LtLayoutDeleter> layouts[3];
  for (int i = 0; i < 3; ++i) {
    if (auto st = cublasLtMatrixLayoutCreate(&raw[i], CudaType(shapes[i].type), shapes[i].rows,
                                             shapes[i].cols, shapes[i].ld);
        st != CUBLAS_STATUS_SUCCESS) {
      return Fail(g, "cublasLtMatrixLayoutCreate", st);
    }
    layouts[i].reset(raw[i]);
  }
  cublasLtMatmulPreference_t raw_pref = nullptr;
  if (auto st = cublasLtMatmulPreferenceCreate(&raw_pref); st != CUBLAS_STATUS_SUCCESS) {
    return Fail(g, "cublasLtMatmulPreferenceCreate", st);
  }
  std::unique_ptr<cublasLtMatmulPreferenceOpaque_t, LtPrefDeleter> pref(raw_pref);
  const size_t ws = ctx.workspace_bytes;
  if (auto st = cublasLtMatmulPreferenceSetAttribute(
          pref.get(), CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
      st != CUBLAS_STATUS_SUCCESS) {
    return Fail(g, "cublasLtMatmulPreferenceSetAttribute", st);
  }
  cublasLtMatmulHeuristicResult_t heuristic{};
  int found = 0;
  if (auto st = cublasLtMatmulAlgoGetHeuristic(ctx.lt, desc.get(), layouts[0].get(),
                                               layouts[1].get(), layouts[2].get(), layouts[2].get(),
                                               pref.get(), 1, &heuristic, &found);
      st != CUBLAS_STATUS_SUCCESS || found == 0) {
    return Fail(g, "no cuBLASLt algorithm for this epilogue and these types",
                st != CUBLAS_STATUS_SUCCESS ? st : CUBLAS_STATUS_NOT_SUPPORTED);
  }
  if (auto st = cublasLtMatmul(ctx.lt, desc.get(), &g.alpha, g.a, layouts[0].get(), g.b,
                               layouts[1].get(), &g.beta, g.c, layouts[2].get(), g.c,
                               layouts[2].get(), &heuristic.algo, ctx.workspace, ws, ctx.stream);
      st != CUBLAS_STATUS_SUCCESS) {
    return Fail(g, "cublasLtMatmul", st);
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status RunGemmOnCublas(const CublasContext& ctx, const GemmCall& g) {
  if (absl::Status s = ValidateGemmCall(g); !s.ok()) return s;
  if (g.m == 0 || g.n == 0) return absl::OkStatus();
  if (g.epilogue != GemmEpilogue::kNone) return RunLt(ctx, g);
  cublasStatus_t st;
  if (g.batch == 1) {
    st = cublasGemmEx(ctx.handle, Op(g.trans_a), Op(g.trans_b), g.m, g.n, g.k, &g.alpha, g.a,
                      CudaType(g.a_type), static_cast<int>(g.lda), g.b, CudaType(g.b_type),
                      static_cast<int>(g.ldb), &g.beta, g.c, CudaType(g.c_type),
                      static_cast<int>(g.ldc), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    if (st != CUBLAS_STATUS_SUCCESS) return Fail(g, "cublasGemmEx", st);
  } else {
    st = cublasGemmStridedBatchedEx(
        ctx.handle, Op(g.trans_a), Op(g.trans_b), g.m, g.n, g.k, &g.alpha, g.a, CudaType(g.a_type),
        static_cast<int>(g.lda), static_cast<long long>(g.stride_a), g.b, CudaType(g.b_type),
        static_cast<int>(g.ldb), static_cast<long long>(g.stride_b), &g.beta, g.c,
        CudaType(g.c_type), static_cast<int>(g.ldc), static_cast<long long>(g.stride_c), g.batch,
        CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    if (st != CUBLAS_STATUS_SUCCESS) return Fail(g, "cublasGemmStridedBatchedEx", st);
  }
  return absl::OkStatus();
}

}  // namespace tipperary::kernels
