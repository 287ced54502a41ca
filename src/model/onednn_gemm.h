// Internal: bf16 GEMMs for the CPU encoder's dense layers (dtype: bfloat16), run by oneDNN's
// matmul primitive on Intel AMX or, without AMX, on AVX512-BF16 (Cooper Lake, AMD Zen 4 and newer).
//
// Why AMX: on this class of CPU (Sapphire/Emerald Rapids) the AMX tile unit multiplies bf16 an
// order of magnitude faster than AVX-512 fp32 FMAs. AVX512-BF16's VDPBF16PS does two products per
// fp32 lane: oneDNN's brgemm ran ~215 GFLOP/s per core on a Zen 4 against ~110 for its fp32 one
// (docs/benchmarks.md, "bf16 without AMX"). and the weights are half the bytes, which is
// what batch-1 latency is made of. Products are exact in fp32 and accumulate in fp32, so only the
// rounding of both operands to bf16 (to nearest even) costs accuracy.
//
// Why oneDNN (Debian's libdnnl-dev) rather than our own tile kernel: it is the kept library for
// exactly this, and it measured within 15 % of the kernel it replaced end to end (batch 1 x 16:
// +10 %, 32 x 128: +6 %; GEMMs alone at par): docs/benchmarks.md, "bf16 GEMMs: oneDNN".
//
// Weights are reordered once, at load, into the layout the primitive prefers. oneDNN 2.6 picks
// its AMX kernel only for a fixed M (a runtime M falls back to a slower non-AMX gemm), so each
// weight holds primitives for M = 16, 32, ..., 256 and for tails M = 1..15, created at load
// (the JIT runs once per shape; oneDNN's primitive cache shares them between same-shaped
// weights). A call is cut into blocks of up to 256 rows, each run as one multiple of 16 plus a
// tail. Activations are rounded to bf16 into the caller's scratch (oneDNN 2.6 matmul has no
// f32 x bf16 mix).
//
//   if (Bf16MatmulNative()) {
//     auto w = Bf16Linear::Create(torch_weight, out, in);   // [out x in], row-major
//     (*w)->Run(x, rows, y, &scratch);                      // y = x w^T, fp32
//   }
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace tipperary::model::internal {

// True when oneDNN multiplies bf16 natively here: on AMX (the CPU has AMX-BF16 and the kernel
// granted this process the tile state, Linux >= 5.16) or with AVX512-BF16. Checked once per
// process, by creating a primitive and asking which implementation oneDNN chose.
bool Bf16MatmulNative();

// oneDNN's version and the implementation it picks for a bf16 matmul, for logs.
std::string Bf16MatmulInfo();

// Per-thread state for Bf16Linear::Run: bf16 activations, oneDNN's scratchpad and stream, and
// the memory objects of each primitive it ran (keyed by address). One per thread that calls Run;
// not shared; must not outlive the Bf16Linear objects it was used with.
class Bf16Scratch {
 public:
  Bf16Scratch();
  ~Bf16Scratch();
  Bf16Scratch(Bf16Scratch&&) noexcept;
  Bf16Scratch& operator=(Bf16Scratch&&) noexcept;

 private:
  friend class Bf16Linear;
  struct State;
  std::unique_ptr<State> state_;
};

// What a Bf16Linear does to its fp32 accumulators before storing them, inside oneDNN's kernel
// (post-ops): no separate pass over the output. For the feed-forward's first GEMM, whose
// output only feeds the second: bias, GELU (erf), then bf16, which the second reads directly.
struct Bf16LinearOptions {
  const float* bias = nullptr;  // [n], added first; copied at Create
  bool gelu = false;            // exact GELU (erf), as BERT's
  bool bf16_output = false;     // y is bf16 (nearest even) instead of fp32
  bool accumulate = false;      // y += the result (fp32 y): a residual added inside the kernel
};

// A PyTorch Linear weight [n x k] in bf16, in oneDNN's preferred layout, with its primitives.
class Bf16Linear {
 public:
  // Fails if oneDNN cannot build a native bf16 (AMX or AVX512-BF16) primitive for this shape.
  static absl::StatusOr<std::unique_ptr<Bf16Linear>> Create(const float* w, int n, int k,
                                                            const Bf16LinearOptions& options = {});
  ~Bf16Linear();

  int n() const { return n_; }
  int k() const { return k_; }

  // y[rows x n] (row stride n) = x[rows x k] (row stride k) * w^T. Runs on the calling thread
  // only (oneDNN's OpenMP team is held to 1 thread: the encoder's own team splits the work).
  // Thread-safe across threads with distinct scratches.
  // Never throws: oneDNN's errors (and a failed allocation) come back as a status, so nothing
  // escapes onto the encoder's or the batcher's threads.
  // The output's type is the one options.bf16_output chose at Create (else FailedPrecondition).
  absl::Status Run(const float* x, int rows, float* y, Bf16Scratch* scratch) const;
  absl::Status Run(const float* x, int rows, uint16_t* y, Bf16Scratch* scratch) const;
  // x already in bf16 (row stride k): no rounding pass.
  absl::Status Run(const uint16_t* x, int rows, float* y, Bf16Scratch* scratch) const;
  absl::Status Run(const uint16_t* x, int rows, uint16_t* y, Bf16Scratch* scratch) const;

 private:
  struct Impl;
  struct Input {
    const float* f32;      // rounded to bf16 block by block, or
    const uint16_t* bf16;  // used as is
  };
  Bf16Linear(int n, int k, std::unique_ptr<Impl> impl);
  absl::Status Run(Input in, int rows, void* y, Bf16Scratch* scratch) const;
  void RunOrThrow(Input in, int rows, void* y, Bf16Scratch* scratch) const;
  const int n_, k_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tipperary::model::internal
