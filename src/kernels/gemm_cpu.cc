// The CPU mirror of a GemmCall: widen through the given leading dimensions and strides (so a
// wrong one reads the wrong elements, as it would on the GPU), multiply on OpenBLAS, apply the
// epilogue in fp32, round once to C's storage type.
#include <cblas.h>

// OpenBLAS's own call (linked explicitly, see CMakeLists.txt); not every cblas.h declares it.
extern "C" void openblas_set_num_threads(int num_threads);

#include <cstdint>
#include <cstring>
#include <vector>

#include "tipperary/kernels/gemm_call.h"
#include "tipperary/kernels/math.h"

namespace tipperary::kernels {
namespace {

float Load(const void* base, GemmType type, int64_t index) {
  switch (type) {
    case GemmType::kFloat32:
      return static_cast<const float*>(base)[index];
    case GemmType::kFloat16:
      return HalfBitsToFloat(static_cast<const uint16_t*>(base)[index]);
    case GemmType::kBFloat16:
      return Bf16BitsToFloat(static_cast<const uint16_t*>(base)[index]);
  }
  return 0.0f;
}

void Store(void* base, GemmType type, int64_t index, float v) {
  switch (type) {
    case GemmType::kFloat32:
      static_cast<float*>(base)[index] = v;
      return;
    case GemmType::kFloat16:
      static_cast<uint16_t*>(base)[index] = FloatToHalfBits(v);
      return;
    case GemmType::kBFloat16:
      static_cast<uint16_t*>(base)[index] = FloatToBf16Bits(v);
      return;
  }
}

const void* Offset(const void* base, GemmType type, int64_t elements) {
  return static_cast<const char*>(base) + elements * GemmTypeSize(type);
}

// A stored rows x cols matrix (leading dimension ld) widened to a compact fp32 one (ld = rows).
void Widen(const void* base, GemmType type, int64_t rows, int64_t cols, int64_t ld,
           std::vector<float>* out) {
  out->resize(static_cast<size_t>(rows * cols));
  for (int64_t c = 0; c < cols; ++c) {
    for (int64_t r = 0; r < rows; ++r) (*out)[c * rows + r] = Load(base, type, r + c * ld);
  }
}

}  // namespace

absl::Status RunGemmOnCpu(const GemmCall& g) {
  // One thread, as the CPU encoder runs OpenBLAS: its own pool would spin beside the caller's
  // threads, and it synchronises through flags ThreadSanitizer cannot see (a reported race on
  // the result under the tsan preset). The mirror proves layouts, not speed.
  static const bool single_threaded = [] {
    openblas_set_num_threads(1);
    return true;
  }();
  (void)single_threaded;
  if (absl::Status s = ValidateGemmCall(g); !s.ok()) return s;
  if (g.m == 0 || g.n == 0) return absl::OkStatus();
  const int64_t a_rows = g.trans_a == GemmOp::kN ? g.m : g.k;
  const int64_t a_cols = g.trans_a == GemmOp::kN ? g.k : g.m;
  const int64_t b_rows = g.trans_b == GemmOp::kN ? g.k : g.n;
  const int64_t b_cols = g.trans_b == GemmOp::kN ? g.n : g.k;
  std::vector<float> a;
  std::vector<float> b;
  std::vector<float> c(static_cast<size_t>(g.m) * g.n);
  for (int i = 0; i < g.batch; ++i) {
    void* c_base = static_cast<char*>(g.c) + i * g.stride_c * GemmTypeSize(g.c_type);
    if (g.beta != 0.0f) {
      Widen(c_base, g.c_type, g.m, g.n, g.ldc, &c);
    } else {
      std::fill(c.begin(), c.end(), 0.0f);  // beta == 0: C is not read (it may hold NaN)
    }
    if (g.k > 0) {
      Widen(Offset(g.a, g.a_type, i * g.stride_a), g.a_type, a_rows, a_cols, g.lda, &a);
      Widen(Offset(g.b, g.b_type, i * g.stride_b), g.b_type, b_rows, b_cols, g.ldb, &b);
      cblas_sgemm(CblasColMajor, g.trans_a == GemmOp::kT ? CblasTrans : CblasNoTrans,
                  g.trans_b == GemmOp::kT ? CblasTrans : CblasNoTrans, g.m, g.n, g.k, g.alpha,
                  a.data(), static_cast<int>(a_rows), b.data(), static_cast<int>(b_rows), g.beta,
                  c.data(), g.m);
    } else {
      for (float& v : c) v *= g.beta;
    }
    for (int64_t col = 0; col < g.n; ++col) {
      for (int64_t r = 0; r < g.m; ++r) {
        float v = c[col * g.m + r];
        if (g.epilogue != GemmEpilogue::kNone) v += Load(g.bias, g.bias_type, r);
        if (g.epilogue == GemmEpilogue::kBiasGelu) v = Gelu(v);
        Store(c_base, g.c_type, r + col * g.ldc, v);
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace tipperary::kernels
