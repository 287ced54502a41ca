#include "reload_runner.h"

#include <utility>

namespace tipperary::worker {

ReloadRunner::ReloadRunner(Reload reload) : reload_(std::move(reload)) {
  absl::MutexLock lock(&join_mu_);
  thread_ = std::thread([this] { Loop(); });
}

ReloadRunner::~ReloadRunner() { Stop(); }

ReloadRunner::Accepted ReloadRunner::Request(std::string source, Reply reply) {
  absl::MutexLock lock(&mu_);
  if (stopping_) return Accepted::kStopped;
  if (running_ || request_reply_ || !signal_source_.empty()) return Accepted::kBusy;
  request_source_ = std::move(source);
  request_reply_ = std::move(reply);
  return Accepted::kStarted;
}

void ReloadRunner::RequestFromSignal(std::string source) {
  absl::MutexLock lock(&mu_);
  if (!stopping_) signal_source_ = std::move(source);
}

void ReloadRunner::Stop() {
  Reply unanswered;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    unanswered = std::move(request_reply_);
    request_reply_ = nullptr;
    signal_source_.clear();
  }
  if (unanswered) unanswered(absl::UnavailableError("the worker is shutting down"));
  absl::MutexLock lock(&join_mu_);
  if (thread_.joinable()) thread_.join();
}

void ReloadRunner::Loop() {
  while (true) {
    std::string source;
    Reply reply;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](ReloadRunner* self) ABSL_NO_THREAD_SAFETY_ANALYSIS {
            return self->stopping_ || self->request_reply_ || !self->signal_source_.empty();
          },
          this));
      if (stopping_) return;
      if (request_reply_) {
        source = std::move(request_source_);
        reply = std::move(request_reply_);
        request_reply_ = nullptr;
      } else {
        source = std::move(signal_source_);
        signal_source_.clear();
      }
      running_ = true;
    }
    config::ReloadReport report = reload_(source);
    {
      // Idle before answering: whoever hears the answer may ask for the next reload at once.
      absl::MutexLock lock(&mu_);
      running_ = false;
    }
    if (reply) reply(std::move(report));
  }
}

}  // namespace tipperary::worker
