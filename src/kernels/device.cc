// Device discovery and NVML statistics. NVML ships with the driver, so it is dlopen'ed: the
// binaries must start (and report "no GPU") on machines without one.
#include <cuda_runtime_api.h>
#include <dlfcn.h>

#include <cstdio>
#include <mutex>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "tipperary/kernels/cuda_encoder.h"

namespace tipperary::kernels {
namespace {

// The few NVML declarations used, from the stable NVML ABI (nvml.h is not in the toolkit here).
using NvmlReturn = int;  // nvmlReturn_t; 0 == NVML_SUCCESS
using NvmlDevice = struct NvmlDeviceOpaque*;
struct NvmlUtilization {
  unsigned int gpu;
  unsigned int memory;
};
struct NvmlMemory {
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
};

struct Nvml {
  void* lib = nullptr;
  NvmlReturn (*init)() = nullptr;
  NvmlReturn (*by_index)(unsigned int, NvmlDevice*) = nullptr;
  NvmlReturn (*by_pci)(const char*, NvmlDevice*) = nullptr;
  NvmlReturn (*utilization)(NvmlDevice, NvmlUtilization*) = nullptr;
  NvmlReturn (*memory)(NvmlDevice, NvmlMemory*) = nullptr;
  const char* (*error_string)(NvmlReturn) = nullptr;
  absl::Status status = absl::OkStatus();
};

template <typename F>
bool Load(void* lib, const char* name, F* fn) {
  *fn = reinterpret_cast<F>(dlsym(lib, name));
  return *fn != nullptr;
}

// Loaded and initialised once, never shut down: NVML is cheap to keep and other threads may be
// reading it at exit.
const Nvml& GetNvml() {
  static Nvml* nvml = [] {
    auto* n = new Nvml;
    n->lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (n->lib == nullptr) {
      n->status = absl::UnavailableError(absl::StrCat("NVML not loadable: ", dlerror()));
      return n;
    }
    if (!Load(n->lib, "nvmlInit_v2", &n->init) ||
        !Load(n->lib, "nvmlDeviceGetHandleByIndex_v2", &n->by_index) ||
        !Load(n->lib, "nvmlDeviceGetUtilizationRates", &n->utilization) ||
        !Load(n->lib, "nvmlDeviceGetMemoryInfo", &n->memory) ||
        !Load(n->lib, "nvmlErrorString", &n->error_string)) {
      n->status = absl::UnavailableError("NVML lacks an expected symbol");
      return n;
    }
    Load(n->lib, "nvmlDeviceGetHandleByPciBusId_v2", &n->by_pci);  // optional
    if (const NvmlReturn r = n->init(); r != 0) {
      n->status = absl::UnavailableError(absl::StrCat("nvmlInit: ", n->error_string(r)));
    }
    return n;
  }();
  return *nvml;
}

}  // namespace

bool IsStickyCudaError(int cuda_error) {
  switch (static_cast<cudaError_t>(cuda_error)) {
    // The CUDA Runtime API's list of errors that leave "the process in an inconsistent state":
    // "any further CUDA work will return the same error"; the process must terminate.
    case cudaErrorIllegalAddress:
    case cudaErrorLaunchFailure:
    case cudaErrorHardwareStackError:
    case cudaErrorIllegalInstruction:
    case cudaErrorMisalignedAddress:
    case cudaErrorInvalidAddressSpace:
    case cudaErrorInvalidPc:
    case cudaErrorAssert:
    case cudaErrorLaunchTimeout:
    case cudaErrorECCUncorrectable:
    case cudaErrorContextIsDestroyed:
    case cudaErrorTensorMemoryLeak:
    case cudaErrorUnknown:
      return true;
    default:
      return false;
  }
}

absl::Status CudaDeviceStatus() {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err == cudaSuccess && count > 0) return absl::OkStatus();
  cudaGetLastError();  // cudaErrorNoDevice / cudaErrorInsufficientDriver: clear, report why
  if (err == cudaSuccess || err == cudaErrorNoDevice) {
    return absl::UnavailableError("no CUDA device (the driver sees no GPU)");
  }
  int driver = 0;
  int runtime = 0;
  cudaDriverGetVersion(&driver);  // 0 when no driver is installed
  cudaRuntimeGetVersion(&runtime);
  cudaGetLastError();
  auto version = [](int v) { return absl::StrCat(v / 1000, ".", (v % 1000) / 10); };
  if (err == cudaErrorInsufficientDriver) {
    return absl::FailedPreconditionError(
        driver == 0 ? absl::StrCat("no NVIDIA driver (CUDA runtime ", version(runtime), ")")
                    : absl::StrCat("the NVIDIA driver supports CUDA up to ", version(driver),
                                   ", older than this binary's CUDA runtime ", version(runtime)));
  }
  return absl::UnavailableError(absl::StrCat("CUDA runtime error: ", cudaGetErrorName(err), " (",
                                             cudaGetErrorString(err), ")"));
}

bool CudaDeviceAvailable() { return CudaDeviceStatus().ok(); }

absl::StatusOr<std::string> CudaDeviceDescription(int device) {
  if (!CudaDeviceAvailable()) return absl::UnavailableError("no CUDA device");
  cudaDeviceProp prop{};
  if (const cudaError_t err = cudaGetDeviceProperties(&prop, device); err != cudaSuccess) {
    cudaGetLastError();
    return absl::InvalidArgumentError(
        absl::StrCat("CUDA device ", device, ": ", cudaGetErrorString(err)));
  }
  return absl::StrFormat("%s (sm_%d%d, %.1f GiB)", prop.name, prop.major, prop.minor,
                         static_cast<double>(prop.totalGlobalMem) / (1u << 30));
}

absl::StatusOr<GpuStats> QueryGpuStats(int device) {
  const Nvml& nvml = GetNvml();
  if (!nvml.status.ok()) return nvml.status;
  NvmlDevice handle = nullptr;
  NvmlReturn r = -1;
  // CUDA and NVML may number devices differently (CUDA_VISIBLE_DEVICES, ordering): match by PCI.
  char bus_id[64] = {0};
  if (nvml.by_pci != nullptr &&
      cudaDeviceGetPCIBusId(bus_id, sizeof bus_id, device) == cudaSuccess) {
    r = nvml.by_pci(bus_id, &handle);
  } else {
    cudaGetLastError();
  }
  if (r != 0) r = nvml.by_index(static_cast<unsigned int>(device), &handle);
  if (r != 0) {
    return absl::NotFoundError(
        absl::StrCat("NVML device for CUDA device ", device, ": ", nvml.error_string(r)));
  }
  NvmlUtilization util{};
  if (r = nvml.utilization(handle, &util); r != 0) {
    return absl::UnavailableError(
        absl::StrCat("nvmlDeviceGetUtilizationRates: ", nvml.error_string(r)));
  }
  NvmlMemory mem{};
  if (r = nvml.memory(handle, &mem); r != 0) {
    return absl::UnavailableError(absl::StrCat("nvmlDeviceGetMemoryInfo: ", nvml.error_string(r)));
  }
  GpuStats stats;
  stats.utilization_ratio = util.gpu / 100.0;
  stats.memory_used_bytes = mem.used;
  stats.memory_total_bytes = mem.total;
  return stats;
}

}  // namespace tipperary::kernels
