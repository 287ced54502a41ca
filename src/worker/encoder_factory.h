// Builds a model's encoders on the backend its config asks for: CPU (float32) always; CUDA
// (float16/bfloat16) when its library (libtipperary-cuda.so, loaded at run time) loads and a device
// is usable. backend "auto" picks CUDA when it can, else CPU.
//
//   absl::StatusOr<std::unique_ptr<model::Encoder>> enc =
//       CreateEncoder(bundle, model_cfg, batching, /*max_seq_length=*/256, /*threads=*/4);
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "tipperary/config/worker_config.h"
#include "tipperary/model/cpu_encoder.h"
#include "tipperary/model/encoder.h"
#include "tipperary/model/model_bundle.h"

namespace tipperary::worker {

// "cpu" or "cuda": what `backend` (auto, cpu, cuda) resolves to on this machine; an error
// for "cuda" when it is not available.
absl::StatusOr<std::string> ResolveBackend(const std::string& backend);

// `threads` and `idle_priority` (model::CpuEncoderOptions) are for the CPU backend (0 threads =
// all cores). `cpu_weights`, when given, is shared by the CPU encoders of one model: loaded by
// the first call that finds it empty, reused by the next (a model's instances hold one copy).
absl::StatusOr<std::unique_ptr<model::Encoder>> CreateEncoder(
    std::shared_ptr<const model::ModelBundle> bundle, const std::string& backend,
    const config::WorkerModelConfig& config, const config::WorkerBatchingConfig& batching,
    int max_seq_length, int threads, bool idle_priority = false,
    std::shared_ptr<const model::CpuEncoderWeights>* cpu_weights = nullptr);

}  // namespace tipperary::worker
