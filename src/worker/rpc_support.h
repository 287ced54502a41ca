// What the embedding RPCs share: absl::Status to grpc::Status, finishing a reactor safely,
// requests to options and texts, and the response messages' filling.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "embed_task.h"
#include "model_runtime.h"
#include "tipperary/common/tsan.h"
#include "tipperary/embedding/v1/embedding.grpc.pb.h"
#include "worker_core.h"

namespace tipperary::worker {

namespace pb = ::tipperary::embedding::v1;

grpc::Status ToGrpc(const absl::Status& status);

// reactor.Finish(status), first telling TSan that what this thread did to the reactor happens
// before its OnDone (which deletes it): gRPC orders the two inside libgrpc and libgrpc++, where
// TSan cannot see it. Nothing of the reactor may be touched after this returns.
template <typename Reactor>
void FinishCall(Reactor& reactor, grpc::Status status) {
  common::HappensBefore(&reactor);
  reactor.Finish(std::move(status));
}

// The ending every embedding reactor shares: OnCancel raises the call's cancel flag (which its
// batcher tasks read, so queued work is dropped) and OnDone deletes the reactor. gRPC runs OnCancel
// (if at all) before OnDone but orders the two inside libgrpc++, so TSan is told.
template <typename Base>
class SelfDeletingReactor : public Base {
 public:
  void OnCancel() override {
    cancelled_->store(true, std::memory_order_release);
    common::HappensBefore(this);
  }
  void OnDone() override {
    common::HappensAfter(this);
    delete this;
  }

 protected:
  SelfDeletingReactor() = default;
  ~SelfDeletingReactor() override = default;

  const std::shared_ptr<std::atomic<bool>> cancelled_ = std::make_shared<std::atomic<bool>>(false);
};

EmbedOptions OptionsOf(const pb::EmbedRequest& request);
std::vector<std::string> TextsOf(const pb::EmbedRequest& request);

// Fills `response` with the vectors of `task` (indices offset by `first_index`).
void FillEmbedResponse(const ModelRuntime& model, const EmbedTask& task,
                       const EmbedOptions& options, int first_index, pb::EmbedResponse* response);
void FillModel(const ModelRuntime& model, uint32_t created, pb::Model* out);
// The floats' little-endian bytes, base64 (OpenAI's encoding_format: base64).
std::string Base64Floats(const std::vector<float>& values);

}  // namespace tipperary::worker
