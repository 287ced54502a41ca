// libtipperary-cuda.so as the worker uses it: dlopen'ed, its entry points checked, an encoder
// made inside the library, run and destroyed from outside it. On a GPU (label gpu; scripts/
// gpu-check) this is the worker's real path to the device; without one the library must still
// load and say why no device is usable.
#include <dlfcn.h>

#include <random>

#include "gpu_test_util.h"
#include "tipperary/kernels/cuda_backend.h"

namespace tipperary::kernels {
namespace {

using testing::Cosine;
using testing::CpuEncode;
using testing::HostModel;
using testing::RandomModel;
using testing::RandomSequences;

const CudaBackendApi* Load() {
  void* lib = dlopen(TIPPERARY_CUDA_BACKEND_PATH, RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    ADD_FAILURE() << dlerror();
    return nullptr;
  }
  auto entry = reinterpret_cast<CudaBackendEntry>(dlsym(lib, kCudaBackendEntrySymbol));
  if (entry == nullptr) {
    ADD_FAILURE() << "no " << kCudaBackendEntrySymbol;
    return nullptr;
  }
  const CudaBackendApi* api = entry();
  absl::Status s = CheckCudaBackendApi(api, TIPPERARY_CUDA_BACKEND_VERSION);
  if (!s.ok()) ADD_FAILURE() << s;
  return s.ok() ? api : nullptr;
}

TEST(CudaBackendLibraryTest, EncodesThroughTheLibrary) {
  const CudaBackendApi* api = Load();
  ASSERT_NE(api, nullptr);
  if (absl::Status device = api->device_status(); !device.ok()) {
    TIPPERARY_SKIP_OR_FAIL(device.message());
  }
  absl::StatusOr<std::string> description = api->device_description(0);
  ASSERT_TRUE(description.ok()) << description.status();
  HostModel m = RandomModel(2, 128, 2, 256, 97, 64);
  CudaEncoderOptions options;
  options.max_batch_size = 8;
  options.max_batch_tokens = 512;
  options.max_seq_len = 64;
  absl::StatusOr<std::unique_ptr<model::Encoder>> encoder = api->create_encoder(options, m.view);
  ASSERT_TRUE(encoder.ok()) << encoder.status();
  std::mt19937 rng(7);
  const auto seqs = RandomSequences(rng, 5, 40, 97);
  std::vector<float> out;
  ASSERT_TRUE((*encoder)->Encode(seqs, &out).ok());
  ASSERT_EQ(out.size(), seqs.size() * 128);
  for (size_t i = 0; i < seqs.size(); ++i) {
    const std::vector<float> want = CpuEncode(m.view, seqs[i]);
    EXPECT_GE(Cosine(out.data() + i * 128, want.data(), 128), 0.999) << *description << " " << i;
  }
  absl::StatusOr<GpuStats> stats = api->query_gpu_stats(0);
  if (stats.ok()) {
    EXPECT_GT(stats->memory_total_bytes, 0u);
  }
  encoder->reset();  // the library's destructor, called from here
}

}  // namespace
}  // namespace tipperary::kernels
