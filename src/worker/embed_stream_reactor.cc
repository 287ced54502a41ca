#include "embed_stream_reactor.h"

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "admission.h"
#include "ordered_responses.h"
#include "rpc_support.h"
#include "tipperary/common/tsan.h"

namespace tipperary::worker {
namespace {

// --------------------------------------------------------------------------------------------
// EmbedStream: the texts in chunks, a few chunks in the batcher at a time, written in order.

class EmbedStreamReactor : public grpc::ServerWriteReactor<pb::EmbedResponse> {
 public:
  static constexpr size_t kWindow = 4;  // Chunks submitted ahead of the one being written.

  EmbedStreamReactor(WorkerCore& core, grpc::CallbackServerContext* context)
      : core_(core), context_(context), cancelled_(std::make_shared<std::atomic<bool>>(false)) {}

  void Start(const pb::EmbedRequest& request) {
    absl::StatusOr<ModelRuntime*> admitted = Admit(core_, request.model());
    absl::Status status = admitted.status();
    if (admitted.ok()) model_ = *admitted;
    if (status.ok()) {
      options_ = OptionsOf(request);
      size_t chunk = request.chunk_size() > 0 ? static_cast<size_t>(request.chunk_size())
                                              : core_.config().stream_chunk_size;
      std::vector<std::string> texts = TextsOf(request);
      if (texts.empty()) status = absl::InvalidArgumentError("no input texts");
      // Tokenise everything up front so that a bad text fails the call before any output.
      for (size_t start = 0; status.ok() && start < texts.size(); start += chunk) {
        size_t end = std::min(texts.size(), start + chunk);
        std::vector<std::string> part(std::make_move_iterator(texts.begin() + start),
                                      std::make_move_iterator(texts.begin() + end));
        size_t index = chunks_.size();
        absl::StatusOr<std::shared_ptr<EmbedTask>> task =
            core_.MakeTask(*model_, part, options_, cancelled_,
                           [this, index](EmbedTask& done) { OnChunkDone(index, done); });
        if (!task.ok()) {
          status = task.status();
          if (start > 0) {
            status = absl::Status(status.code(), absl::StrCat("in the chunk of texts from ", start,
                                                              ": ", status.message()));
          }
          break;
        }
        chunks_.push_back({*std::move(task), static_cast<int>(start)});
      }
    }
    if (!status.ok()) {
      core_.RecordRequest(model_ ? model_->name() : ModelLabel(core_, request.model()),
                          status.code(), 0, 0);
      FinishCall(*this, ToGrpc(status));
      return;
    }
    deadline_ = ToBatcherDeadline(context_->deadline());
    std::optional<grpc::Status> finish;
    {
      absl::MutexLock lock(&mu_);
      SubmitMoreLocked();
      finish = MaybeFinishLocked();
    }
    if (finish) FinishCall(*this, *std::move(finish));
  }

  void OnWriteDone(bool ok) override {
    std::optional<grpc::Status> finish;
    {
      absl::MutexLock lock(&mu_);
      if (out_.WriteDone(ok)) cancelled_->store(true);
      SubmitMoreLocked();
      finish = MaybeFinishLocked();
    }
    if (finish) FinishCall(*this, *std::move(finish));
  }

  // gRPC runs OnCancel (if at all) before OnDone, but orders the two inside libgrpc++.
  void OnCancel() override {
    cancelled_->store(true, std::memory_order_release);
    common::HappensBefore(this);
  }
  void OnDone() override {
    common::HappensAfter(this);
    delete this;
  }

 private:
  struct Chunk {
    std::shared_ptr<EmbedTask> task;
    int first_index;
  };

  // On a batcher thread, which holds no reference to the call: once Finish() is called, gRPC may
  // run OnDone (delete this) on its own thread at any time, so Finish comes after the unlock.
  void OnChunkDone(size_t index, EmbedTask& task) {
    std::optional<grpc::Status> finish;
    {
      absl::MutexLock lock(&mu_);
      if (pb::EmbedResponse* slot = out_.Completed(index, task)) {
        FillEmbedResponse(*model_, task, options_, chunks_[index].first_index, slot);
      }
      chunks_[index].task.reset();  // Its vectors are copied; free them early.
      finish = MaybeFinishLocked();
    }
    if (finish) FinishCall(*this, *std::move(finish));
  }

  void SubmitMoreLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    while (out_.error().ok() && next_submit_ < chunks_.size() &&
           next_submit_ < out_.next_write() + kWindow) {
      out_.Submitted();
      absl::Status status = model_->Submit(chunks_[next_submit_].task, deadline_);
      if (!status.ok()) {
        out_.SubmitFailed(status);
        cancelled_->store(true);
        return;
      }
      ++next_submit_;
    }
  }

  // Writes the next response when it is ready. Once nothing is in flight and either every
  // chunk is written or an error happened, returns the status to finish the call with: the
  // caller calls Finish() after releasing mu_ (OnDone may delete this as soon as it is called).
  std::optional<grpc::Status> MaybeFinishLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    switch (out_.Advance(chunks_.size(), /*total_is_final=*/true)) {
      case OrderedResponses::Step::kWrite:
        StartWrite(out_.writing());
        break;
      case OrderedResponses::Step::kFinish:
        core_.RecordRequest(model_->name(), out_.error().code(), out_.inputs(), out_.tokens());
        return ToGrpc(out_.error());
      case OrderedResponses::Step::kWait:
        break;
    }
    return std::nullopt;
  }

  WorkerCore& core_;
  grpc::CallbackServerContext* const context_;
  const std::shared_ptr<std::atomic<bool>> cancelled_;
  ModelRuntime* model_ = nullptr;
  EmbedOptions options_;
  batcher::TimePoint deadline_ = batcher::TimePoint::max();
  std::vector<Chunk> chunks_;  // Fixed once Start() has tokenised.

  absl::Mutex mu_;
  size_t next_submit_ ABSL_GUARDED_BY(mu_) = 0;
  OrderedResponses out_ ABSL_GUARDED_BY(mu_);  // Indexed by chunk.
};

}  // namespace

grpc::ServerWriteReactor<pb::EmbedResponse>* StartEmbedStream(WorkerCore& core,
                                                              grpc::CallbackServerContext* context,
                                                              const pb::EmbedRequest& request) {
  auto* reactor = new EmbedStreamReactor(core, context);
  reactor->Start(request);
  return reactor;
}

}  // namespace tipperary::worker
