// One submission to a model's batcher: N tokenised texts whose pooled vectors come back in
// request order. The batcher's callbacks complete items one by one (from its threads); when
// the last one is in, `done` runs once, on the thread that completed it.
//
//   auto task = std::make_shared<EmbedTask>(std::move(ids), truncated, cancelled, done);
//   absl::Status s = runtime.Submit(task, deadline);   // on error `done` never runs
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "tipperary/batcher/batch.h"

namespace tipperary::worker {

class EmbedTask {
 public:
  using Done = std::function<void(EmbedTask&)>;

  // `special_tokens`: how many of the ids the tokenizer's template added ([CLS], [SEP]).
  EmbedTask(std::vector<std::vector<int32_t>> ids, std::vector<bool> truncated,
            std::shared_ptr<std::atomic<bool>> cancelled, Done done, int64_t special_tokens = 0)
      : ids_(std::move(ids)),
        truncated_(std::move(truncated)),
        cancelled_(std::move(cancelled)),
        done_(std::move(done)),
        special_tokens_(special_tokens),
        remaining_(ids_.size()) {}

  const std::vector<std::vector<int32_t>>& ids() const { return ids_; }
  const std::vector<bool>& truncated() const { return truncated_; }
  const std::shared_ptr<std::atomic<bool>>& cancelled() const { return cancelled_; }
  // The batching lane of every text of the task; set before it is submitted.
  batcher::Priority priority() const { return priority_; }
  void set_priority(batcher::Priority priority) { priority_ = priority; }
  size_t size() const { return ids_.size(); }
  // Every token the model sees, special tokens included.
  int64_t total_tokens() const {
    int64_t n = 0;
    for (const auto& row : ids_) n += static_cast<int64_t>(row.size());
    return n;
  }
  // The input's own tokens: total_tokens() less the special tokens the template added, which is
  // what OpenAI's usage counts (its tokenizers add none), for a text and its token ids alike.
  int64_t input_tokens() const { return total_tokens() - special_tokens_; }

  // Sized by the runtime before submission: size() x dim pooled, unnormalised vectors.
  void Allocate(int dim) {
    dim_ = dim;
    vectors_.assign(ids_.size() * static_cast<size_t>(dim), 0.0f);
  }

  // Called by the runtime for every item exactly once. `row` (dim floats) is null on error.
  // The first error wins; it also sets the cancelled flag so the rest of the work is skipped.
  void CompleteItem(uint32_t index, const float* row, const absl::Status& status,
                    std::chrono::nanoseconds queue_time, uint64_t batch_sequence,
                    std::chrono::nanoseconds compute_time);

  // Valid inside `done`.
  const absl::Status& status() const { return status_; }
  int dim() const { return dim_; }
  const float* vector(size_t i) const { return vectors_.data() + i * static_cast<size_t>(dim_); }
  std::chrono::nanoseconds max_queue_time() const { return max_queue_time_; }
  std::chrono::nanoseconds compute_time() const { return compute_time_; }
  int batches() const { return static_cast<int>(batch_sequences_.size()); }

 private:
  const std::vector<std::vector<int32_t>> ids_;
  const std::vector<bool> truncated_;
  const std::shared_ptr<std::atomic<bool>> cancelled_;
  Done done_;
  const int64_t special_tokens_;
  batcher::Priority priority_ = batcher::Priority::kInteractive;

  int dim_ = 0;
  // Rows are written by whichever executor thread ran them; distinct rows never overlap.
  std::vector<float> vectors_;

  absl::Mutex mu_;
  size_t remaining_ ABSL_GUARDED_BY(mu_);
  absl::Status status_ ABSL_GUARDED_BY(mu_);
  std::chrono::nanoseconds max_queue_time_ ABSL_GUARDED_BY(mu_){0};
  std::chrono::nanoseconds compute_time_ ABSL_GUARDED_BY(mu_){0};
  std::vector<uint64_t> batch_sequences_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tipperary::worker
