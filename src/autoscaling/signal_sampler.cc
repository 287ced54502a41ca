#include "tipperary/autoscaling/signal_sampler.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "tipperary/common/log.h"

namespace tipperary::autoscaling {
namespace {

constexpr char kUnmatchedRoute[] = "unmatched";

std::chrono::seconds MaxWindow(const std::vector<std::chrono::seconds>& windows) {
  return windows.empty() ? std::chrono::seconds(1)
                         : *std::max_element(windows.begin(), windows.end());
}

// Finite, and short: the scalers compare against targets, six significant digits are plenty.
void AppendNumber(std::string& out, double v) {
  if (!std::isfinite(v)) v = 0;
  absl::StrAppend(&out, v);
}

void AppendOptional(std::string& out, const std::optional<double>& v) {
  if (v) {
    AppendNumber(out, *v);
  } else {
    out += "null";
  }
}

void AppendRoute(std::string& out, const SignalSnapshot& s, const RouteSignal& r) {
  for (size_t i = 0; i < s.windows.size(); ++i) {
    absl::StrAppend(&out, "\"rps_", s.windows[i].count(), "s\":");
    AppendNumber(out, i < r.rps.size() ? r.rps[i] : 0);
    out += ',';
  }
  out += "\"inflight\":";
  AppendNumber(out, r.in_flight);
  out += ",\"saturation\":";
  AppendNumber(out, r.saturation);
}

}  // namespace

SignalSampler::SignalSampler(std::vector<std::chrono::seconds> windows, uint32_t capacity)
    : windows_(std::move(windows)),
      capacity_(std::max<uint32_t>(capacity, 1)),
      max_window_(MaxWindow(windows_)),
      all_requests_(max_window_),
      worker_batches_(max_window_),
      worker_texts_(max_window_),
      worker_tokens_(max_window_) {
  snapshot_.windows = windows_;
  snapshot_.capacity = capacity_;
  snapshot_.all.rps.assign(windows_.size(), 0);
}

std::vector<std::chrono::seconds> SignalSampler::windows() const {
  std::lock_guard lock(mu_);
  return snapshot_.windows;
}

void SignalSampler::Reconfigure(std::vector<std::chrono::seconds> windows, uint32_t capacity) {
  std::lock_guard lock(mu_);
  pending_ = Settings{std::move(windows), std::max<uint32_t>(capacity, 1)};
}

void SignalSampler::Apply(Settings settings) {
  capacity_ = settings.capacity;
  if (settings.windows == windows_) return;
  windows_ = std::move(settings.windows);
  max_window_ = MaxWindow(windows_);
  routes_.clear();
  all_requests_ = RateWindow(max_window_);
  worker_batches_ = RateWindow(max_window_);
  worker_texts_ = RateWindow(max_window_);
  worker_tokens_ = RateWindow(max_window_);
  sample_times_.clear();
}

void SignalSampler::Sample(Clock::time_point now, const SampleInput& input) {
  std::optional<Settings> pending;
  {
    std::lock_guard lock(mu_);
    pending.swap(pending_);
  }
  if (pending) Apply(std::move(*pending));
  double total = 0;
  double total_in_flight = 0;
  for (const auto& [route, count] : input.requests) {
    if (route == kUnmatchedRoute) continue;
    total += count;
    auto it = routes_.find(route);
    if (it == routes_.end()) {
      it = routes_.emplace(route, RouteState{RateWindow(max_window_)}).first;
      // The route's counter was created by its first request after the previous sample: it
      // stood at 0 at every earlier sample, so its windows start as long as everyone's.
      for (Clock::time_point t : sample_times_) it->second.requests.Add(t, 0);
    }
    it->second.requests.Add(now, count);
  }
  all_requests_.Add(now, total);
  for (auto& [route, state] : routes_) {
    auto it = input.in_flight.find(route);
    state.in_flight = it == input.in_flight.end() ? 0 : std::max(0.0, it->second);
    total_in_flight += state.in_flight;
  }
  // In-flight requests of a route that has not finished one yet still count in the total.
  for (const auto& [route, value] : input.in_flight) {
    if (route != kUnmatchedRoute && !routes_.contains(route)) total_in_flight += value;
  }

  WorkerSignal worker;
  if (input.worker) {
    const WorkerCounters& w = *input.worker;
    worker_batches_.Add(now, w.batches);
    worker_texts_.Add(now, w.batch_texts);
    worker_tokens_.Add(now, w.batch_tokens);
    worker.known = true;
    worker.queue_depth = std::max(0.0, w.queue_depth);
    worker.queued_tokens = w.queued_tokens;
    worker.backlog_seconds = w.backlog_seconds;
    worker.models = w.models;
    const auto window = windows_.front();
    double batches = worker_batches_.Rate(window);
    worker.batches_per_second = batches;
    if (batches > 0) {
      double by_size =
          w.max_batch_size > 0 ? worker_texts_.Rate(window) / batches / w.max_batch_size : 0;
      double by_tokens =
          w.max_batch_tokens > 0 ? worker_tokens_.Rate(window) / batches / w.max_batch_tokens : 0;
      worker.batch_fill = std::clamp(std::max(by_size, by_tokens), 0.0, 1.0);
    }
  }
  sample_times_.push_back(now);
  while (sample_times_.size() > 2 && now - sample_times_[1] >= max_window_) {
    sample_times_.pop_front();
  }

  SignalSnapshot next;
  next.windows = windows_;
  next.capacity = capacity_;
  next.sampled = true;
  const double capacity = static_cast<double>(capacity_);
  for (const auto window : windows_) next.all.rps.push_back(all_requests_.Rate(window));
  next.all.in_flight = total_in_flight;
  next.all.saturation = total_in_flight / capacity;
  for (const auto& [route, state] : routes_) {
    RouteSignal& r = next.routes[route];
    for (const auto window : windows_) r.rps.push_back(state.requests.Rate(window));
    r.in_flight = state.in_flight;
    r.saturation = state.in_flight / capacity;
  }
  next.worker = worker;
  std::lock_guard lock(mu_);
  snapshot_ = std::move(next);
}

SignalSnapshot SignalSampler::Snapshot() const {
  std::lock_guard lock(mu_);
  return snapshot_;
}

std::string SnapshotToJson(const SignalSnapshot& s) {
  std::string out = "{\"window_seconds\":[";
  for (size_t i = 0; i < s.windows.size(); ++i) {
    if (i > 0) out += ',';
    absl::StrAppend(&out, s.windows[i].count());
  }
  absl::StrAppend(&out, "],\"capacity\":", s.capacity, ",\"all\":{");
  AppendRoute(out, s, s.all);
  out += ",\"queue_depth\":";
  AppendNumber(out, s.worker.queue_depth);
  out += ",\"batch_fill\":";
  AppendNumber(out, s.worker.batch_fill);
  out += ",\"backlog_seconds\":";
  AppendOptional(out, s.worker.backlog_seconds);
  out += "},\"routes\":{";
  bool first = true;
  for (const auto& [route, signal] : s.routes) {
    if (!first) out += ',';
    first = false;
    out += '"';
    common::AppendJsonEscaped(out, route);
    out += "\":{";
    AppendRoute(out, s, signal);
    out += '}';
  }
  absl::StrAppend(&out, "},\"worker\":{\"known\":", s.worker.known ? "true" : "false",
                  ",\"queue_depth\":");
  AppendNumber(out, s.worker.queue_depth);
  out += ",\"batch_fill\":";
  AppendNumber(out, s.worker.batch_fill);
  out += ",\"batches_per_second\":";
  AppendNumber(out, s.worker.batches_per_second);
  out += ",\"queued_tokens\":";
  AppendOptional(out, s.worker.queued_tokens);
  out += ",\"backlog_seconds\":";
  AppendOptional(out, s.worker.backlog_seconds);
  out += ",\"models\":{";
  first = true;
  for (const auto& [name, model] : s.worker.models) {
    if (!first) out += ',';
    first = false;
    out += '"';
    common::AppendJsonEscaped(out, name);
    out += "\":{\"queued_tokens\":";
    AppendNumber(out, model.queued_tokens);
    out += ",\"tokens_per_second\":";
    AppendOptional(out, model.tokens_per_second);
    out += ",\"backlog_seconds\":";
    AppendOptional(out, model.backlog_seconds);
    out += '}';
  }
  out += "}}}\n";
  return out;
}

}  // namespace tipperary::autoscaling
