// The CUDA backend of the sentence encoder: a BERT-family model on one GPU in fp16 or bf16.
//
// Weights arrive as float32 host arrays (`BertWeightsHost`, filled by whoever loaded the model)
// and are converted and uploaded once. Every device buffer is allocated at creation, sized by
// the options, so Encode never allocates device memory; requests larger than those limits are
// split into several forward passes. Each instance owns a CUDA stream, a cuBLAS handle and
// pinned staging buffers. GEMMs run on tensor cores (cublasGemmEx, fp16/bf16 inputs, fp32
// accumulation); attention is QK^T and PV as cuBLAS strided-batched GEMMs around a masked
// softmax kernel.
//
//   if (tipperary::kernels::CudaDeviceAvailable()) {
//     BertWeightsHost w = ...;  // pointers into the loaded model
//     auto enc = tipperary::kernels::CreateCudaEncoder({.device = 0, .dtype = "float16"}, w);
//     std::vector<float> out;
//     absl::Status s = (*enc)->Encode({{101, 7592, 102}}, &out);  // 1 x hidden, mean-pooled
//   }
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "tipperary/kernels/gemm_call.h"
#include "tipperary/model/encoder.h"

namespace tipperary::kernels {

// One transformer layer; matrices in PyTorch Linear layout [out, in], row-major, float32.
struct BertLayerWeightsHost {
  const float* query_w = nullptr;  // [hidden, hidden]
  const float* query_b = nullptr;  // [hidden]
  const float* key_w = nullptr;
  const float* key_b = nullptr;
  const float* value_w = nullptr;
  const float* value_b = nullptr;
  const float* attn_out_w = nullptr;  // [hidden, hidden]
  const float* attn_out_b = nullptr;
  const float* attn_ln_gamma = nullptr;  // [hidden]
  const float* attn_ln_beta = nullptr;
  const float* ffn_in_w = nullptr;   // [intermediate, hidden]
  const float* ffn_in_b = nullptr;   // [intermediate]
  const float* ffn_out_w = nullptr;  // [hidden, intermediate]
  const float* ffn_out_b = nullptr;  // [hidden]
  const float* ffn_ln_gamma = nullptr;
  const float* ffn_ln_beta = nullptr;
};

// A BERT encoder's weights and shape. The pointers are only read during CreateCudaEncoder.
struct BertWeightsHost {
  int layers = 0;
  int hidden = 0;
  int heads = 0;
  int intermediate = 0;
  int vocab = 0;
  int max_position = 0;
  int type_vocab = 0;
  float ln_eps = 1e-12f;
  bool cls_pooling = false;         // false: mean over the real tokens
  const float* word_emb = nullptr;  // [vocab, hidden]
  const float* pos_emb = nullptr;   // [max_position, hidden]
  const float* type_emb = nullptr;  // [type_vocab, hidden]; token type 0 is used
  const float* emb_ln_gamma = nullptr;
  const float* emb_ln_beta = nullptr;
  std::vector<BertLayerWeightsHost> layer;  // size == layers
};

struct CudaEncoderOptions {
  int device = 0;
  std::string dtype = "float16";  // or "bfloat16"
  // Limits of ONE forward pass; they size every device buffer. Sequences are padded to the
  // longest in the pass, rounded up to a multiple of 8; batch x padded length must fit in
  // max_batch_tokens. Bigger requests are split.
  int max_batch_size = 256;
  int max_batch_tokens = 32768;
  int max_seq_len = 512;  // capped by the model's max_position
  // fp32 attention scores of as many sequences as fit are computed at once.
  int64_t attention_workspace_bytes = int64_t{256} << 20;
  bool normalize = false;  // L2-normalise on the device (the Encoder contract says: do not)
  // "reference": padded batches, attention through cuBLAS and a materialised score matrix (the
  // simple path the fused one is checked against). "fused": packed sequences without padding,
  // flash-style varlen attention read from the fused QKV output, warp-per-row LayerNorm with
  // bias and residual fused, vectorised bias+GELU (fused_forward_pass.h); needs hidden % 8 == 0,
  // hidden <= 1024, head_dim 32 or 64; CUDA Graphs (use_graphs) per (texts, tokens, tiles). The
  // GPU check benches each variant of the same build side by side; an unknown name is refused by
  // CreateCudaEncoder with kInvalidArgument ("unknown variant"). "auto": fused where the model's
  // shape allows it, else reference (ResolveCudaVariant).
  std::string variant = "reference";
  // Debug mode: synchronise and check for a CUDA error after every stage of the forward pass, so
  // that a fault names its kernel/GEMM and layer ("attention.pv in layer 3: ..."). Slow. Also
  // switched on by the environment variable TIPPERARY_CUDA_DEBUG=1.
  bool debug_sync = false;
  // CUDA Graphs: the forward pass of each shape (reference: batch, padded length; fused: texts,
  // packed tokens, attention tiles) is captured once and replayed (one launch instead of ~50-70),
  // up to max_graphs shapes; other shapes run eagerly.
  // Off: every pass is issued kernel by kernel (the reference path).
  bool use_graphs = false;
  int max_graphs = 64;
  // Stage ablation, for gpu_encoder_bench --ablate only: "" (normal) or "stage=scale,..." with
  // scale 0 (skip the stage) or 2 (issue it twice), stages as stage_ablation.h names them
  // (attention, ffn_gemms, ...). The embeddings are then GARBAGE; never set by the worker.
  std::string ablate;
};

// "fused" or "reference": `variant` itself, or for "auto" fused when FusedShapeSupported says the
// model's shape fits the fused kernels (MiniLM, BERT-base/large) and reference otherwise.
std::string ResolveCudaVariant(const std::string& variant, const BertWeightsHost& weights);

// Checks the options and the weights (dimensions, pointers, dtype); the storage type on success.
// No device needed.
absl::StatusOr<GemmType> ValidateCudaEncoderInputs(const CudaEncoderOptions& options,
                                                   const BertWeightsHost& weights);

// Loads the weights onto the GPU. Fails (never crashes) when no usable device exists, the
// options are invalid or device memory runs out.
absl::StatusOr<std::unique_ptr<model::Encoder>> CreateCudaEncoder(const CudaEncoderOptions& options,
                                                                  const BertWeightsHost& weights);

// Whether a cudaError_t (as int) is sticky: the context is corrupted (illegal address, launch
// failure, device assert, ECC, ...), every later CUDA call of the process fails, and only a new
// process recovers. Recoverable ones (out of memory, invalid value, launch out of resources) are
// not. CudaEncoder turns a sticky error into model::EncoderUnusableError.
bool IsStickyCudaError(int cuda_error);

// OK when the CUDA runtime sees at least one device; otherwise why not, for the logs: no device,
// a driver older than this runtime (with both versions), or the runtime's error.
absl::Status CudaDeviceStatus();

// True when the CUDA runtime sees at least one device; false (not a crash) when the driver is
// missing or too old.
bool CudaDeviceAvailable();

// "NVIDIA H200 (sm_90, 139.8 GiB)" or an error when the device cannot be queried.
absl::StatusOr<std::string> CudaDeviceDescription(int device);

// Utilisation and memory of a CUDA device from NVML, which is dlopen'ed (it ships with the
// driver, not the toolkit). Unavailable when NVML cannot be loaded or initialised.
struct GpuStats {
  double utilization_ratio = 0;  // 0..1, GPU busy over NVML's last sample period
  uint64_t memory_used_bytes = 0;
  uint64_t memory_total_bytes = 0;
};
absl::StatusOr<GpuStats> QueryGpuStats(int device);

}  // namespace tipperary::kernels
