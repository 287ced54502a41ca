// The CPU backend of Encoder: an fp32 BERT forward pass on OpenBLAS sgemm plus hand-written
// element-wise loops, parallelised over a fixed team of threads.
//
// Sequences are packed back to back (no padding: dense layers see only real tokens, attention
// runs per sequence over its own tokens), so a batch costs what its real tokens cost.
// Weights are converted to fp32 and repacked (fused QKV) at creation; scratch buffers grow to the
// largest batch seen and are reused, so steady-state calls do not allocate.
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
};

// Fails when OpenBLAS (libopenblas0) cannot be loaded, or the bundle's tensors cannot be read.
absl::StatusOr<std::unique_ptr<Encoder>> CreateCpuEncoder(std::shared_ptr<const ModelBundle> bundle,
                                                          CpuEncoderOptions options = {});

// What runs the GEMMs, for logs: "OpenBLAS Cooperlake". OpenBLAS is loaded at run time (not
// linked) so that its kernels can be chosen from the CPU's features: 0.3.21 falls back to SSE3
// kernels on CPUs newer than it knows. An OPENBLAS_CORETYPE set by the user is respected.
std::string CpuEncoderKernelInfo();

}  // namespace tipperary::model
