// When the upstream client tries a call again after an attempt failed.
//
// Two kinds of retry, with different risks:
// - A request that provably never reached the application (REFUSED_STREAM, a stream above a
//   GOAWAY's last-stream-id, a connection that failed before the request was written) is placed
//   again for any method, at once, up to RetryPolicy::kMaxUnprocessedAttempts times: the server
//   did no work. These never wait for the retry budget.
// - A request that may have been processed is retried only for an idempotent method (matched by
//   `idempotent_methods`, or GrpcRequest::idempotent), when the attempt ended with a code in
//   `retry_on` and before any response message reached the caller, within `max_attempts`, the
//   call's deadline, and the upstream's retry budget (UpstreamOptions::retry_budget), after a
//   jittered backoff. A hung connection (no PING ack) and a per-try timeout are such failures:
//   UNAVAILABLE and DEADLINE_EXCEEDED.
//
//   auto policy = std::make_shared<RetryPolicy>();
//   policy->idempotent_methods = {"pkg.Svc/Get", "pkg.Reader/*"};
//   request.retry_policy = policy;  // else the upstream's UpstreamOptions::retry_policy
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"

namespace tipperary::upstream {

struct RetryPolicy {
  // Bounds the transparent re-placements of never-processed requests (not configurable).
  static constexpr uint32_t kMaxUnprocessedAttempts = 5;

  // Codes an attempt of an idempotent method may end with to be retried.
  std::vector<absl::StatusCode> retry_on = {absl::StatusCode::kUnavailable,
                                            absl::StatusCode::kDeadlineExceeded};
  // "pkg.Service/Method", "pkg.Service/*" (every method of the service) or "*" (every method).
  std::vector<std::string> idempotent_methods;
  // Attempts of a possibly processed request, the first included; 1 = no such retries.
  uint32_t max_attempts = 3;
  // Each attempt's own deadline inside the call's; 0 = none. Expiry ends the attempt with
  // DEADLINE_EXCEEDED (RST_STREAM CANCEL), which retry_on may retry.
  std::chrono::nanoseconds per_try_timeout{0};
  // Before retry n (1, 2, ...): a random delay in [0, min(backoff_max, backoff_initial * 2^(n-1))]
  // ("full jitter").
  std::chrono::nanoseconds backoff_initial = std::chrono::milliseconds(25);
  std::chrono::nanoseconds backoff_max = std::chrono::milliseconds(250);

  // path: ":path", "/pkg.Service/Method".
  bool IsIdempotent(std::string_view path) const;
  bool RetriesOn(absl::StatusCode code) const;
};

// The part of the retry policy that is the upstream's, not a route's: retries of possibly
// processed requests in progress (from the moment one is decided until its call ends) stay
// below max(min_retry_concurrency, budget_percent% of the upstream's active requests), so that
// during an outage retries add at most that fraction of load.
struct RetryBudget {
  uint32_t budget_percent = 20;
  uint32_t min_retry_concurrency = 3;
};

// "unavailable" -> kUnavailable, for the 16 non-OK codes; false on anything else.
bool ParseRetryOnCode(std::string_view name, absl::StatusCode* code);
// The inverse: "unavailable", "deadline_exceeded", ... ("ok" for kOk).
std::string RetryOnCodeName(absl::StatusCode code);

}  // namespace tipperary::upstream
