#include "onednn_gemm.h"

#include <omp.h>

#include <algorithm>
#include <bit>
#include <cstring>
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

// Rows per block: 256 x 1536 bf16 = 768 KiB of activations stays in a core's L2 while the
// weight streams past it once.
constexpr int kBlockRows = 256;
// AMX tiles hold 16 rows; the primitives cover multiples of 16 and tails below it.
constexpr int kTileRows = 16;

using dnnl::memory;

dnnl::engine& Engine() {
  static dnnl::engine* engine = new dnnl::engine(dnnl::engine::kind::cpu, 0);
  return *engine;
}

memory::desc SrcDesc(int m, int k) {
  return memory::desc({m, k}, memory::data_type::bf16, memory::format_tag::ab);
}
memory::desc DstDesc(int m, int n, bool bf16 = false) {
  return memory::desc({m, n}, bf16 ? memory::data_type::bf16 : memory::data_type::f32,
                      memory::format_tag::ab);
}
memory::desc BiasDesc(int n) {
  return memory::desc({1, n}, memory::data_type::f32, memory::format_tag::ab);
}

memory::desc AnyWeightsDesc(int n, int k) {
  return memory::desc({k, n}, memory::data_type::bf16, memory::format_tag::any);
}

// A matmul primitive for y[m x n] = x[m x k] w[k x n], with weights in layout `w` (format_tag
// any: whatever oneDNN prefers), and the epilogue of `options` (bias, GELU, bf16 output) applied
// to the fp32 accumulators before they are stored. Scratchpad is user-managed so that two
// threads can run one primitive at once.
dnnl::matmul::primitive_desc MatmulDesc(int m, int n, int k, const memory::desc& w,
                                        const Bf16LinearOptions& options = {}) {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  dnnl::post_ops ops;
  if (options.gelu) ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_gelu_erf, 0.0f, 0.0f);
  if (options.accumulate) ops.append_sum(1.0f);
  if (ops.len() > 0) attr.set_post_ops(ops);
  const memory::desc dst = DstDesc(m, n, options.bf16_output);
  if (options.bias != nullptr) {
    return dnnl::matmul::primitive_desc(dnnl::matmul::desc(SrcDesc(m, k), w, BiasDesc(n), dst),
                                        attr, Engine());
  }
  return dnnl::matmul::primitive_desc(dnnl::matmul::desc(SrcDesc(m, k), w, dst), attr, Engine());
}

// True when the primitive multiplies bf16 natively: on AMX tiles (Sapphire Rapids and newer) or
// with AVX512-BF16's dot products (Cooper Lake, AMD Zen 4 and newer; "brg:avx512_core_bf16",
// ~2x the fp32 FMA rate). Not when oneDNN would convert to fp32 and multiply there.
bool IsNativeBf16(const dnnl::matmul::primitive_desc& pd) {
  const std::string impl = pd.impl_info_str();
  return impl.find("amx") != std::string::npos ||
         impl.find("avx512_core_bf16") != std::string::npos;
}

// Round to nearest even, as VCVTNE2PS2BF16 and oneDNN's reorders do (NaN stays NaN).
uint16_t ToBf16(float f) {
  uint32_t u = std::bit_cast<uint32_t>(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

#if defined(__x86_64__)
// Runs only after Bf16MatmulNative(), which implies AVX512-BF16; the rest of the binary stays
// baseline x86-64.
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) void ConvertRows(const float* x,
                                                                                 int rows, int k,
                                                                                 uint16_t* a) {
  const size_t total = static_cast<size_t>(rows) * k;  // both contiguous: convert as one run
  size_t i = 0;
  for (; i + 32 <= total; i += 32) {
    const __m512 lo = _mm512_loadu_ps(x + i);
    const __m512 hi = _mm512_loadu_ps(x + i + 16);
    _mm512_storeu_si512(a + i, reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(hi, lo)));
  }
  for (; i < total; ++i) a[i] = ToBf16(x[i]);
}
#else
void ConvertRows(const float* x, int rows, int k, uint16_t* a) {
  const size_t total = static_cast<size_t>(rows) * k;
  for (size_t i = 0; i < total; ++i) a[i] = ToBf16(x[i]);
}
#endif

}  // namespace

struct Bf16Scratch::State {
  AlignedVector<uint16_t> a;  // cache-line aligned: the kernels' tiles load from it
  AlignedVector<uint8_t> pad;
  dnnl::stream stream{Engine()};
  PrimitiveArgsMap args;  // onednn_primitive_args.h
};

