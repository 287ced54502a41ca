// The CUDA backend as a run-time library: where it is looked for, what a wrong file or another
// build's library gets, and, with the library this build made, that it loads, answers without a
// GPU, and that a worker process which never asks has not mapped cuBLAS.
#include "cuda_backend_loader.h"

#include <dlfcn.h>

#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tipperary::worker {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(CudaBackendCandidatesTest, BesideTheExecutableThenTheInstalledLayout) {
  EXPECT_THAT(
      CudaBackendCandidates("/opt/t/bin", ""),
      ElementsAre("/opt/t/bin/libtipperary-cuda.so", "/opt/t/lib/tipperary/libtipperary-cuda.so"));
}

TEST(CudaBackendCandidatesTest, AnOverrideIsTheOnlyCandidate) {
  EXPECT_THAT(CudaBackendCandidates("/opt/t/bin", "/x/my.so"), ElementsAre("/x/my.so"));
}

TEST(CudaBackendCandidatesTest, UnknownExecutableLeavesTheSearchToTheLoader) {
  EXPECT_THAT(CudaBackendCandidates("", ""), ElementsAre("libtipperary-cuda.so"));
}

TEST(LoadCudaBackendFromTest, AMissingFileNamesItself) {
  absl::StatusOr<const kernels::CudaBackendApi*> api =
      LoadCudaBackendFrom("/nonexistent/libtipperary-cuda.so");
  ASSERT_FALSE(api.ok());
  EXPECT_EQ(api.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(api.status().message(), HasSubstr("/nonexistent/libtipperary-cuda.so"));
}

TEST(LoadCudaBackendFromTest, ALibraryWithoutTheEntryPointIsRefused) {
  // libm is a real shared library on every Linux this runs on.
  absl::StatusOr<const kernels::CudaBackendApi*> api = LoadCudaBackendFrom("libm.so.6");
  ASSERT_FALSE(api.ok());
  EXPECT_THAT(api.status().message(), HasSubstr("is not a CUDA backend"));
}

TEST(LoadCudaBackendFromTest, AFileThatIsNotALibraryIsRefused) {
  const std::string path = ::testing::TempDir() + "/not-a-library.so";
  std::ofstream(path) << "not ELF";
  absl::StatusOr<const kernels::CudaBackendApi*> api = LoadCudaBackendFrom(path);
  ASSERT_FALSE(api.ok());
  EXPECT_EQ(api.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(api.status().message(), HasSubstr("cannot load the CUDA backend"));
}

absl::Status DeviceStatus() { return absl::OkStatus(); }
absl::StatusOr<std::unique_ptr<model::Encoder>> Create(const kernels::CudaEncoderOptions&,
                                                       const kernels::BertWeightsHost&) {
  return absl::UnimplementedError("test");
}
absl::StatusOr<std::string> Describe(int) { return std::string("test"); }
absl::StatusOr<kernels::GpuStats> Stats(int) { return kernels::GpuStats{}; }

kernels::CudaBackendApi Complete() {
  kernels::CudaBackendApi api;
  api.version = "1.2.3";
  api.device_status = &DeviceStatus;
  api.create_encoder = &Create;
  api.device_description = &Describe;
  api.query_gpu_stats = &Stats;
  return api;
}

TEST(CheckCudaBackendApiTest, AcceptsTheSameBuild) {
  kernels::CudaBackendApi api = Complete();
  EXPECT_TRUE(kernels::CheckCudaBackendApi(&api, "1.2.3").ok());
}

TEST(CheckCudaBackendApiTest, RefusesAnotherShapeOrVersion) {
  EXPECT_FALSE(kernels::CheckCudaBackendApi(nullptr, "1.2.3").ok());
  kernels::CudaBackendApi api = Complete();
  api.abi = kernels::kCudaBackendAbi + 1;
  EXPECT_THAT(kernels::CheckCudaBackendApi(&api, "1.2.3").message(), HasSubstr("different build"));
  api = Complete();
  api.options_size -= 8;
  EXPECT_THAT(kernels::CheckCudaBackendApi(&api, "1.2.3").message(), HasSubstr("different build"));
  api = Complete();
  api.query_gpu_stats = nullptr;
  EXPECT_FALSE(kernels::CheckCudaBackendApi(&api, "1.2.3").ok());
  api = Complete();
  EXPECT_THAT(kernels::CheckCudaBackendApi(&api, "1.2.4").message(),
              HasSubstr("another version (1.2.3, this is 1.2.4)"));
}

bool DriverPresent() {
  void* lib = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL);
  if (lib != nullptr) dlclose(lib);
  return lib != nullptr;
}

bool Mapped(const std::string& name) {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    if (line.find(name) != std::string::npos) return true;
  }
  return false;
}

#ifdef TIPPERARY_CUDA_BACKEND_PATH
TEST(LoadCudaBackendFromTest, ThisBuildsLibraryLoadsAndAnswersWithoutAGpu) {
  // Before anything loads it, this process (which links the worker) has no cuBLAS: the point
  // of the split. (Test order within this binary: the cases above load no CUDA library.)
  EXPECT_FALSE(Mapped("libcublas"));
  absl::StatusOr<const kernels::CudaBackendApi*> api =
      LoadCudaBackendFrom(TIPPERARY_CUDA_BACKEND_PATH);
  ASSERT_TRUE(api.ok()) << api.status();
  EXPECT_STREQ((*api)->version, TIPPERARY_VERSION);
  EXPECT_TRUE(Mapped("libcublasLt"));
  if (DriverPresent()) GTEST_SKIP() << "a driver is present: the device answer is the GPU's";
  // The runtime loads without a driver and reports why no device is usable.
  absl::Status device = (*api)->device_status();
  EXPECT_FALSE(device.ok());
  EXPECT_THAT(device.message(), HasSubstr("NVIDIA driver"));
  kernels::CudaEncoderOptions options;
  kernels::BertWeightsHost weights;
  EXPECT_FALSE((*api)->create_encoder(options, weights).ok());
  EXPECT_FALSE((*api)->query_gpu_stats(0).ok());
}
#endif

TEST(LoadCudaBackendTest, WithoutADriverTheLibraryIsNeverLoaded) {
  if (DriverPresent()) GTEST_SKIP() << "libcuda.so.1 loads here";
  // ctest runs each test in a process of its own; run together, the test above loaded it.
  if (Mapped("libcublas")) GTEST_SKIP() << "cuBLAS was loaded by an earlier test of this process";
  absl::StatusOr<const kernels::CudaBackendApi*> api = LoadCudaBackend();
  ASSERT_FALSE(api.ok());
#ifdef TIPPERARY_CUDA_BACKEND_PATH
  EXPECT_EQ(api.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(api.status().message(), HasSubstr("no NVIDIA driver (libcuda.so.1"));
#else
  EXPECT_EQ(api.status().code(), absl::StatusCode::kUnimplemented);
#endif
  // The same answer every time, from the first attempt; cuBLAS never mapped.
  EXPECT_EQ(LoadCudaBackend().status(), api.status());
  EXPECT_FALSE(Mapped("libcublas"));
}

}  // namespace
}  // namespace tipperary::worker
