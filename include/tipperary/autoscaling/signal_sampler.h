// The proxy's autoscaling signals: per-route request rates over sliding windows, in-flight
// requests, saturation (in-flight / capacity), and the worker's queue depth and batch fill.
//
// Pure state: the caller reads its counters and calls Sample() once per interval from one
// thread; Snapshot() may be called from any thread (admin handler, external scaler). Time is
// passed in, so tests drive it without sleeping.
//
//   SignalSampler sampler({10s, 60s}, /*capacity=*/64);
//   sampler.Sample(now, input);                    // every sample_interval
//   SignalSnapshot s = sampler.Snapshot();         // s.all.rps[0]: rate over 10 s
#pragma once

#include <chrono>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "tipperary/autoscaling/rate_window.h"

namespace tipperary::autoscaling {

// One model's backlog as the worker reports it (tipperary.admin.v1.ModelLoad): its queued real
// tokens, the tokens/s it has been sustaining and their quotient, seconds of work waiting.
struct ModelBacklog {
  double queued_tokens = 0;
  std::optional<double> tokens_per_second;  // Unset: the worker has no rate for it yet.
  std::optional<double> backlog_seconds;    // Unset: tokens wait and there is no rate yet.
};

// Cumulative figures read from the worker's admin /autoscaling endpoint.
struct WorkerCounters {
  double queue_depth = 0;     // Texts queued now, all models.
  double batches = 0;         // Batches run so far.
  double batch_texts = 0;     // Texts in those batches.
  double batch_tokens = 0;    // Padded tokens in those batches.
  double max_batch_size = 0;  // The worker's configured limits.
  double max_batch_tokens = 0;
  // The backlog, all models (their sum) and per model. Unset / empty: a worker older than the
  // backlog signal, or one that has no rate for some model yet; the signal is then unavailable.
  std::optional<double> queued_tokens;
  std::optional<double> backlog_seconds;
  std::map<std::string, ModelBacklog> models;  // Only the models that report a backlog.
};

// What the caller read at one sampling instant.
struct SampleInput {
  std::map<std::string, double> requests;   // Route -> completed requests so far.
  std::map<std::string, double> in_flight;  // Route -> requests in progress now.
  std::optional<WorkerCounters> worker;     // Unset: no worker configured or it did not answer.
};

struct RouteSignal {
  std::vector<double> rps;  // One per window, in the configured order.
  double in_flight = 0;
  double saturation = 0;  // in_flight / capacity.
};

struct WorkerSignal {
  bool known = false;  // False when no worker is configured or its last poll failed.
  double queue_depth = 0;
  // How full batches were over the first window: the larger of texts / max_batch_size and
  // padded tokens / max_batch_tokens, averaged over the batches run; 0 when none ran.
  double batch_fill = 0;
  double batches_per_second = 0;
  // Relayed from the worker as it reported them (WorkerCounters): unset when it does not.
  std::optional<double> queued_tokens;
  std::optional<double> backlog_seconds;
  std::map<std::string, ModelBacklog> models;
};

struct SignalSnapshot {
  std::vector<std::chrono::seconds> windows;
  uint32_t capacity = 0;
  RouteSignal all;                            // Every route together.
  std::map<std::string, RouteSignal> routes;  // By route template, e.g. "POST /v1/embeddings".
  WorkerSignal worker;
  bool sampled = false;  // False until the first Sample().
};

class SignalSampler {
 public:
  using Clock = std::chrono::steady_clock;

  // `windows` non-empty, whole seconds; `capacity` >= 1.
  SignalSampler(std::vector<std::chrono::seconds> windows, uint32_t capacity);

  // One thread only. Routes named "unmatched" (requests that matched no route: scanners,
  // typos) are left out: they must not scale a GPU deployment.
  void Sample(Clock::time_point now, const SampleInput& input);

  SignalSnapshot Snapshot() const;
  // Any thread: the windows of the snapshot served now.
  std::vector<std::chrono::seconds> windows() const;

  // Any thread (a config reload): the next Sample() switches to these windows and capacity.
  // Changed windows restart the rate history (rates build up again over the new windows).
  void Reconfigure(std::vector<std::chrono::seconds> windows, uint32_t capacity);

 private:
  struct RouteState {
    RateWindow requests;
    double in_flight = 0;
  };

  struct Settings {
    std::vector<std::chrono::seconds> windows;
    uint32_t capacity = 1;
  };
  void Apply(Settings settings);  // Sampling thread.

  std::vector<std::chrono::seconds> windows_;
  uint32_t capacity_;
  std::chrono::seconds max_window_;
  // Sampling state, owned by the sampling thread.
  std::map<std::string, RouteState> routes_;
  RateWindow all_requests_;
  RateWindow worker_batches_, worker_texts_, worker_tokens_;
  std::deque<Clock::time_point> sample_times_;  // Within the longest window.

  mutable std::mutex mu_;
  SignalSnapshot snapshot_ ABSL_GUARDED_BY(mu_);
  std::optional<Settings> pending_ ABSL_GUARDED_BY(mu_);
};

// The snapshot as the JSON served at GET /autoscaling (docs/autoscaling.md):
// {"window_seconds":[10,60],"capacity":64,
//  "all":{"rps_10s":..,"rps_60s":..,"inflight":..,"saturation":..,"queue_depth":..,
//         "batch_fill":..,"backlog_seconds":..},
//  "routes":{"POST /v1/embeddings":{"rps_10s":..,"rps_60s":..,"inflight":..,"saturation":..}},
//  "worker":{"known":true,"queue_depth":..,"batch_fill":..,"batches_per_second":..,
//            "queued_tokens":..,"backlog_seconds":..,
//            "models":{"m":{"queued_tokens":..,"tokens_per_second":..,"backlog_seconds":..}}}}
// A backlog figure the worker does not report is null.
std::string SnapshotToJson(const SignalSnapshot& snapshot);

}  // namespace tipperary::autoscaling
