// One cuBLAS(Lt) GEMM described as plain data, so that the code which lays out a forward pass
// can hand the very same calls to the GPU (cublasGemmEx / cublasGemmStridedBatchedEx /
// cublasLtMatmul) or to the CPU mirror (OpenBLAS sgemm on host arrays), and a unit test can
// prove the layouts, transposes, leading dimensions and strides without a device.
//
// Semantics are cuBLAS's, column-major: for each batch index i in [0, batch),
//   C_i = alpha * op(A_i) * op(B_i) + beta * C_i,   then the epilogue,
// with op(A_i) m x k, op(B_i) k x n, C_i m x n; X_i = X + i * stride_x (in elements of X's
// type); element (r, c) of a matrix X with leading dimension ld lives at X[r + c * ld]. The bias
// has m entries, one per row of C: in the usual "y[tokens, out] = x * w^T" call (m = out
// features, n = tokens) that is the per-feature bias. Compute is fp32 whatever the storage types.
//
//   GemmCall g;
//   g.name = "layer.ffn_in";
//   g.trans_a = GemmOp::kT;  // w [out, in] row-major == column-major [in, out]
//   g.m = out; g.n = tokens; g.k = in;
//   g.a = w; g.lda = in; g.b = x; g.ldb = in; g.c = y; g.ldc = out;
//   g.a_type = g.b_type = g.c_type = GemmType::kFloat16;
//   g.epilogue = GemmEpilogue::kBiasGelu; g.bias = b;  // fp32 [out]
//   absl::Status s = RunGemmOnCpu(g);  // host pointers; or RunGemmOnCublas (cublas_gemm.h)
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"

namespace tipperary::kernels {

enum class GemmOp { kN, kT };

// Storage type of a matrix or of the bias. On the CPU a 16-bit type is stored as its bits
// (uint16_t, as math.h's FloatToHalfBits/FloatToBf16Bits write them), so host buffers keep the
// device's byte layout (element sizes included).
enum class GemmType { kFloat32, kFloat16, kBFloat16 };

enum class GemmEpilogue {
  kNone,
  kBias,      // C += bias (per row of C)
  kBiasGelu,  // C = Gelu(C + bias), erf GELU as math.h's Gelu
};

struct GemmCall {
  // For errors and the debug mode: "layer 3 attention.qk" etc. Not owned; a string literal.
  const char* name = "";
  GemmOp trans_a = GemmOp::kN;
  GemmOp trans_b = GemmOp::kN;
  int m = 0;
  int n = 0;
  int k = 0;
  const void* a = nullptr;
  int64_t lda = 0;
  int64_t stride_a = 0;  // elements between batch matrices (batch > 1 only)
  GemmType a_type = GemmType::kFloat32;
  const void* b = nullptr;
  int64_t ldb = 0;
  int64_t stride_b = 0;
  GemmType b_type = GemmType::kFloat32;
  void* c = nullptr;
  int64_t ldc = 0;
  int64_t stride_c = 0;
  GemmType c_type = GemmType::kFloat32;
  int batch = 1;  // > 1: strided-batched
  float alpha = 1.0f;
  float beta = 0.0f;
  GemmEpilogue epilogue = GemmEpilogue::kNone;
  const void* bias = nullptr;  // [m], for kBias / kBiasGelu
  GemmType bias_type = GemmType::kFloat32;
};

// Checks shapes and leading dimensions the way cuBLAS does (lda >= rows of A as stored, etc.),
// plus what this project requires: A and B of the same type, a bias exactly when the epilogue
// needs one, no epilogue on a batched call. The error names the call.
absl::Status ValidateGemmCall(const GemmCall& call);

// Runs the call on the CPU: host pointers, 16-bit types as bits. Inputs are widened to fp32, the
// product runs on OpenBLAS cblas_sgemm (one call per batch entry), and C is rounded back to its
// storage type after the epilogue, as the GPU writes it once per element. Validates first.
// Defined in the CPU mirror library (tipperary::kernels_cpu_mirror), which links OpenBLAS; the
// GPU library does not.
absl::Status RunGemmOnCpu(const GemmCall& call);

// "layer.ffn_in: T N m=1536 n=40 k=384 lda=384 ldb=384 ldc=1536 f16,f16->f16 bias_gelu".
std::string DescribeGemmCall(const GemmCall& call);

// Element sizes in bytes (4 or 2).
int GemmTypeSize(GemmType type);

}  // namespace tipperary::kernels
