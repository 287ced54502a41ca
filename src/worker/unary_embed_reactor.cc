#include "unary_embed_reactor.h"

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "admission.h"
#include "ordered_responses.h"
#include "request_priority.h"
#include "rpc_support.h"
#include "tipperary/common/tsan.h"

namespace tipperary::worker {
namespace {

// --------------------------------------------------------------------------------------------
// Unary embedding calls (Embed and CreateEmbeddings): one task, one response.

class UnaryEmbedReactor : public SelfDeletingReactor<grpc::ServerUnaryReactor> {
 public:
  using Fill = std::function<void(const ModelRuntime&, const EmbedTask&)>;

  UnaryEmbedReactor(WorkerCore& core, grpc::CallbackServerContext* context)
      : core_(core), context_(context) {}

  // Touches nothing of `this` after a successful submission: the batcher may finish the call
  // (and OnDone delete the reactor) before Submit even returns.
  void Start(const std::string& requested_model, const EmbedInputs& inputs, EmbedOptions options,
             const Fill& fill) {
    absl::StatusOr<std::shared_ptr<ModelRuntime>> admitted = Admit(core_, requested_model);
    // Held by the task's `done` until the call is answered: a reload unloads a model only
    // after every call that found it has finished.
    Start(admitted.ok() ? *admitted : nullptr, admitted.status(), requested_model, inputs, options,
          fill);
  }

  // With the model already admitted (null when `status` says why not).
  void Start(std::shared_ptr<ModelRuntime> model, absl::Status status,
             const std::string& requested_model, const EmbedInputs& inputs, EmbedOptions options,
             const Fill& fill) {
    std::shared_ptr<EmbedTask> task;
    const std::chrono::steady_clock::time_point received =
        inputs.received == std::chrono::steady_clock::time_point{}
            ? std::chrono::steady_clock::now()
            : inputs.received;
    options.priority = ResolvePriority(options.priority, context_->client_metadata());
    if (status.ok()) {
      absl::StatusOr<std::shared_ptr<EmbedTask>> made = core_.MakeTask(
          *model, inputs, options, cancelled_, [this, model, fill, received](EmbedTask& done) {
            const absl::Status& result = done.status();
            if (result.ok()) {
              fill(*model, done);
              // Initial metadata, so that it also comes with the buffered unary response (as
              // TEI's headers); nothing has been sent yet, Finish sends it with the message.
              for (auto& [key, value] :
                   TimingMetadata(*model, done, received, std::chrono::steady_clock::now())) {
                context_->AddInitialMetadata(key, value);
              }
            }
            core_.RecordRequest(model->name(), result.code(), static_cast<int64_t>(done.size()),
                                done.total_tokens());
            FinishCall(*this, ToGrpc(result));
          });
      status = made.status();
      if (made.ok()) task = *std::move(made);
    }
    if (status.ok()) {
      status = model->Submit(task, ToBatcherDeadline(context_->deadline()));
      if (status.ok()) return;
    }
    core_.RecordRequest(model ? model->name() : ModelLabel(core_, requested_model), status.code(),
                        0, 0);
    FinishCall(*this, ToGrpc(status));
  }

 private:
  WorkerCore& core_;
  grpc::CallbackServerContext* const context_;
};

}  // namespace

grpc::ServerUnaryReactor* StartUnaryEmbed(WorkerCore& core, grpc::CallbackServerContext* context,
                                          const std::string& requested_model,
                                          const EmbedInputs& inputs, EmbedOptions options,
                                          const FillResponse& fill) {
  auto* reactor = new UnaryEmbedReactor(core, context);
  reactor->Start(requested_model, inputs, options, fill);
  return reactor;
}

grpc::ServerUnaryReactor* StartUnaryEmbed(WorkerCore& core, grpc::CallbackServerContext* context,
                                          std::shared_ptr<ModelRuntime> model,
                                          const EmbedInputs& inputs, EmbedOptions options,
                                          const FillResponse& fill) {
  auto* reactor = new UnaryEmbedReactor(core, context);
  const std::string name = model->name();
  reactor->Start(std::move(model), absl::OkStatus(), name, inputs, options, fill);
  return reactor;
}

}  // namespace tipperary::worker
