#include "embed_bidi_reactor.h"

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
// EmbedBidi: every request message is one task; responses go out in request order.

class EmbedBidiReactor : public grpc::ServerBidiReactor<pb::EmbedRequest, pb::EmbedResponse> {
 public:
  static constexpr size_t kMaxPending = 8;  // Requests read ahead of their responses.

  EmbedBidiReactor(WorkerCore& core, grpc::CallbackServerContext* context)
      : core_(core), context_(context), cancelled_(std::make_shared<std::atomic<bool>>(false)) {}

  void Start() {
    absl::Status status = core_.Admission();
    std::optional<grpc::Status> finish;
    {
      absl::MutexLock lock(&mu_);
      if (!status.ok()) {
        out_.Fail(status);
        finish = MaybeFinishLocked();
      } else {
        reading_ = true;
        StartRead(&request_);
      }
    }
    if (finish) FinishCall(*this, *std::move(finish));
  }

  void OnReadDone(bool ok) override {
    std::optional<grpc::Status> finish;
    {
      absl::MutexLock lock(&mu_);
      finish = ReadDoneLocked(ok);
    }
    if (finish) FinishCall(*this, *std::move(finish));
  }

  void OnWriteDone(bool ok) override {
    std::optional<grpc::Status> finish;
    {
      absl::MutexLock lock(&mu_);
      if (out_.WriteDone(ok)) cancelled_->store(true);
      MaybeReadLocked();
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
  std::optional<grpc::Status> ReadDoneLocked(bool ok) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    reading_ = false;
    if (!ok) {
      reads_done_ = true;
      return MaybeFinishLocked();
    }
    if (out_.finished() || !out_.error().ok()) return MaybeFinishLocked();
    size_t sequence = next_sequence_++;
    // Checked per message: a stream opened before a drain gets no new work in.
    absl::StatusOr<ModelRuntime*> admitted = Admit(core_, request_.model());
    absl::Status status = admitted.status();
    ModelRuntime* model = admitted.ok() ? *admitted : nullptr;
    if (model_name_.empty())
      model_name_ = model ? model->name() : ModelLabel(core_, request_.model());
    if (status.ok()) {
      EmbedOptions options = OptionsOf(request_);
      absl::StatusOr<std::shared_ptr<EmbedTask>> task =
          core_.MakeTask(*model, TextsOf(request_), options, cancelled_,
                         [this, sequence, model, options](EmbedTask& done) {
                           OnTaskDone(sequence, *model, options, done);
                         });
      status = task.status();
      if (task.ok()) {
        out_.Submitted();
        status = model->Submit(*task, ToBatcherDeadline(context_->deadline()));
        if (!status.ok()) out_.SubmitFailed(status);
      }
    }
    if (!status.ok()) {
      out_.Fail(status);
      cancelled_->store(true);
      return MaybeFinishLocked();
    }
    MaybeReadLocked();
    return std::nullopt;
  }

  // On a batcher thread, which holds no reference to the call: once Finish() is called, gRPC may
  // run OnDone (delete this) on its own thread at any time, so Finish comes after the unlock.
  void OnTaskDone(size_t sequence, const ModelRuntime& model, const EmbedOptions& options,
                  EmbedTask& task) {
    std::optional<grpc::Status> finish;
    {
      absl::MutexLock lock(&mu_);
      if (pb::EmbedResponse* slot = out_.Completed(sequence, task)) {
        FillEmbedResponse(model, task, options, 0, slot);
      } else if (!task.status().ok()) {
        cancelled_->store(true);
      }
      MaybeReadLocked();
      finish = MaybeFinishLocked();
    }
    if (finish) FinishCall(*this, *std::move(finish));
  }

  void MaybeReadLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (reading_ || reads_done_ || out_.finished() || !out_.error().ok()) return;
    if (next_sequence_ - out_.next_write() >= kMaxPending) return;
    reading_ = true;
    StartRead(&request_);
  }

  // As EmbedStreamReactor's: the caller calls Finish() with the result after releasing mu_.
  std::optional<grpc::Status> MaybeFinishLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    switch (out_.Advance(next_sequence_, /*total_is_final=*/reads_done_)) {
      case OrderedResponses::Step::kWrite:
        StartWrite(out_.writing());
        break;
      case OrderedResponses::Step::kFinish:
        core_.RecordRequest(model_name_.empty() ? core_.config().default_model().name : model_name_,
                            out_.error().code(), out_.inputs(), out_.tokens());
        return ToGrpc(out_.error());
      case OrderedResponses::Step::kWait:
        break;
    }
    return std::nullopt;
  }

  WorkerCore& core_;
  grpc::CallbackServerContext* const context_;
  const std::shared_ptr<std::atomic<bool>> cancelled_;

  absl::Mutex mu_;
  pb::EmbedRequest request_ ABSL_GUARDED_BY(mu_);
  bool reading_ ABSL_GUARDED_BY(mu_) = false;
  bool reads_done_ ABSL_GUARDED_BY(mu_) = false;
  size_t next_sequence_ ABSL_GUARDED_BY(mu_) = 0;
  OrderedResponses out_ ABSL_GUARDED_BY(mu_);  // Indexed by request sequence.
  std::string model_name_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

grpc::ServerBidiReactor<pb::EmbedRequest, pb::EmbedResponse>* StartEmbedBidi(
    WorkerCore& core, grpc::CallbackServerContext* context) {
  auto* reactor = new EmbedBidiReactor(core, context);
  reactor->Start();
  return reactor;
}

}  // namespace tipperary::worker
