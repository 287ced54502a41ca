// What the two streaming RPCs (EmbedStream, EmbedBidi) share: responses whose tasks finish out
// of order, written in order one at a time, the call's first error, and its input/token counts.
// Not thread-safe: the owning reactor guards it with its own mutex and turns Advance()'s answer
// into StartWrite() or Finish().
//
//   out_.Submitted();                               // before model->Submit(task)
//   if (pb::EmbedResponse* slot = out_.Completed(sequence, task)) Fill(slot);
//   switch (out_.Advance(total, total_is_final)) { case kWrite: StartWrite(out_.writing()); ... }
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>

#include "absl/status/status.h"
#include "embed_task.h"
#include "embedding_service.h"

namespace tipperary::worker {

class OrderedResponses {
 public:
  enum class Step { kWait, kWrite, kFinish };

  // A task is about to be submitted; counted first because it may complete at once, on another
  // thread that then waits for the reactor's mutex.
  void Submitted() { ++in_flight_; }
  // The submission failed: the task will never complete.
  void SubmitFailed(const absl::Status& status) {
    --in_flight_;
    Fail(status);
  }

  // Task `sequence` finished. Returns the slot to fill with its response when it worked and the
  // call has not failed (its inputs and tokens are counted), else null. A real failure replaces
  // the CANCELLED it caused in sibling tasks, so the root cause is what the client sees.
  pb::EmbedResponse* Completed(size_t sequence, const EmbedTask& task);

  // The write of the current response finished; `ok` false means the client went away. Returns
  // true when that became the call's error (the caller then cancels the remaining tasks).
  bool WriteDone(bool ok);

  // The first error wins; later ones are consequences.
  void Fail(const absl::Status& status) {
    if (error_.ok()) error_ = status;
  }

  // What the reactor does next, given `total` responses expected so far and whether that number
  // is final: write the next response in order (writing() names it), finish the call (once,
  // when nothing is in flight and everything was written or an error happened), or wait.
  Step Advance(size_t total, bool total_is_final);

  const pb::EmbedResponse* writing() const { return &ready_.at(next_write_); }
  size_t next_write() const { return next_write_; }
  bool finished() const { return finished_; }
  const absl::Status& error() const { return error_; }
  int64_t inputs() const { return inputs_; }
  int64_t tokens() const { return tokens_; }

 private:
  std::map<size_t, pb::EmbedResponse> ready_;  // Done, not yet written.
  size_t next_write_ = 0;
  size_t in_flight_ = 0;
  bool writing_ = false;
  bool finished_ = false;
  absl::Status error_;
  int64_t inputs_ = 0;
  int64_t tokens_ = 0;
};

}  // namespace tipperary::worker
