#include "embed_bidi_reactor.h"

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
// EmbedBidi: every request message is one task; responses go out in request order.

class EmbedBidiReactor
    : public OrderedStreamReactor<grpc::ServerBidiReactor<pb::EmbedRequest, pb::EmbedResponse>> {
 public:
  static constexpr size_t kMaxPending = 8;  // Requests read ahead of their responses.

  EmbedBidiReactor(WorkerCore& core, grpc::CallbackServerContext* context)
      : OrderedStreamReactor(core, context) {}

  void Start() {
    absl::Status status = core_.Admission();
    Step([&] {
      if (!status.ok()) {
        out_.Fail(status);
        return;
      }
      reading_ = true;
      StartRead(&request_);
    });
  }

  void OnReadDone(bool ok) override {
    Step([&] { ReadDoneLocked(ok); });
  }

 private:
  void ReadDoneLocked(bool ok) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    reading_ = false;
    if (!ok) {
      reads_done_ = true;
      return;
    }
    if (out_.finished() || !out_.error().ok()) return;
    size_t sequence = next_sequence_++;
    // Checked per message: a stream opened before a drain gets no new work in.
    absl::StatusOr<std::shared_ptr<ModelRuntime>> admitted = Admit(core_, request_.model());
    absl::Status status = admitted.status();
    // Each message resolves its model anew (a reload may have changed the set); its task holds
    // the runtime until it is answered.
    std::shared_ptr<ModelRuntime> model = admitted.ok() ? *admitted : nullptr;
    if (model_name_.empty())
      model_name_ = model ? model->name() : ModelLabel(core_, request_.model());
    if (status.ok()) {
      EmbedOptions options = OptionsOf(request_);
      options.priority = ResolvePriority(options.priority, context_->client_metadata());
      absl::StatusOr<std::shared_ptr<EmbedTask>> task =
          core_.MakeTask(*model, EmbedInputs::Texts(TextsOf(request_)), options, cancelled_,
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
      return;
    }
    PumpLocked();
  }

  // On a batcher thread, which holds no reference to the call.
  void OnTaskDone(size_t sequence, const ModelRuntime& model, const EmbedOptions& options,
                  EmbedTask& task) {
    Step([&] {
      if (pb::EmbedResponse* slot = out_.Completed(sequence, task)) {
        FillEmbedResponse(model, task, options, 0, slot);
        timing_.Add(model, task);
      } else if (!task.status().ok()) {
        cancelled_->store(true);
      }
      PumpLocked();
    });
  }

  // Reads the next request while fewer than kMaxPending wait for their responses.
  void PumpLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) override {
    if (reading_ || reads_done_ || out_.finished() || !out_.error().ok()) return;
    if (next_sequence_ - out_.next_write() >= kMaxPending) return;
    reading_ = true;
    StartRead(&request_);
  }

  Expected ExpectedLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) override {
    return {next_sequence_, /*final=*/reads_done_};
  }
  std::string ModelNameLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) override {
    return model_name_.empty() ? core_.config()->default_model().name : model_name_;
  }

  pb::EmbedRequest request_ ABSL_GUARDED_BY(mu_);
  bool reading_ ABSL_GUARDED_BY(mu_) = false;
  bool reads_done_ ABSL_GUARDED_BY(mu_) = false;
  size_t next_sequence_ ABSL_GUARDED_BY(mu_) = 0;
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
