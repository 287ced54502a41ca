// The CPU mirror of the CUDA encoder: the GPU encoder's forward pass (forward_pass.h), its
// weight conversion, spans and buffer layout, run on host arrays. GEMMs go through RunGemmOnCpu
// (OpenBLAS) with the very GemmCall descriptions the GPU hands to cuBLAS; the element-wise stages
// are host loops over math.h with the kernels' index arithmetic, on 16-bit storage. Slow; for
// tests: it proves the layout logic and estimates the fp16/bf16 rounding error without a device.
// Lives in tipperary::kernels_cpu_mirror (OpenBLAS linked), never in the GPU library.
//
//   auto enc = CreateCpuMirrorEncoder({.dtype = "float16"}, weights);  // same options as CUDA
//   std::vector<float> out;
//   absl::Status s = (*enc)->Encode({{101, 7592, 102}}, &out);
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "tipperary/kernels/cuda_encoder.h"
#include "tipperary/kernels/forward_pass.h"
#include "tipperary/model/encoder.h"

namespace tipperary::kernels {

// ForwardOps on host memory (16-bit types as bits). Every GEMM goes through RunGemmOnCpu; the
// optional hook sees each call first (a test may record or alter them).
class CpuMirrorOps : public ForwardOps {
 public:
  absl::Status Gemm(const GemmCall& call) override;
  absl::Status EmbeddingLayerNorm(GemmType dtype, const int32_t* ids, int tokens, int seq,
                                  const void* word_emb, const void* pos_emb, const void* type_emb,
                                  const float* gamma, const float* beta, int hidden, float eps,
                                  void* out) override;
  absl::Status SplitQkvBias(GemmType dtype, const void* qkv, const float* bias, int batch, int seq,
                            int heads, int head_dim, void* q, void* k, void* v) override;
  absl::Status MaskedSoftmax(GemmType dtype, float* scores, const int32_t* lengths, int batch,
                             int heads, int seq, float scale) override;
  absl::Status MergeHeads(GemmType dtype, const void* ctx, int batch, int seq, int heads,
                          int head_dim, void* out) override;
  absl::Status BiasGelu(GemmType dtype, void* x, const float* bias, int rows, int cols) override;
  absl::Status BiasResidualLayerNorm(GemmType dtype, const void* x, const float* bias,
                                     const void* residual, const float* gamma, const float* beta,
                                     int rows, int hidden, float eps, void* out) override;
  absl::Status MaskedMeanPool(GemmType dtype, const void* hidden_states, const int32_t* lengths,
                              int batch, int seq, int hidden, bool cls, bool normalize,
                              float* out) override;
};

// The encoder above as a model::Encoder (backend_name "cuda-cpu-mirror"). `ops` replaces the
// default CpuMirrorOps (tests); it must outlive the encoder.
absl::StatusOr<std::unique_ptr<model::Encoder>> CreateCpuMirrorEncoder(
    const CudaEncoderOptions& options, const BertWeightsHost& weights, ForwardOps* ops = nullptr);

}  // namespace tipperary::kernels
