#include "cuda_backend_loader.h"

#include <dlfcn.h>

#include <cstdlib>
#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "tipperary/common/log.h"

namespace tipperary::worker {
namespace {

#ifdef TIPPERARY_HAVE_CUDA
std::string ExecutableDir() {
  std::error_code ec;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string() : exe.parent_path().string();
}

// The NVIDIA driver's library, which the CUDA runtime needs to see any device. Looked for before
// the backend is loaded: without it (a CPU machine, a pod without the NVIDIA runtime) there is
// no GPU to find, and loading cuBLAS only to be told so would cost the ~150 MiB this library
// split exists to save. Kept open when found: the runtime opens it anyway.
absl::Status ProbeNvidiaDriver() {
  if (dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL) != nullptr) return absl::OkStatus();
  const char* err = dlerror();
  return absl::FailedPreconditionError(
      absl::StrCat("no NVIDIA driver (", err == nullptr ? "libcuda.so.1 not found" : err, ")"));
}

absl::StatusOr<const kernels::CudaBackendApi*> Load() {
  if (absl::Status driver = ProbeNvidiaDriver(); !driver.ok()) return driver;
  const char* env = std::getenv("TIPPERARY_CUDA_BACKEND");
  const std::vector<std::string> candidates =
      CudaBackendCandidates(ExecutableDir(), env == nullptr ? "" : env);
  for (const std::string& path : candidates) {
    std::error_code ec;
    // An explicit path is loaded (and fails loudly) even if it does not exist.
    if (candidates.size() > 1 && !std::filesystem::exists(path, ec)) continue;
    return LoadCudaBackendFrom(path);
  }
  return absl::NotFoundError(absl::StrCat("the CUDA backend library ", kernels::kCudaBackendLibrary,
                                          " is not installed (looked in ",
                                          absl::StrJoin(candidates, ", "), ")"));
}
#else
absl::StatusOr<const kernels::CudaBackendApi*> Load() {
  return absl::UnimplementedError("this tipperary-worker was built without CUDA");
}
#endif

}  // namespace

std::vector<std::string> CudaBackendCandidates(const std::string& executable_dir,
                                               const std::string& override_path) {
  if (!override_path.empty()) return {override_path};
  if (executable_dir.empty()) return {kernels::kCudaBackendLibrary};  // the loader's own search
  const std::filesystem::path dir(executable_dir);
  return {(dir / kernels::kCudaBackendLibrary).string(),
          (dir.parent_path() / "lib" / "tipperary" / kernels::kCudaBackendLibrary).string()};
}

absl::StatusOr<const kernels::CudaBackendApi*> LoadCudaBackendFrom(const std::string& path) {
  // RTLD_LOCAL: the CUDA libraries' symbols stay out of the global namespace.
  void* lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    const char* err = dlerror();
    return absl::FailedPreconditionError(
        absl::StrCat("cannot load the CUDA backend: ", err == nullptr ? path : err));
  }
  auto entry =
      reinterpret_cast<kernels::CudaBackendEntry>(dlsym(lib, kernels::kCudaBackendEntrySymbol));
  if (entry == nullptr) {
    dlclose(lib);
    return absl::FailedPreconditionError(
        absl::StrCat(path, " is not a CUDA backend (no ", kernels::kCudaBackendEntrySymbol, ")"));
  }
  const kernels::CudaBackendApi* api = entry();
  if (absl::Status s = kernels::CheckCudaBackendApi(api, TIPPERARY_VERSION); !s.ok()) {
    dlclose(lib);
    return absl::FailedPreconditionError(absl::StrCat(path, ": ", s.message()));
  }
  // Never closed: encoders and their vtables come from it.
  TIPPERARY_LOG(kInfo, "CUDA backend loaded", {{"path", path}});
  return api;
}

absl::StatusOr<const kernels::CudaBackendApi*> LoadCudaBackend() {
  static const absl::StatusOr<const kernels::CudaBackendApi*>* const loaded =
      new absl::StatusOr<const kernels::CudaBackendApi*>(Load());
  return *loaded;
}

}  // namespace tipperary::worker
