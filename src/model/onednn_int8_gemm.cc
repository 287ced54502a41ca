#include "onednn_int8_gemm.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <exception>

#include "absl/strings/str_cat.h"
#include "aligned_vector.h"
#include "oneapi/dnnl/dnnl.hpp"
#include "onednn_primitive_args.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace tipperary::model::internal {
namespace {

// As in onednn_gemm.cc: blocks of up to 256 rows, fixed-M primitives per 16-row tile and tails.
constexpr int kBlockRows = 256;
constexpr int kTileRows = 16;
constexpr float kQMax = 127.0f;  // symmetric: -128 is never produced

using dnnl::memory;

dnnl::engine& Engine() {
  static dnnl::engine* engine = new dnnl::engine(dnnl::engine::kind::cpu, 0);
  return *engine;
}

memory::desc SrcDesc(int m, int k) {
  return memory::desc({m, k}, memory::data_type::s8, memory::format_tag::ab);
}
memory::desc DstDesc(int m, int n) {
  return memory::desc({m, n}, memory::data_type::f32, memory::format_tag::ab);
}
memory::desc AnyWeightsDesc(int n, int k) {
  return memory::desc({k, n}, memory::data_type::s8, memory::format_tag::any);
}

// y[m x n] = x[m x k] w[k x n]: s8 x s8 -> s32, written as f32 (exact up to 2^24), no scales:
// oneDNN 2.6 has AMX-INT8 kernels for per-channel output scales only as constants baked in at
// creation (runtime scales fall back to its slow gemm:jit), which would JIT one set of
// primitives per weight instead of sharing one set per shape through its primitive cache; the
// row pass after the call applies both scales instead (Int8Linear::RunOrThrow). User-managed
// scratchpad: two threads may run one primitive.
dnnl::matmul::primitive_desc MatmulDesc(int m, int n, int k, const memory::desc& w) {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return dnnl::matmul::primitive_desc(dnnl::matmul::desc(SrcDesc(m, k), w, DstDesc(m, n)), attr,
                                      Engine());
}

// AMX-INT8 ("amx") or AVX-512 VNNI ("vnni") in oneDNN's implementation name.
bool IsInt8Fast(const dnnl::matmul::primitive_desc& pd) {
  const std::string impl = pd.impl_info_str();
  return impl.find("amx") != std::string::npos || impl.find("vnni") != std::string::npos;
}

void QuantizeRowScalar(const float* x, int k, int8_t* q, float* scale) {
  float amax = 0.0f;
  for (int i = 0; i < k; ++i) amax = std::max(amax, std::abs(x[i]));
  if (!(amax > 0.0f) || !std::isfinite(amax)) {
    // All zero: zeros, scale 1. Infinite: no scale represents it; NaN makes the output say so,
    // as the fp32 path's would.
    std::fill(q, q + k, int8_t{0});
    *scale = amax > 0.0f ? std::nanf("") : 1.0f;
    return;
  }
  const float inv = kQMax / amax;
  for (int i = 0; i < k; ++i) {
    // nearbyint: round to nearest even (the default mode), as VCVTPS2DQ does.
    const float r = std::nearbyint(x[i] * inv);
    q[i] = static_cast<int8_t>(std::clamp(r, -kQMax, kQMax));
  }
  *scale = amax / kQMax;
}

#if defined(__x86_64__)
// GCC 12's AVX-512 intrinsics pass _mm512_undefined_*() as the unused merge source of their
// masked builtins, which -Wmaybe-uninitialized reports inside its own headers once inlined here.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
// Used only where the CPU has AVX-512BW (checked at run time); the binary stays baseline x86-64.
__attribute__((target("avx512f,avx512bw"))) void QuantizeRowAvx512(const float* x, int k, int8_t* q,
                                                                   float* scale) {
  // (Bitwise abs and a scalar final reduction: GCC 12's _mm512_abs_ps / _mm512_reduce_max_ps
  // trip -Wuninitialized inside its own headers.)
  const __m512i abs_mask = _mm512_set1_epi32(0x7fffffff);
  __m512 vmax = _mm512_setzero_ps();
  int i = 0;
  for (; i + 16 <= k; i += 16) {
    const __m512i bits = _mm512_and_si512(_mm512_castps_si512(_mm512_loadu_ps(x + i)), abs_mask);
    vmax = _mm512_max_ps(vmax, _mm512_castsi512_ps(bits));
  }
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, vmax);
  float amax = 0.0f;
  for (float v : lanes) amax = std::max(amax, v);
  for (; i < k; ++i) amax = std::max(amax, std::abs(x[i]));
  if (!(amax > 0.0f) || !std::isfinite(amax)) {
    QuantizeRowScalar(x, k, q, scale);
    return;
  }
  const __m512 inv = _mm512_set1_ps(kQMax / amax);
  i = 0;
  for (; i + 16 <= k; i += 16) {
    // |x * inv| <= 127 (up to rounding of inv): the saturating pack never clips beyond that.
    const __m512i r = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x + i), inv));
    const __m512i c =
        _mm512_max_epi32(_mm512_min_epi32(r, _mm512_set1_epi32(127)), _mm512_set1_epi32(-127));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + i), _mm512_cvtsepi32_epi8(c));
  }
  const float inv_s = kQMax / amax;
  for (; i < k; ++i) {
    q[i] = static_cast<int8_t>(std::clamp(std::nearbyint(x[i] * inv_s), -kQMax, kQMax));
  }
  *scale = amax / kQMax;
}

