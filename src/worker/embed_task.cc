#include "embed_task.h"

#include <algorithm>
#include <cstring>

namespace tipperary::worker {

void EmbedTask::CompleteItem(uint32_t index, const float* row, const absl::Status& status,
                             std::chrono::nanoseconds queue_time, uint64_t batch_sequence,
                             std::chrono::nanoseconds compute_time) {
  if (row != nullptr && index < ids_.size()) {
    std::memcpy(vectors_.data() + static_cast<size_t>(index) * dim_, row, sizeof(float) * dim_);
  }
  bool last = false;
  {
    absl::MutexLock lock(&mu_);
    if (!status.ok() && status_.ok()) {
      status_ = status;
      if (cancelled_) cancelled_->store(true, std::memory_order_release);
    }
    max_queue_time_ = std::max(max_queue_time_, queue_time);
    if (batch_sequence != 0 && std::find(batch_sequences_.begin(), batch_sequences_.end(),
                                         batch_sequence) == batch_sequences_.end()) {
      // A batch's items complete as it ends, so it ran from now - compute_time to now; a text
      // that joined a computation running before this task existed (in-flight dedup) shares it
      // only from the task's creation on, or a call's inference time could exceed its own.
      const auto end = std::chrono::steady_clock::now();
      const auto start = std::max(end - compute_time, created_);
      if (batch_sequences_.empty() || start < first_start_) first_start_ = start;
      if (batch_sequences_.empty() || end > last_end_) last_end_ = end;
      batch_sequences_.push_back(batch_sequence);
      compute_time_ += compute_time;
    }
    last = --remaining_ == 0;
  }
  // The mutex is released first: `done` may destroy the owner of this task's last reference
  // holder (the reactor), never the task itself (the caller holds a reference).
  if (last) done_(*this);
}

}  // namespace tipperary::worker
