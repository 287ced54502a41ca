// libFuzzer target: a KEDA trigger's scalerMetadata as the proxy's external scaler reads it from
// every GetMetricSpec / GetMetrics / IsActive call (src/autoscaling/scaler_query.cc, compiled
// in). Input: a flags byte (the proxy's rate windows, what the snapshot holds), then
// "key=value" lines, the map KEDA sends (a later line replaces an earlier key, as in a map).
// Checks, besides "no crash, no leak, no UB":
// - a refusal is INVALID_ARGUMENT naming the scalerMetadata key;
// - an accepted query has a positive finite target, a non-negative finite activation target, a
//   window among the proxy's, a model only for backlog_seconds, and a metric name an HPA takes
//   (tipperary-, then lower-case letters, digits and single '-', not ending in '-'), the same
//   for the same map;
// - ReadSignal answers a finite value (or nothing, only for backlog_seconds) on an empty snapshot
//   and on one that holds the route and the model, with fewer rates than windows.
#include <chrono>
#include <cmath>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/match.h"
#include "fuzz_check.h"
#include "tipperary/autoscaling/scaler_query.h"

namespace {

namespace autoscaling = tipperary::autoscaling;

bool IsMetricName(std::string_view name) {
  constexpr std::string_view kPrefix = "tipperary-";
  if (!name.starts_with(kPrefix) || name.size() == kPrefix.size() || name.back() == '-') {
    return false;
  }
  char previous = '-';
  for (char c : name.substr(kPrefix.size())) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
    if (!ok || (c == '-' && previous == '-')) return false;
    previous = c;
  }
  return true;
}

void CheckValue(std::optional<double> value, const autoscaling::ScalerQuery& query) {
  if (!value) {
    FUZZ_CHECK(query.kind == autoscaling::SignalKind::kBacklogSeconds);
    return;
  }
  FUZZ_CHECK(std::isfinite(*value) && *value >= 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t flags = data[0];
  std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::map<std::string, std::string> metadata;
  while (!text.empty()) {
    const size_t end = text.find('\n');
    const std::string_view line = text.substr(0, end);
    const size_t eq = line.find('=');
    if (eq != std::string_view::npos) {
      metadata[std::string(line.substr(0, eq))] = std::string(line.substr(eq + 1));
    }
    if (end == std::string_view::npos) break;
    text.remove_prefix(end + 1);
  }
  static const std::vector<std::chrono::seconds> kAllWindows = {
      std::chrono::seconds(10), std::chrono::seconds(60), std::chrono::seconds(300)};
  const std::vector<std::chrono::seconds> windows(kAllWindows.begin(),
                                                  kAllWindows.begin() + flags % 4);

  const absl::StatusOr<autoscaling::ScalerQuery> query =
      autoscaling::ParseScalerQuery(metadata, windows);
  if (!query.ok()) {
    FUZZ_CHECK(query.status().code() == absl::StatusCode::kInvalidArgument);
    FUZZ_CHECK(absl::StartsWith(query.status().message(), "scalerMetadata."));
    return 0;
  }
  FUZZ_CHECK(std::isfinite(query->target) && query->target > 0);
  FUZZ_CHECK(std::isfinite(query->activation_target) && query->activation_target >= 0);
  FUZZ_CHECK(windows.empty() ? query->window == 0 : query->window < windows.size());
  FUZZ_CHECK(query->model.empty() || query->kind == autoscaling::SignalKind::kBacklogSeconds);
  FUZZ_CHECK(IsMetricName(query->metric_name));
  const absl::StatusOr<autoscaling::ScalerQuery> again =
      autoscaling::ParseScalerQuery(metadata, windows);
  FUZZ_CHECK(again.ok() && again->metric_name == query->metric_name);

  autoscaling::SignalSnapshot empty;
  empty.windows = windows;
  CheckValue(autoscaling::ReadSignal(empty, *query), *query);

  // A snapshot that holds the query's route and model, with one rate fewer than windows.
  autoscaling::SignalSnapshot full;
  full.windows = windows;
  autoscaling::RouteSignal route;
  route.rps.assign(windows.empty() ? 0 : windows.size() - 1, 2.5);
  route.in_flight = 3;
  route.saturation = 0.75;
  full.all = route;
  if (!query->route.empty()) full.routes[query->route] = route;
  full.worker.known = (flags & 0x10) != 0;
  full.worker.queue_depth = 7;
  full.worker.batch_fill = 0.5;
  full.worker.backlog_seconds = 1.5;
  if (!query->model.empty()) {
    autoscaling::ModelBacklog backlog;
    if (flags & 0x20) backlog.backlog_seconds = 0.25;
    full.worker.models[query->model] = backlog;
  }
  CheckValue(autoscaling::ReadSignal(full, *query), *query);
  return 0;
}
