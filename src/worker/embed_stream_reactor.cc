#include "embed_stream_reactor.h"

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "admission.h"
#include "ordered_stream_reactor.h"
#include "request_priority.h"
#include "rpc_support.h"
#include "tipperary/common/tsan.h"

namespace tipperary::worker {
namespace {

// --------------------------------------------------------------------------------------------
// EmbedStream: the texts in chunks, a few chunks in the batcher at a time, written in order.

class EmbedStreamReactor
    : public OrderedStreamReactor<grpc::ServerWriteReactor<pb::EmbedResponse>> {
 public:
  static constexpr size_t kWindow = 4;  // Chunks submitted ahead of the one being written.

  EmbedStreamReactor(WorkerCore& core, grpc::CallbackServerContext* context)
      : OrderedStreamReactor(core, context) {}

  void Start(const pb::EmbedRequest& request) {
    absl::StatusOr<std::shared_ptr<ModelRuntime>> admitted = Admit(core_, request.model());
    absl::Status status = admitted.status();
    if (admitted.ok()) model_ = *admitted;
    if (status.ok()) {
      options_ = OptionsOf(request);
      options_.priority = ResolvePriority(options_.priority, context_->client_metadata());
      size_t chunk = request.chunk_size() > 0 ? static_cast<size_t>(request.chunk_size())
                                              : core_.config()->stream_chunk_size;
      std::vector<std::string> texts = TextsOf(request);
      if (texts.empty()) status = absl::InvalidArgumentError("no input texts");
      // Tokenise everything up front so that a bad text fails the call before any output.
      for (size_t start = 0; status.ok() && start < texts.size(); start += chunk) {
        size_t end = std::min(texts.size(), start + chunk);
        std::vector<std::string> part(std::make_move_iterator(texts.begin() + start),
                                      std::make_move_iterator(texts.begin() + end));
        size_t index = chunks_.size();
        absl::StatusOr<std::shared_ptr<EmbedTask>> task =
            core_.MakeTask(*model_, EmbedInputs::Texts(std::move(part)), options_, cancelled_,
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
    Step([&] { PumpLocked(); });
  }

 private:
  struct Chunk {
    std::shared_ptr<EmbedTask> task;
    int first_index;
  };

  // On a batcher thread, which holds no reference to the call.
  void OnChunkDone(size_t index, EmbedTask& task) {
    Step([&] {
      if (pb::EmbedResponse* slot = out_.Completed(index, task)) {
        FillEmbedResponse(*model_, task, options_, chunks_[index].first_index, slot);
        timing_.Add(*model_, task);
      }
      chunks_[index].task.reset();  // Its vectors are copied; free them early.
    });
  }

  // Submits chunks while the window ahead of the one being written has room.
  void PumpLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) override {
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

  Expected ExpectedLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) override {
    return {chunks_.size(), /*final=*/true};
  }
  std::string ModelNameLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) override {
    return model_->name();
  }

  // The call's model for all its chunks (a reload does not move a call to another one).
  std::shared_ptr<ModelRuntime> model_;
  EmbedOptions options_;
  batcher::TimePoint deadline_ = batcher::TimePoint::max();
  std::vector<Chunk> chunks_;                    // Fixed once Start() has tokenised.
  size_t next_submit_ ABSL_GUARDED_BY(mu_) = 0;  // out_ is indexed by chunk.
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
