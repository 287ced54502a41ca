// Internal: int8 GEMMs for the CPU encoder's dense layers (dtype: int8), run by oneDNN's matmul
// primitive on Intel AMX-INT8 (or AVX-512 VNNI where AMX is absent).
//
// Quantization: weights once, at load, symmetric per output channel (s8, scale max|w_n| / 127);
// activations on every call, symmetric per row (s8, scale max|x_m| / 127). Products accumulate
// exactly in s32; the primitive writes the sums as fp32 and one pass over each output row
// multiplies them by row scale x channel scale. (oneDNN 2.6's AMX-INT8 matmul takes per-channel
// scales only as constants fixed at creation, so every weight would JIT its own ~31 primitives
// instead of sharing one set per shape; runtime scales drop it to a slow non-AMX gemm; and it
// has no per-row scales at all.) The bias stays where the bf16 path has it: fused into the
// element-wise pass that follows each GEMM (bias + GELU, bias + residual + LayerNorm).
//
// Why per row rather than per tensor: a row's scale depends only on that token, so a text's
// embedding does not change with the batch the batcher happened to put it in, and one outlier
// token (BERT has a few, e.g. [SEP]) does not flatten the resolution of all the others. The row
// pass costs one read and write of the fp32 output (k = 384..1536 times less work than the GEMM).
//
// Shapes: as Bf16Linear (onednn_gemm.h), fixed-M primitives for M = 16, 32, ..., 256 and tails
// 1..15, since oneDNN 2.6 picks its AMX kernels only for a fixed M.
//
//   if (Int8MatmulUsable()) {
//     auto w = Int8Linear::Create(torch_weight, out, in);   // [out x in], row-major
//     (*w)->Run(x, rows, y, &scratch);                      // y ~= x w^T, fp32
//   }
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace tipperary::model::internal {

// True when oneDNN runs an s8 x s8 matmul here on AMX-INT8 or AVX-512 VNNI (not on a plain
// AVX-512/AVX2 kernel, which would be slower than bf16 or fp32 and may saturate). Checked once
// per process.
bool Int8MatmulUsable();

// oneDNN's version and the implementation it picks for an int8 matmul, for logs and errors.
std::string Int8MatmulInfo();

// Symmetric s8 quantization of rows [rows x k]: scales[r] = max|x_r| / 127 (1 for an all-zero
// row), q = round-to-nearest-even(x / scale) clamped to [-127, 127]. Exposed for the tests.
void QuantizeRowsS8(const float* x, int rows, int k, int8_t* q, float* scales);

// Per-thread state for Int8Linear::Run (s8 activations, row scales, oneDNN scratchpad, stream and
// memory objects). One per thread; must not outlive the Int8Linear objects it was used with.
class Int8Scratch {
 public:
  Int8Scratch();
  ~Int8Scratch();
  Int8Scratch(Int8Scratch&&) noexcept;
  Int8Scratch& operator=(Int8Scratch&&) noexcept;

 private:
  friend class Int8Linear;
  struct State;
  std::unique_ptr<State> state_;
};

// A PyTorch Linear weight [n x k] quantized to s8 per output channel (QuantizeRowsS8 of its n
// rows: a row of a PyTorch weight is one output channel), in oneDNN's preferred layout, with its
// primitives.
class Int8Linear {
 public:
  // Fails if oneDNN has no AMX-INT8/VNNI primitive for this shape.
  static absl::StatusOr<std::unique_ptr<Int8Linear>> Create(const float* w, int n, int k);
  ~Int8Linear();

  int n() const { return n_; }
  int k() const { return k_; }
  // y[rows x n] (row stride n) ~= x[rows x k] (row stride k) * w^T, as
  // y[m][c] = row_scale[m] * w_scale[c] * sum_i qx[m][i] qw[c][i]. Runs on the calling thread
  // only; thread-safe across threads with distinct scratches. Never throws.
  absl::Status Run(const float* x, int rows, float* y, Int8Scratch* scratch) const;

 private:
  struct Impl;
  Int8Linear(int n, int k, std::unique_ptr<Impl> impl);
  void RunOrThrow(const float* x, int rows, float* y, Int8Scratch* scratch) const;
  const int n_, k_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tipperary::model::internal
