// The batch shapes a model runs before it reports ready (models[].warmup), so that the first
// requests after /readyz do not pay for what the first batch of a shape costs: the encoders'
// grow-only scratch, the CPU thread team's first wake-up, the oneDNN/OpenBLAS code paths of each
// GEMM size, cuBLAS's algorithm choice and lazily loaded CUDA kernels, first touches of the
// weights' pages.
//
//   for (const WarmupShape& shape : WarmupShapes("all", 32, 16384, 256)) {
//     encoder.Encode(WarmupBatch(shape, cls, filler, sep), &out);
//   }
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tipperary::worker {

// `batch` texts of `length` tokens each ([CLS] and [SEP] included).
struct WarmupShape {
  int batch = 0;
  int length = 0;

  int64_t tokens() const { return static_cast<int64_t>(batch) * length; }
  bool operator==(const WarmupShape&) const = default;
};

// The shapes for a models[].warmup mode:
//   "all": every bucket the batcher can form, as powers of two: lengths 2 ([CLS][SEP]), 4, 8 ...
//     up to max_seq_length (which is a bucket itself), by batch sizes 1, 2, 4 ... up to
//     max_batch_size (also a bucket), those that fit max_batch_tokens (batch x length), plus
//     for each length the fullest batch the token budget allows (the batch a busy queue forms)
//     and a lone text of every length (which always forms a batch, whatever the budget).
//     Ascending by length, then batch size.
//   "minimal": one batch of two 2-token texts (a broken backend still fails at start).
//   "none": nothing.
// Any other mode: nothing (the loader accepts only these three).
std::vector<WarmupShape> WarmupShapes(const std::string& mode, int max_batch_size,
                                      int max_batch_tokens, int max_seq_length);

// The token ids of one shape: `shape.batch` copies of [cls, filler..., sep], each shape.length
// long (at least 2).
std::vector<std::vector<int32_t>> WarmupBatch(const WarmupShape& shape, int32_t cls, int32_t filler,
                                              int32_t sep);

}  // namespace tipperary::worker
