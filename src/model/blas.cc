#include "blas.h"

#include <dlfcn.h>

#include <cstdlib>

#include "absl/strings/str_cat.h"

namespace tipperary::model::internal {
namespace {

// CBLAS enum values (cblas.h): RowMajor = 101, NoTrans = 111, Trans = 112.
constexpr int kRowMajor = 101;
constexpr int kNoTrans = 111;
constexpr int kTrans = 112;

// The newest kernel family 0.3.21 has that this CPU can run; nullptr leaves the choice to it.
const char* CoreTypeForThisCpu() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq")) {
    return __builtin_cpu_supports("avx512bf16") ? "Cooperlake" : "SkylakeX";
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
#endif
  return nullptr;
}

absl::StatusOr<Blas> Load() {
  if (std::getenv("OPENBLAS_CORETYPE") == nullptr) {
    if (const char* core = CoreTypeForThisCpu(); core != nullptr) {
      ::setenv("OPENBLAS_CORETYPE", core, 0);
    }
  }
  void* lib = nullptr;
  std::string errors;
  for (const char* name : {"libopenblas.so.0", "libopenblas.so"}) {
    lib = ::dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (lib != nullptr) break;
    const char* e = ::dlerror();
    absl::StrAppend(&errors, errors.empty() ? "" : "; ", e != nullptr ? e : name);
  }
  if (lib == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot load OpenBLAS (install libopenblas0): ", errors));
  }
  Blas blas;
  blas.sgemm = reinterpret_cast<decltype(blas.sgemm)>(::dlsym(lib, "cblas_sgemm"));
  blas.set_num_threads =
      reinterpret_cast<decltype(blas.set_num_threads)>(::dlsym(lib, "openblas_set_num_threads"));
  blas.get_corename =
      reinterpret_cast<decltype(blas.get_corename)>(::dlsym(lib, "openblas_get_corename"));
  if (blas.sgemm == nullptr || blas.set_num_threads == nullptr) {
    return absl::FailedPreconditionError("the loaded libopenblas lacks cblas_sgemm");
  }
  if (blas.get_corename != nullptr && blas.get_corename() != nullptr) {
    blas.core = blas.get_corename();
  }
  // Our thread team splits the work; OpenBLAS threads on top would oversubscribe the cores.
  blas.set_num_threads(1);
  return blas;  // the library stays loaded for the life of the process
}

}  // namespace

void Blas::Sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a,
                 int lda, const float* b, int ldb, float beta, float* c, int ldc) const {
  sgemm(kRowMajor, trans_a ? kTrans : kNoTrans, trans_b ? kTrans : kNoTrans, m, n, k, alpha, a, lda,
        b, ldb, beta, c, ldc);
}

absl::StatusOr<const Blas*> LoadBlas() {
  static const absl::StatusOr<Blas>* blas = new absl::StatusOr<Blas>(Load());
  if (!blas->ok()) return blas->status();
  return &**blas;
}

}  // namespace tipperary::model::internal
