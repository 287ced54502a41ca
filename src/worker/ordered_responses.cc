#include "ordered_responses.h"

namespace tipperary::worker {

pb::EmbedResponse* OrderedResponses::Completed(size_t sequence, const EmbedTask& task) {
  --in_flight_;
  if (!task.status().ok()) {
    if (error_.ok() || (error_.code() == absl::StatusCode::kCancelled &&
                        task.status().code() != absl::StatusCode::kCancelled)) {
      error_ = task.status();
    }
    return nullptr;
  }
  if (!error_.ok()) return nullptr;
  inputs_ += static_cast<int64_t>(task.size());
  tokens_ += task.total_tokens();
  return &ready_[sequence];
}

bool OrderedResponses::WriteDone(bool ok) {
  writing_ = false;
  ready_.erase(next_write_);
  ++next_write_;
  if (ok || !error_.ok()) return false;
  error_ = absl::CancelledError("the client went away");
  return true;
}

OrderedResponses::Step OrderedResponses::Advance(size_t total, bool total_is_final) {
  if (finished_ || writing_) return Step::kWait;
  if (error_.ok()) {
    if (ready_.contains(next_write_)) {
      writing_ = true;
      return Step::kWrite;
    }
    if (!total_is_final || next_write_ < total) return Step::kWait;
  }
  if (in_flight_ > 0) return Step::kWait;
  finished_ = true;
  return Step::kFinish;
}

}  // namespace tipperary::worker
