// The worker's last warm-up step before it reports ready: one Embed per model through its own
// gRPC port, over a real connection, as a client would send it.
//
// Why: the model warm-up (warmup_plan.h) runs every batch shape on the encoders, but the first
// RPC a worker process serves paid ~1 ms more than the next ones anyway (1 x 12 tokens: first
// 2.4 ms, steady 1.2 ms, the model's own time +0.25 ms of it): the gRPC server's first call, the
// service's first request, the tokenizer's first text. A call on another channel before the
// first request took the ratio from ~2.0x to ~1.2x, so the worker makes that call itself
// (docs/benchmarks.md, "Warm-up and the first request").
//
//   absl::StatusOr<common::Endpoint> bound = common::ParseEndpoint("0.0.0.0:50051", true);
//   absl::Status s = WarmFrontDoor(SelfTarget(*bound), {"all-minilm-l6-v2"},
//                                  std::chrono::seconds(10));
//   // s: the first call's failure, or OK; the worker logs it and becomes ready either way.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "tipperary/common/endpoint.h"

namespace tipperary::worker {

// The gRPC target the worker dials to reach its own listener bound at `bound`: a wildcard host
// (0.0.0.0, ::, or none) becomes the loopback address of its family; anything else as bound.
std::string SelfTarget(const common::Endpoint& bound);

// One Embed of a short text to each of `models` through `target`, in turn, all within
// `timeout` (connecting included). OK when every call succeeded, else the first failure's
// status with the model named.
absl::Status WarmFrontDoor(const std::string& target, const std::vector<std::string>& models,
                           std::chrono::nanoseconds timeout);

}  // namespace tipperary::worker
