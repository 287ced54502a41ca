// The CUDA backend as a library loaded at run time: libtipperary-cuda.so exports one C function
// that hands out the backend's entry points, and the worker dlopen()s it only when a model may
// run on a GPU (backend `auto` or `cuda`). Why not link it: the CUDA runtime and cuBLAS cost a
// process ~150 MiB of RSS the moment they are mapped (libcublasLt alone: ~90 MiB of private,
// relocated data), whether or not it ever computes on a GPU; a worker on the CPU backend paid
// that for nothing, and a CPU-only machine needed the CUDA libraries installed to start at all.
// Triton loads its backends the same way.
//
// The library is built from the same tree as the worker, with the same compiler and the same
// shared Abseil, so C++ types cross the boundary; `abi` and the struct sizes refuse a library
// from another build of a different shape instead of crashing in it.
//
//   void* lib = dlopen("libtipperary-cuda.so", RTLD_NOW | RTLD_LOCAL);
//   auto entry = reinterpret_cast<tipperary::kernels::CudaBackendEntry>(
//       dlsym(lib, tipperary::kernels::kCudaBackendEntrySymbol));
//   const tipperary::kernels::CudaBackendApi* api = entry();
//   if (api->device_status().ok()) auto enc = api->create_encoder(options, weights);
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tipperary/kernels/cuda_encoder.h"
#include "tipperary/model/encoder.h"

namespace tipperary::kernels {

// Raised whenever a field of CudaBackendApi or the meaning of one changes.
inline constexpr int kCudaBackendAbi = 1;

// The library's file name, looked for beside the worker's executable and in ../lib/tipperary.
inline constexpr char kCudaBackendLibrary[] = "libtipperary-cuda.so";

// What the library exports (extern "C", so that dlsym finds it by this name).
inline constexpr char kCudaBackendEntrySymbol[] = "tipperary_cuda_backend";

struct CudaBackendApi {
  int abi = kCudaBackendAbi;
  // sizeof of the structs passed by reference, as the library was compiled.
  size_t options_size = sizeof(CudaEncoderOptions);
  size_t weights_size = sizeof(BertWeightsHost);
  size_t gpu_stats_size = sizeof(GpuStats);
  const char* version = nullptr;  // the project version the library was built at

  absl::Status (*device_status)() = nullptr;  // CudaDeviceStatus
  absl::StatusOr<std::unique_ptr<model::Encoder>> (*create_encoder)(
      const CudaEncoderOptions&, const BertWeightsHost&) = nullptr;  // CreateCudaEncoder
  absl::StatusOr<std::string> (*device_description)(int device) = nullptr;
  absl::StatusOr<GpuStats> (*query_gpu_stats)(int device) = nullptr;  // QueryGpuStats
};

using CudaBackendEntry = const CudaBackendApi* (*)();

// Why `api` cannot be used by a caller compiled against this header, or OK.
inline absl::Status CheckCudaBackendApi(const CudaBackendApi* api, const std::string& version) {
  if (api == nullptr) return absl::FailedPreconditionError("the library returned no entry points");
  if (api->abi != kCudaBackendAbi || api->options_size != sizeof(CudaEncoderOptions) ||
      api->weights_size != sizeof(BertWeightsHost) || api->gpu_stats_size != sizeof(GpuStats) ||
      api->device_status == nullptr || api->create_encoder == nullptr ||
      api->device_description == nullptr || api->query_gpu_stats == nullptr) {
    return absl::FailedPreconditionError(
        "the library is from a different build (its interface does not match)");
  }
  if (api->version == nullptr || version != api->version) {
    return absl::FailedPreconditionError(
        "the library is from another version (" +
        std::string(api->version == nullptr ? "unknown" : api->version) + ", this is " + version +
        ")");
  }
  return absl::OkStatus();
}

}  // namespace tipperary::kernels
