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
  // Summed over the task's batches (which run in parallel on several instances).
  std::chrono::nanoseconds compute_time() const { return compute_time_; }
  // Wall-clock time the model spent on the task: from the start of its first batch to the end
  // of its last, a batch counted from no earlier than the task's creation (a text that joined a
  // computation already running shares only its rest), so never more than the call's own
  // duration; 0 when every text came from the cache.
  std::chrono::nanoseconds inference_span() const {
    return batch_sequences_.empty() ? std::chrono::nanoseconds(0) : last_end_ - first_start_;
  }
  int batches() const { return static_cast<int>(batch_sequences_.size()); }
  // The first batch's start and the last one's end (inference_span() apart); meaningful only
  // when batches() > 0.
  std::chrono::steady_clock::time_point inference_start() const { return first_start_; }
  std::chrono::steady_clock::time_point inference_end() const { return last_end_; }

  // Set by MakeTask: the time the texts took to tokenise, and their characters (Unicode code
  // points, as TEI's x-compute-characters; -1 when the input was token ids).
  std::chrono::nanoseconds tokenization_time() const { return tokenization_time_; }
  void set_tokenization_time(std::chrono::nanoseconds time) { tokenization_time_ = time; }
  int64_t characters() const { return characters_; }
  void set_characters(int64_t characters) { characters_ = characters; }

 private:
  const std::vector<std::vector<int32_t>> ids_;
  const std::vector<bool> truncated_;
  const std::shared_ptr<std::atomic<bool>> cancelled_;
  Done done_;
  const int64_t special_tokens_;
  batcher::Priority priority_ = batcher::Priority::kInteractive;
  std::chrono::nanoseconds tokenization_time_{0};
  int64_t characters_ = -1;
  // No batch span of the task starts before this (inference_span()).
  const std::chrono::steady_clock::time_point created_ = std::chrono::steady_clock::now();

  int dim_ = 0;
  // Rows are written by whichever executor thread ran them; distinct rows never overlap.
  std::vector<float> vectors_;

  absl::Mutex mu_;
  size_t remaining_ ABSL_GUARDED_BY(mu_);
  absl::Status status_ ABSL_GUARDED_BY(mu_);
  std::chrono::nanoseconds max_queue_time_ ABSL_GUARDED_BY(mu_){0};
  std::chrono::nanoseconds compute_time_ ABSL_GUARDED_BY(mu_){0};
  std::vector<uint64_t> batch_sequences_ ABSL_GUARDED_BY(mu_);
  std::chrono::steady_clock::time_point first_start_ ABSL_GUARDED_BY(mu_);
  std::chrono::steady_clock::time_point last_end_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tipperary::worker