__attribute__((target("avx512f"))) void DequantizeRowAvx512(float* y, int n, float row_scale,
                                                            const float* w_scales) {
  const __m512 vs = _mm512_set1_ps(row_scale);
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 s = _mm512_mul_ps(vs, _mm512_loadu_ps(w_scales + i));
    _mm512_storeu_ps(y + i, _mm512_mul_ps(_mm512_loadu_ps(y + i), s));
  }
  for (; i < n; ++i) y[i] *= row_scale * w_scales[i];
}

#pragma GCC diagnostic pop

bool HasAvx512Bw() {
  static const bool has = __builtin_cpu_supports("avx512bw");
  return has;
}
#endif

void QuantizeRow(const float* x, int k, int8_t* q, float* scale) {
#if defined(__x86_64__)
  if (HasAvx512Bw()) return QuantizeRowAvx512(x, k, q, scale);
#endif
  QuantizeRowScalar(x, k, q, scale);
}

// y[i] = sum_i * (row_scale * w_scales[i]): the s32 sum (as f32) back to real units.
void DequantizeRow(float* y, int n, float row_scale, const float* w_scales) {
#if defined(__x86_64__)
  if (HasAvx512Bw()) return DequantizeRowAvx512(y, n, row_scale, w_scales);
#endif
  for (int i = 0; i < n; ++i) y[i] *= row_scale * w_scales[i];
}

}  // namespace

void QuantizeRowsS8(const float* x, int rows, int k, int8_t* q, float* scales) {
  for (int r = 0; r < rows; ++r) {
    QuantizeRow(x + static_cast<size_t>(r) * k, k, q + static_cast<size_t>(r) * k, scales + r);
  }
}

struct Int8Scratch::State {
  AlignedVector<int8_t> a;  // cache-line aligned: the kernels' tiles load from it
  std::vector<float> row_scales;
  AlignedVector<uint8_t> pad;
  dnnl::stream stream{Engine()};
  PrimitiveArgsMap args;  // onednn_primitive_args.h
};

Int8Scratch::Int8Scratch() = default;
Int8Scratch::~Int8Scratch() = default;
Int8Scratch::Int8Scratch(Int8Scratch&&) noexcept = default;
Int8Scratch& Int8Scratch::operator=(Int8Scratch&&) noexcept = default;

struct Int8Linear::Impl {
  struct Prim {
    dnnl::matmul matmul;
    memory::desc src, dst, pad;
  };
  memory weights;               // s8, oneDNN's layout (with its s8 x s8 compensation, if any)
  std::vector<float> w_scales;  // per output channel
  std::vector<Prim> full;       // full[i]: M = 16 (i + 1)
  std::vector<Prim> tail;       // tail[i]: M = i + 1
  size_t pad_bytes = 0;

  void Exec(const Prim& p, const int8_t* a, float* y, Int8Scratch::State* s) const {
    PrimitiveArgs& args = ArgsFor(p, {&full, &tail}, Engine(), &s->args);
    args.src.set_data_handle(const_cast<int8_t*>(a));
    args.dst.set_data_handle(y);
    args.pad.set_data_handle(s->pad.data());
    const dnnl_exec_arg_t exec_args[] = {{DNNL_ARG_SRC, args.src.get()},
                                         {DNNL_ARG_WEIGHTS, weights.get()},
                                         {DNNL_ARG_DST, args.dst.get()},
                                         {DNNL_ARG_SCRATCHPAD, args.pad.get()}};
    dnnl::error::wrap_c_api(dnnl_primitive_execute(p.matmul.get(), s->stream.get(), 4, exec_args),
                            "could not execute an int8 matmul");
  }
};

bool Int8MatmulUsable() {
  static const bool usable = [] {
    try {
      return IsInt8Fast(MatmulDesc(kBlockRows, 384, 384, AnyWeightsDesc(384, 384)));
    } catch (const dnnl::error&) {
      return false;
    }
  }();
  return usable;
}

std::string Int8MatmulInfo() {
  const dnnl_version_t* v = dnnl_version();
  std::string impl;
  try {
    impl = MatmulDesc(kBlockRows, 384, 384, AnyWeightsDesc(384, 384)).impl_info_str();
  } catch (const dnnl::error& e) {
    impl = e.what();
  }
  return absl::StrCat("oneDNN ", v->major, ".", v->minor, ".", v->patch, " ", impl);
}

