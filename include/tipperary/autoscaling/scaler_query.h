// What a KEDA trigger asks for, parsed from its metadata, and the value it gets.
//
// Trigger metadata (docs/autoscaling.md):
//   route:            a route template, e.g. "POST /v1/embeddings"; absent = all routes
//   metric:           rps | inflight | saturation | queue_depth | batch_fill | backlog_seconds
//                     (default rps)
//   window:           rps only: one of the proxy's rate windows, e.g. "10s"   (default: first)
//   model:            backlog_seconds only: one model's backlog      (default: all models' sum)
//   target:           the value per replica the HPA aims for (required, > 0)
//   activationTarget: IsActive is true while the value is above it             (default 0)
//
//   absl::StatusOr<ScalerQuery> q = ParseScalerQuery(ref.scalermetadata(), windows);
//   std::optional<double> v = ReadSignal(sampler.Snapshot(), *q);
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "tipperary/autoscaling/signal_sampler.h"

namespace tipperary::autoscaling {

enum class SignalKind { kRps, kInFlight, kSaturation, kQueueDepth, kBatchFill, kBacklogSeconds };

struct ScalerQuery {
  std::string route;  // Empty: all routes.
  SignalKind kind = SignalKind::kRps;
  size_t window = 0;  // Index into the snapshot's windows (rps only).
  std::string model;  // backlog_seconds only; empty: the sum over the worker's models.
  double target = 0;
  double activation_target = 0;
  std::string metric_name;  // Stable and unique per query, e.g. "tipperary-rps-10s-all".
};

// INVALID_ARGUMENT naming the bad key and what is allowed.
absl::StatusOr<ScalerQuery> ParseScalerQuery(const std::map<std::string, std::string>& metadata,
                                             const std::vector<std::chrono::seconds>& windows);

// The query's current value; a route not seen yet reads 0. Unset only for backlog_seconds when
// the worker does not report it (not answering, older than the signal, a model it does not
// serve or has no rate for yet): 0 would read as "no backlog" and scale in, so the external
// scaler answers an error instead and KEDA keeps the replicas (or applies its fallback).
std::optional<double> ReadSignal(const SignalSnapshot& snapshot, const ScalerQuery& query);

}  // namespace tipperary::autoscaling
