// Helpers of the GPU tests: device arrays, dtype conversion and skipping without a GPU.
#pragma once

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <ostream>
#include <random>
#include <vector>

#include "tipperary/kernels/cuda_encoder.h"
#include "tipperary/kernels/kernels.h"
#include "tipperary/kernels/math.h"

// Random and Cosine (namespace testing) come from here.
#include "host_model.h"

#define TIPPERARY_SKIP_WITHOUT_GPU()                               \
  do {                                                             \
    if (!::tipperary::kernels::CudaDeviceAvailable()) {            \
      GTEST_SKIP() << "no CUDA device (driver missing or no GPU)"; \
    }                                                              \
  } while (0)

#define ASSERT_CUDA_OK(expr)                                                    \
  do {                                                                          \
    const cudaError_t tipperary_err = (expr);                                   \
    ASSERT_EQ(tipperary_err, cudaSuccess) << cudaGetErrorString(tipperary_err); \
  } while (0)

namespace tipperary::kernels {
// gtest prints parameters with this instead of as raw bytes.
inline void PrintTo(DType t, std::ostream* os) {
  *os << (t == DType::kFloat16 ? "float16" : "bfloat16");
}
}  // namespace tipperary::kernels

namespace tipperary::kernels::testing {

inline uint16_t ToBits(DType t, float f) {
  return t == DType::kFloat16 ? FloatToHalfBits(f) : FloatToBf16Bits(f);
}
inline float FromBits(DType t, uint16_t b) {
  return t == DType::kFloat16 ? HalfBitsToFloat(b) : Bf16BitsToFloat(b);
}
// Rounds to what the dtype can hold, so references see the same inputs as the kernels.
inline void Quantize(DType t, std::vector<float>& v) {
  for (float& f : v) f = FromBits(t, ToBits(t, f));
}
inline std::vector<uint16_t> ToBitsVector(DType t, const std::vector<float>& v) {
  std::vector<uint16_t> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = ToBits(t, v[i]);
  return out;
}
inline std::vector<float> FromBitsVector(DType t, const std::vector<uint16_t>& v) {
  std::vector<float> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = FromBits(t, v[i]);
  return out;
}

// A device copy of a host vector; Download reads it back.
template <typename T>
class DeviceArray {
 public:
  explicit DeviceArray(size_t n) : n_(n) {
    if (cudaMalloc(&ptr_, n * sizeof(T) + 16) != cudaSuccess) ptr_ = nullptr;
  }
  explicit DeviceArray(const std::vector<T>& host) : DeviceArray(host.size()) {
    if (ptr_ != nullptr) cudaMemcpy(ptr_, host.data(), n_ * sizeof(T), cudaMemcpyHostToDevice);
  }
  ~DeviceArray() { cudaFree(ptr_); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;

  T* get() const { return static_cast<T*>(ptr_); }
  std::vector<T> Download() const {
    std::vector<T> host(n_);
    cudaDeviceSynchronize();
    cudaMemcpy(host.data(), ptr_, n_ * sizeof(T), cudaMemcpyDeviceToHost);
    return host;
  }

 private:
  size_t n_;
  void* ptr_ = nullptr;
};

}  // namespace tipperary::kernels::testing
