// Internal: OpenBLAS, loaded at run time.
//
// Why not link it: OpenBLAS (0.3.21, Debian 12) picks its kernels from the CPU model number when
// the library is loaded, and falls back to SSE3 "Prescott" kernels — 3-4x slower — on CPUs newer
// than it knows (e.g. Emerald Rapids). The only override is the OPENBLAS_CORETYPE environment
// variable, read by the library's constructor; so we set it from the CPU's feature flags (unless
// the user did) and only then dlopen the library.
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace tipperary::model::internal {

struct Blas {
  // cblas_sgemm with row-major order; trans_a/trans_b: false = NoTrans, true = Trans.
  void Sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a, int lda,
             const float* b, int ldb, float beta, float* c, int ldc) const;

  void (*sgemm)(int, int, int, int, int, int, float, const float*, int, const float*, int, float,
                float*, int) = nullptr;
  void (*set_num_threads)(int) = nullptr;
  char* (*get_corename)() = nullptr;
  std::string core;  // OpenBLAS's kernel family, e.g. "SkylakeX"
};

// Loads libopenblas once per process; later calls return the same instance (or error).
absl::StatusOr<const Blas*> LoadBlas();

}  // namespace tipperary::model::internal
