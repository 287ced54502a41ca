// The base of the two streaming embedding reactors (EmbedStream: one request, many responses;
// EmbedBidi: many of each). Tasks finish in any order on batcher threads; responses are written
// in task order (OrderedResponses), one at a time, under one mutex. Every event runs as a step:
// the step under the lock, then "write the next response or finish the call", then Finish after
// the unlock, because gRPC may run OnDone (which deletes the reactor) as soon as it is called.
//
//   class MyReactor : public OrderedStreamReactor<grpc::ServerWriteReactor<pb::EmbedResponse>> {
//     void PumpLocked() override { /* start more tasks or reads */ }
//     Expected ExpectedLocked() const override { return {tasks_, /*final=*/true}; }
//     std::string ModelNameLocked() const override { return model_->name(); }
//   };
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "ordered_responses.h"
#include "rpc_support.h"
#include "stream_timing.h"
#include "worker_core.h"

namespace tipperary::worker {

template <typename Base>
class OrderedStreamReactor : public SelfDeletingReactor<Base> {
 public:
  void OnWriteDone(bool ok) override {
    Step([&] {
      if (out_.WriteDone(ok)) this->cancelled_->store(true);
      PumpLocked();
    });
  }

 protected:
  // How many responses the call has so far, and whether that number can still grow.
  struct Expected {
    size_t total;
    bool final;
  };

  OrderedStreamReactor(WorkerCore& core, grpc::CallbackServerContext* context)
      : core_(core), context_(context) {}

  // Starts what the window allows next (task submissions or request reads).
  virtual void PumpLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) = 0;
  virtual Expected ExpectedLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) = 0;
  // The model label the finished call is counted under.
  virtual std::string ModelNameLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) = 0;

  // Runs `step` under mu_, then writes the next response in order or, once nothing is in flight
  // and everything is written or an error happened, counts the call and finishes it (unlocked).
  template <typename Fn>
  void Step(Fn&& step) ABSL_LOCKS_EXCLUDED(mu_) {
    std::optional<grpc::Status> finish;
    {
      absl::MutexLock lock(&mu_);
      step();
      finish = AdvanceLocked();
    }
    if (finish) FinishCall(*this, *std::move(finish));
  }

  WorkerCore& core_;
  grpc::CallbackServerContext* const context_;
  const std::chrono::steady_clock::time_point received_ = std::chrono::steady_clock::now();
  absl::Mutex mu_;
  OrderedResponses out_ ABSL_GUARDED_BY(mu_);
  // Every task whose response is sent adds to it; a successful call sends it as trailers.
  StreamTiming timing_ ABSL_GUARDED_BY(mu_);

 private:
  std::optional<grpc::Status> AdvanceLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const Expected expected = ExpectedLocked();
    switch (out_.Advance(expected.total, expected.final)) {
      case OrderedResponses::Step::kWrite:
        this->StartWrite(out_.writing());
        break;
      case OrderedResponses::Step::kFinish:
        core_.RecordRequest(ModelNameLocked(), out_.error().code(), out_.inputs(), out_.tokens());
        if (out_.error().ok()) {
          // Trailers: the timings are complete only now (stream_timing.h says how they add up).
          for (auto& [key, value] :
               TimingMetadata(timing_.Total(), received_, std::chrono::steady_clock::now())) {
            context_->AddTrailingMetadata(key, value);
          }
        }
        return ToGrpc(out_.error());
      case OrderedResponses::Step::kWait:
        break;
    }
    return std::nullopt;
  }
};

}  // namespace tipperary::worker
