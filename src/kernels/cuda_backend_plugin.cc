// libtipperary-cuda.so's one exported symbol: the CUDA backend's entry points for the worker,
// which loads this library at run time (cuda_backend.h says why).
#include "tipperary/kernels/cuda_backend.h"

#ifndef TIPPERARY_VERSION
#error "TIPPERARY_VERSION must name the build the library belongs to"
#endif

extern "C" __attribute__((visibility("default"))) const tipperary::kernels::CudaBackendApi*
tipperary_cuda_backend() {
  namespace k = tipperary::kernels;
  static const k::CudaBackendApi api = [] {
    k::CudaBackendApi a;
    a.version = TIPPERARY_VERSION;
    a.device_status = &k::CudaDeviceStatus;
    a.create_encoder = &k::CreateCudaEncoder;
    a.device_description = &k::CudaDeviceDescription;
    a.query_gpu_stats = &k::QueryGpuStats;
    return a;
  }();
  return &api;
}
