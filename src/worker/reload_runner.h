// Runs a worker's config reloads one at a time on a thread of their own, so that loading a
// model (seconds) never holds up the admin port or the signal loop.
//
// Two reloads never overlap. POST /reload while another reload runs or waits is refused at once
// (kBusy: the admin answers 409 Conflict) — the operator learns that their request did nothing.
// SIGHUP while a reload runs is remembered and runs once after it (signals have nobody to answer;
// several meanwhile make one reload, which reads the file as it is by then).
//
//   ReloadRunner runner([&](std::string_view source) { return reloader.Reload(source); });
//   runner.Request("POST /reload", [](absl::StatusOr<config::ReloadReport> report) { ... });
//   runner.RequestFromSignal();
//   runner.Stop();  // waits for the reload in progress
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "tipperary/config/reload_report.h"

namespace tipperary::worker {

class ReloadRunner {
 public:
  using Reload = std::function<config::ReloadReport(std::string_view source)>;
  // The report, or UNAVAILABLE when the runner stopped before the reload could run.
  using Reply = std::function<void(absl::StatusOr<config::ReloadReport> report)>;
  enum class Accepted { kStarted, kBusy, kStopped };

  explicit ReloadRunner(Reload reload);  // Starts the thread.
  ~ReloadRunner();                       // Stop()

  ReloadRunner(const ReloadRunner&) = delete;
  ReloadRunner& operator=(const ReloadRunner&) = delete;

  // Queues a reload whose report goes to `reply` (on the runner's thread). kBusy while another
  // reload runs or waits, kStopped after Stop(): `reply` is then not called.
  Accepted Request(std::string source, Reply reply) ABSL_LOCKS_EXCLUDED(mu_);
  // A reload now, or once after the one in progress.
  void RequestFromSignal(std::string source = "SIGHUP") ABSL_LOCKS_EXCLUDED(mu_);
  // Waits for the reload in progress, answers a queued request UNAVAILABLE, ends the thread.
  // Idempotent.
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Loop();

  const Reload reload_;
  absl::Mutex mu_;
  bool running_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::string signal_source_ ABSL_GUARDED_BY(mu_);  // Non-empty: a signal asked for a reload.
  std::string request_source_ ABSL_GUARDED_BY(mu_);
  Reply request_reply_ ABSL_GUARDED_BY(mu_);  // Set: a request waits.
  absl::Mutex join_mu_;
  std::thread thread_ ABSL_GUARDED_BY(join_mu_);
};

}  // namespace tipperary::worker