Bf16Scratch::Bf16Scratch() = default;
Bf16Scratch::~Bf16Scratch() = default;
Bf16Scratch::Bf16Scratch(Bf16Scratch&&) noexcept = default;
Bf16Scratch& Bf16Scratch::operator=(Bf16Scratch&&) noexcept = default;

struct Bf16Linear::Impl {
  struct Prim {
    dnnl::matmul matmul;
    memory::desc src, dst, pad;
  };
  memory weights;
  memory bias;  // [1 x n] fp32 when options.bias was given
  Bf16LinearOptions options;
  std::vector<Prim> full;  // full[i]: M = 16 (i + 1)
  std::vector<Prim> tail;  // tail[i]: M = i + 1
  size_t pad_bytes = 0;    // largest scratchpad of any primitive

  // y: float for an fp32 output, uint16_t (bf16) for options.bf16_output.
  void Exec(const Prim& p, const uint16_t* a, void* y, Bf16Scratch::State* s) const {
    PrimitiveArgs& args = ArgsFor(p, {&full, &tail}, Engine(), &s->args);
    args.src.set_data_handle(const_cast<uint16_t*>(a));
    args.dst.set_data_handle(y);
    args.pad.set_data_handle(s->pad.data());
    // The C call takes the arguments from the stack; the C++ one builds a hash map per call.
    const dnnl_exec_arg_t exec_args[] = {{DNNL_ARG_SRC, args.src.get()},
                                         {DNNL_ARG_WEIGHTS, weights.get()},
                                         {DNNL_ARG_DST, args.dst.get()},
                                         {DNNL_ARG_SCRATCHPAD, args.pad.get()},
                                         {DNNL_ARG_BIAS, bias ? bias.get() : nullptr}};
    const int nargs = bias ? 5 : 4;
    dnnl::error::wrap_c_api(
        dnnl_primitive_execute(p.matmul.get(), s->stream.get(), nargs, exec_args),
        "could not execute a matmul");
  }
};

bool Bf16MatmulNative() {
  static const bool usable = [] {
    try {
      return IsNativeBf16(MatmulDesc(kBlockRows, 384, 384, AnyWeightsDesc(384, 384)));
    } catch (const dnnl::error&) {
      return false;
    }
  }();
  return usable;
}

std::string Bf16MatmulInfo() {
  const dnnl_version_t* v = dnnl_version();
  std::string impl;
  try {
    impl = MatmulDesc(kBlockRows, 384, 384, AnyWeightsDesc(384, 384)).impl_info_str();
  } catch (const dnnl::error& e) {
    impl = e.what();
  }
  return absl::StrCat("oneDNN ", v->major, ".", v->minor, ".", v->patch, " ", impl);
}

Bf16Linear::Bf16Linear(int n, int k, std::unique_ptr<Impl> impl)
    : n_(n), k_(k), impl_(std::move(impl)) {}
Bf16Linear::~Bf16Linear() = default;

absl::StatusOr<std::unique_ptr<Bf16Linear>> Bf16Linear::Create(const float* w, int n, int k,
                                                               const Bf16LinearOptions& options) {
  if (options.accumulate && options.bf16_output) {
    return absl::InvalidArgumentError("Bf16Linear: accumulate needs an fp32 output");
  }
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  omp_set_num_threads(1);  // the reorder below too: no OpenMP team idling beside our own
  try {
    // The layout is the one oneDNN prefers for the largest block; every other M is then asked
    // for that same layout, since all primitives share the one reordered copy. (On AMX every M
    // prefers it anyway; for tiny shapes oneDNN may pick a non-AMX kernel, which is fine.)
    const dnnl::matmul::primitive_desc largest = MatmulDesc(kBlockRows, n, k, AnyWeightsDesc(n, k));
    if (!IsNativeBf16(largest)) {
      return absl::FailedPreconditionError(
          absl::StrCat("oneDNN has no native (AMX or AVX512-BF16) bf16 matmul for ", n, " x ", k,
                       " here (", Bf16MatmulInfo(), ")"));
    }
    impl->weights = memory(largest.weights_desc(), Engine());
    auto add = [&](int m, std::vector<Impl::Prim>* to) {
      dnnl::matmul::primitive_desc pd = MatmulDesc(m, n, k, largest.weights_desc(), options);
      impl->pad_bytes = std::max(impl->pad_bytes, pd.scratchpad_desc().get_size());
      to->push_back({dnnl::matmul(pd), pd.src_desc(), pd.dst_desc(), pd.scratchpad_desc()});
    };
    for (int m = kTileRows; m <= kBlockRows; m += kTileRows) add(m, &impl->full);
    for (int m = 1; m < kTileRows; ++m) add(m, &impl->tail);
    // PyTorch's [n x k] row-major is the logical k x n matrix in column-major order ("ba");
    // the reorder rounds it to bf16 (nearest even) into the primitives' layout.
    memory user(memory::desc({k, n}, memory::data_type::f32, memory::format_tag::ba), Engine(),
                const_cast<float*>(w));
    dnnl::stream stream(Engine());
    dnnl::reorder(user, impl->weights).execute(stream, user, impl->weights);
    stream.wait();
    if (options.bias != nullptr) {
      impl->bias = memory(BiasDesc(n), Engine());
      std::memcpy(impl->bias.get_data_handle(), options.bias,
                  static_cast<size_t>(n) * sizeof(float));
    }
    // The epilogue's owner keeps no pointer: the bias was copied.
    impl->options.bias = nullptr;
  } catch (const dnnl::error& e) {
    return absl::InternalError(absl::StrCat("oneDNN bf16 matmul ", n, " x ", k, ": ", e.what()));
  }
  return std::unique_ptr<Bf16Linear>(new Bf16Linear(n, k, std::move(impl)));
}

