// The forward pass's dense layers as GemmCalls (gemm_call.h): y[rows, out] = x[rows, in] * w^T
// with w in PyTorch Linear layout [out, in], all row-major. cuBLAS is column-major, so this is
// y^T = w * x^T with w read transposed: m = out, n = rows, k = in. The fused variant issues its
// four GEMMs per layer through this, on cuBLAS (RunGemmOnCublas) and, in the CPU tests, on
// OpenBLAS (RunGemmOnCpu) with the very same call.
//
//   GemmCall g = LinearGemmCall("layer.qkv", x, qkv_w, tokens, 384, 1152, qkv, GemmType::kFloat16);
#pragma once

#include "tipperary/kernels/gemm_call.h"

namespace tipperary::kernels {

inline GemmCall LinearGemmCall(const char* name, const void* x, const void* w, int rows, int in,
                               int out, void* y, GemmType type) {
  GemmCall g;
  g.name = name;
  g.trans_a = GemmOp::kT;
  g.trans_b = GemmOp::kN;
  g.m = out;
  g.n = rows;
  g.k = in;
  g.a = w;
  g.lda = in;
  g.a_type = type;
  g.b = x;
  g.ldb = in;
  g.b_type = type;
  g.c = y;
  g.ldc = out;
  g.c_type = type;
  return g;
}

}  // namespace tipperary::kernels
