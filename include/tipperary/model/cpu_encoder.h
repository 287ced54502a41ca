// The CPU backend of Encoder: a BERT forward pass whose dense-layer GEMMs run on OpenBLAS sgemm
// (fp32) or on oneDNN's Intel AMX matmul (bf16 inputs, fp32 accumulation; options.dtype), plus
// hand-written fp32 element-wise loops and attention (bf16 on AMX tiles for bfloat16),
// parallelised over a fixed team of threads.
// Batches of fewer than 96 tokens run on the calling thread alone: waking the team and meeting at
// its barriers costs more than the second thread saves there.
//
// Sequences are packed back to back (no padding: dense layers see only real tokens, attention
// runs per sequence over its own tokens), so a batch costs what its real tokens cost.
// Weights are converted to fp32 and repacked (fused QKV; for bfloat16 also rounded and reordered
// into oneDNN's layout, so no call repacks them) at creation; scratch buffers grow to the
// largest batch seen and are reused, so steady-state calls do not allocate (beyond what oneDNN
// does inside a bfloat16 GEMM call).
//
//   auto bundle = LoadModel(dir);
//   absl::StatusOr<std::unique_ptr<Encoder>> enc = CreateCpuEncoder(*bundle, {.threads = 2});
//   std::vector<float> out;
//   absl::Status s = (*enc)->Encode({{101, 7592, 102}}, &out);  // 1 x 384, mean-pooled
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "tipperary/model/encoder.h"
#include "tipperary/model/model_bundle.h"

namespace tipperary::model {

struct CpuEncoderOptions {
  // Threads used by one Encode call (the caller's thread included); 0 = all online cores.
  // OpenBLAS's own threading is switched off (process-wide) so that exactly these run.
  int threads = 0;
  // "float32": everything in fp32, GEMMs on OpenBLAS sgemm. "bfloat16": the dense layers' GEMMs
  // on Intel AMX (oneDNN matmul) with bf16 inputs and fp32 accumulation (weights rounded to bf16
  // once, at load), and attention on AMX tiles (bf16 Q, K, V and probabilities, fp32 scores,
  // softmax and accumulation); LayerNorm, GELU and pooling stay fp32. Fails without AMX.
  // "int8": those GEMMs in int8 (oneDNN, AMX-INT8 or AVX-512 VNNI) with weights quantized at
  // load per output channel and activations per row, s32 accumulation, fp32 out (see
  // src/model/onednn_int8_gemm.h); the rest as for float32. Fails without AMX-INT8/VNNI.
  std::string dtype = "float32";
  // Compute in threads of the encoder's own at SCHED_IDLE (Linux), the calling thread only
  // waiting: any other thread of the machine that wants a core (another encoder kept for
  // interactive batches, the server's I/O threads) preempts them at once. For encoders that run
  // bulk work beside latency-bound work on the same cores. Ignored where the OS refuses it
  // (the encoder then computes at normal priority; idle_priority() on the encoder says which).
  bool idle_priority = false;
};

// Fails when OpenBLAS (libopenblas0) cannot be loaded, or the bundle's tensors cannot be read.
absl::StatusOr<std::unique_ptr<Encoder>> CreateCpuEncoder(std::shared_ptr<const ModelBundle> bundle,
                                                          const CpuEncoderOptions& options = {});

// A model's weights as the CPU encoder computes with them (fp32, fused QKV; for bfloat16 and
// int8 also packed for oneDNN), for `dtype` (CpuEncoderOptions::dtype). Read-only once made:
// every encoder created from the same weights shares them, each with its own threads and scratch,
// so a model's second instance does not hold a second copy (~68 MiB for the default model).
//
//   auto weights = LoadCpuEncoderWeights(bundle, "bfloat16");
//   auto kept = CreateCpuEncoder(*weights, {.threads = 2, .dtype = "bfloat16"});
//   auto bulk = CreateCpuEncoder(*weights, {.threads = 2, .dtype = "bfloat16",
//                                           .idle_priority = true});
struct CpuEncoderWeights;
absl::StatusOr<std::shared_ptr<const CpuEncoderWeights>> LoadCpuEncoderWeights(
    std::shared_ptr<const ModelBundle> bundle, const std::string& dtype);
// options.dtype is ignored: the weights' dtype is the encoder's.
absl::StatusOr<std::unique_ptr<Encoder>> CreateCpuEncoder(
    std::shared_ptr<const CpuEncoderWeights> weights, const CpuEncoderOptions& options);

// Whether dtype "bfloat16" is available: oneDNN runs a bf16 matmul on AMX here (the CPU has
// AMX-BF16 and the kernel grants it).
bool CpuEncoderSupportsBfloat16();

// Whether dtype "int8" is available: oneDNN runs an s8 matmul on AMX-INT8 or AVX-512 VNNI here.
bool CpuEncoderSupportsInt8();

// What runs the GEMMs, for logs: "OpenBLAS Cooperlake". OpenBLAS is loaded at run time (not
// linked) so that its kernels can be chosen from the CPU's features: 0.3.21 falls back to SSE3
// kernels on CPUs newer than it knows. An OPENBLAS_CORETYPE set by the user is respected.
std::string CpuEncoderKernelInfo();

}  // namespace tipperary::model
