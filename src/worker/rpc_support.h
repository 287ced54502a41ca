// What the embedding RPCs share: absl::Status to grpc::Status, finishing a reactor safely,
// requests to options and texts, and the response messages' filling.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
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

// The per-request timing a unary embedding call sends as initial metadata, under the names of
// TEI's response headers (docs/tei.md): x-compute-type (the model's backend), x-compute-time
// and x-total-time (ms from `received` to `now`, TEI's two names for one value),
// x-tokenization-time, x-queue-time (the longest any text waited for a batch), x-inference-time
// (the model's wall-clock time), all whole milliseconds, rounded down as TEI's; x-compute-tokens,
// x-compute-characters (only when known) and x-tokens-per-second (tokens over inference time,
// only when the model ran). Rounding down keeps queue and inference time <= total time.
std::vector<std::pair<std::string, std::string>> TimingMetadata(
    const ModelRuntime& model, const EmbedTask& task,
    std::chrono::steady_clock::time_point received, std::chrono::steady_clock::time_point now);

// What TimingMetadata reports, for one task or summed up over a stream's (stream_timing.h).
struct CallTiming {
  std::string backend;  // x-compute-type; "" = not sent (a stream that embedded nothing)
  std::chrono::nanoseconds tokenization{0};
  std::chrono::nanoseconds queue{0};
  std::chrono::nanoseconds inference{0};
  int64_t tokens = 0;
  int64_t characters = -1;  // -1: unknown (token-id inputs), not sent
};
CallTiming TimingOf(const ModelRuntime& model, const EmbedTask& task);
std::vector<std::pair<std::string, std::string>> TimingMetadata(
    const CallTiming& timing, std::chrono::steady_clock::time_point received,
    std::chrono::steady_clock::time_point now);

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