Int8Linear::Int8Linear(int n, int k, std::unique_ptr<Impl> impl)
    : n_(n), k_(k), impl_(std::move(impl)) {}
Int8Linear::~Int8Linear() = default;

absl::StatusOr<std::unique_ptr<Int8Linear>> Int8Linear::Create(const float* w, int n, int k) {
  auto impl = std::make_unique<Impl>();
  omp_set_num_threads(1);
  try {
    const dnnl::matmul::primitive_desc largest = MatmulDesc(kBlockRows, n, k, AnyWeightsDesc(n, k));
    if (!IsInt8Fast(largest)) {
      return absl::FailedPreconditionError(
          absl::StrCat("oneDNN has no AMX-INT8/VNNI int8 matmul for ", n, " x ", k, " here (",
                       Int8MatmulInfo(), ")"));
    }
    impl->weights = memory(largest.weights_desc(), Engine());
    auto add = [&](int m, std::vector<Impl::Prim>* to) {
      dnnl::matmul::primitive_desc pd = MatmulDesc(m, n, k, largest.weights_desc());
      impl->pad_bytes = std::max(impl->pad_bytes, pd.scratchpad_desc().get_size());
      to->push_back({dnnl::matmul(pd), pd.src_desc(), pd.dst_desc(), pd.scratchpad_desc()});
    };
    for (int m = kTileRows; m <= kBlockRows; m += kTileRows) add(m, &impl->full);
    for (int m = 1; m < kTileRows; ++m) add(m, &impl->tail);
    // Per output channel = per row of PyTorch's [n x k] weight.
    std::vector<int8_t> q(static_cast<size_t>(n) * k);
    impl->w_scales.resize(n);
    QuantizeRowsS8(w, n, k, q.data(), impl->w_scales.data());
    // [n x k] row-major is the logical k x n matrix in column-major order ("ba"); the reorder
    // also computes the compensation oneDNN's s8 x s8 kernels need, where they need it.
    memory user(memory::desc({k, n}, memory::data_type::s8, memory::format_tag::ba), Engine(),
                q.data());
    dnnl::stream stream(Engine());
    dnnl::reorder(user, impl->weights).execute(stream, user, impl->weights);
    stream.wait();
  } catch (const dnnl::error& e) {
    return absl::InternalError(absl::StrCat("oneDNN int8 matmul ", n, " x ", k, ": ", e.what()));
  }
  return std::unique_ptr<Int8Linear>(new Int8Linear(n, k, std::move(impl)));
}

absl::Status Int8Linear::Run(const float* x, int rows, float* y, Int8Scratch* scratch) const {
  if (rows <= 0) return absl::OkStatus();
  try {
    RunOrThrow(x, rows, y, scratch);
  } catch (const dnnl::error& e) {
    return absl::InternalError(absl::StrCat("oneDNN int8 matmul ", n_, " x ", k_, ": ", e.what()));
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError("out of memory for the int8 matmul scratch");
  }
  return absl::OkStatus();
}

void Int8Linear::RunOrThrow(const float* x, int rows, float* y, Int8Scratch* scratch) const {
  omp_set_num_threads(1);  // see Bf16Linear::RunOrThrow
  if (!scratch->state_) scratch->state_ = std::make_unique<Int8Scratch::State>();
  Int8Scratch::State* s = scratch->state_.get();
  const int block_rows = std::min(rows, kBlockRows);
  if (s->a.size() < static_cast<size_t>(block_rows) * k_) {
    s->a.resize(static_cast<size_t>(block_rows) * k_);
  }
  if (s->row_scales.size() < static_cast<size_t>(block_rows)) s->row_scales.resize(block_rows);
  if (s->pad.size() < impl_->pad_bytes) s->pad.resize(impl_->pad_bytes);
  for (int r0 = 0; r0 < rows; r0 += kBlockRows) {
    const int m = std::min(kBlockRows, rows - r0);
    QuantizeRowsS8(x + static_cast<size_t>(r0) * k_, m, k_, s->a.data(), s->row_scales.data());
    const int full = m / kTileRows * kTileRows;
    float* yb = y + static_cast<size_t>(r0) * n_;
    if (full > 0) impl_->Exec(impl_->full[full / kTileRows - 1], s->a.data(), yb, s);
    if (m > full) {
      impl_->Exec(impl_->tail[m - full - 1], s->a.data() + static_cast<size_t>(full) * k_,
                  yb + static_cast<size_t>(full) * n_, s);
    }
    for (int r = 0; r < m; ++r) {
      DequantizeRow(yb + static_cast<size_t>(r) * n_, n_, s->row_scales[r], impl_->w_scales.data());
    }
  }
}

}  // namespace tipperary::model::internal
