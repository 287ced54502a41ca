// Loads the CUDA backend (libtipperary-cuda.so, include/tipperary/kernels/cuda_backend.h) the
// first time something asks for it, once per process, and keeps it loaded: encoders made by it
// live until exit. A worker whose models all say `backend: cpu` never asks, so it never maps
// the CUDA runtime or cuBLAS.
//
//   absl::StatusOr<const kernels::CudaBackendApi*> cuda = LoadCudaBackend();
//   if (cuda.ok() && (*cuda)->device_status().ok()) { ... (*cuda)->create_encoder(...) ... }
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "tipperary/kernels/cuda_backend.h"

namespace tipperary::worker {

// The backend's entry points, or why there are none: this worker was built without CUDA, the
// library is not where it is looked for, or it does not load (a CUDA library it needs is
// missing: dlerror's text) or is from another build. Thread-safe; the answer never changes.
absl::StatusOr<const kernels::CudaBackendApi*> LoadCudaBackend();

// Where the library is looked for, in order: `override_path` alone when not empty (the
// environment variable TIPPERARY_CUDA_BACKEND), else beside the executable, then in
// ../lib/tipperary (the installed layout: bin/ and lib/tipperary/).
std::vector<std::string> CudaBackendCandidates(const std::string& executable_dir,
                                               const std::string& override_path);

// Loads the library at `path` and checks its interface. Tests load a given file with it.
absl::StatusOr<const kernels::CudaBackendApi*> LoadCudaBackendFrom(const std::string& path);

}  // namespace tipperary::worker
