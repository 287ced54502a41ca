// Runs a GemmCall (gemm_call.h) on the GPU: cublasGemmEx, cublasGemmStridedBatchedEx, or
// cublasLtMatmul when the call has a bias / bias+GELU epilogue. Only enqueues on the context's
// stream. Part of tipperary::kernels (CUDA builds only).
//
//   CublasContext ctx{handle, lt_handle, stream, workspace, workspace_bytes};
//   absl::Status s = RunGemmOnCublas(ctx, call);  // device pointers
#pragma once

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <cstddef>

#include "absl/status/status.h"
#include "tipperary/kernels/gemm_call.h"

namespace tipperary::kernels {

struct CublasContext {
  cublasHandle_t handle = nullptr;  // bound to `stream` (cublasSetStream) by the owner
  cublasLtHandle_t lt = nullptr;    // for epilogue calls; may be null if none are issued
  cudaStream_t stream = nullptr;    // cuBLASLt calls take it explicitly
  void* workspace = nullptr;        // device memory for cuBLASLt (may be null)
  size_t workspace_bytes = 0;
};

// Validates (ValidateGemmCall), then enqueues. The error names the call and the cuBLAS status.
absl::Status RunGemmOnCublas(const CublasContext& context, const GemmCall& call);

}  // namespace tipperary::kernels