absl::Status Bf16Linear::Run(const float* x, int rows, float* y, Bf16Scratch* scratch) const {
  if (impl_->options.bf16_output) {
    return absl::FailedPreconditionError("Bf16Linear::Run: this weight writes bf16");
  }
  return Run(Input{x, nullptr}, rows, y, scratch);
}

absl::Status Bf16Linear::Run(const float* x, int rows, uint16_t* y, Bf16Scratch* scratch) const {
  if (!impl_->options.bf16_output) {
    return absl::FailedPreconditionError("Bf16Linear::Run: this weight writes fp32");
  }
  return Run(Input{x, nullptr}, rows, y, scratch);
}

absl::Status Bf16Linear::Run(const uint16_t* a, int rows, float* y, Bf16Scratch* scratch) const {
  if (impl_->options.bf16_output) {
    return absl::FailedPreconditionError("Bf16Linear::Run: this weight writes bf16");
  }
  return Run(Input{nullptr, a}, rows, y, scratch);
}

absl::Status Bf16Linear::Run(const uint16_t* a, int rows, uint16_t* y, Bf16Scratch* scratch) const {
  if (!impl_->options.bf16_output) {
    return absl::FailedPreconditionError("Bf16Linear::Run: this weight writes fp32");
  }
  return Run(Input{nullptr, a}, rows, y, scratch);
}

absl::Status Bf16Linear::Run(Input in, int rows, void* y, Bf16Scratch* scratch) const {
  if (rows <= 0) return absl::OkStatus();
  try {
    RunOrThrow(in, rows, y, scratch);
  } catch (const dnnl::error& e) {
    return absl::InternalError(absl::StrCat("oneDNN bf16 matmul ", n_, " x ", k_, ": ", e.what()));
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError("out of memory for the bf16 matmul scratch");
  }
  return absl::OkStatus();
}

void Bf16Linear::RunOrThrow(Input in, int rows, void* y, Bf16Scratch* scratch) const {
  // oneDNN (OpenMP build in Debian) would otherwise start an OpenMP team on every calling
  // thread, oversubscribing the cores our own team already uses. Per-thread setting; cheap.
  omp_set_num_threads(1);
  if (!scratch->state_) scratch->state_ = std::make_unique<Bf16Scratch::State>();
  Bf16Scratch::State* s = scratch->state_.get();
  const size_t block = static_cast<size_t>(std::min(rows, kBlockRows)) * k_;
  if (in.bf16 == nullptr && s->a.size() < block) s->a.resize(block);
  const size_t y_bytes = impl_->options.bf16_output ? sizeof(uint16_t) : sizeof(float);
  if (s->pad.size() < impl_->pad_bytes) s->pad.resize(impl_->pad_bytes);
  for (int r0 = 0; r0 < rows; r0 += kBlockRows) {
    const int m = std::min(kBlockRows, rows - r0);
    const uint16_t* a = in.bf16 + static_cast<size_t>(r0) * k_;
    if (in.bf16 == nullptr) {
      ConvertRows(in.f32 + static_cast<size_t>(r0) * k_, m, k_, s->a.data());
      a = s->a.data();
    }
    const int full = m / kTileRows * kTileRows;
    char* yb = static_cast<char*>(y) + static_cast<size_t>(r0) * n_ * y_bytes;
    if (full > 0) impl_->Exec(impl_->full[full / kTileRows - 1], a, yb, s);
    if (m > full) {
      impl_->Exec(impl_->tail[m - full - 1], a + static_cast<size_t>(full) * k_,
                  yb + static_cast<size_t>(full) * n_ * y_bytes, s);
    }
  }
}

}  // namespace tipperary::model::internal
