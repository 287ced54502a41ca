#include "tipperary/autoscaling/scaler_query.h"

#include <cctype>
#include <cmath>
#include <optional>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace tipperary::autoscaling {
namespace {

constexpr std::pair<const char*, SignalKind> kKinds[] = {
    {"rps", SignalKind::kRps},
    {"inflight", SignalKind::kInFlight},
    {"saturation", SignalKind::kSaturation},
    {"queue_depth", SignalKind::kQueueDepth},
    {"batch_fill", SignalKind::kBatchFill},
    {"backlog_seconds", SignalKind::kBacklogSeconds},
};

const std::string* Find(const std::map<std::string, std::string>& m, const char* key) {
  auto it = m.find(key);
  return it == m.end() ? nullptr : &it->second;
}

absl::StatusOr<double> ParseNumber(const std::string& key, const std::string& text, bool positive) {
  double v = 0;
  if (!absl::SimpleAtod(text, &v) || !std::isfinite(v) || v < 0 || (positive && v == 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("scalerMetadata.", key, ": \"", text, "\" is not a ",
                     positive ? "positive" : "non-negative", " number"));
  }
  return v;
}

// Metric names end up in HPA objects: lower-case letters, digits and '-' only.
std::string Slug(const std::string& text) {
  std::string out;
  for (char c : text) {
    unsigned char u = static_cast<unsigned char>(c);
    if (std::isalnum(u)) {
      out += static_cast<char>(std::tolower(u));
    } else if (!out.empty() && out.back() != '-') {
      out += '-';
    }
  }
  while (!out.empty() && out.back() == '-') out.pop_back();
  return out.empty() ? "all" : out;
}

}  // namespace

absl::StatusOr<ScalerQuery> ParseScalerQuery(const std::map<std::string, std::string>& metadata,
                                             const std::vector<std::chrono::seconds>& windows) {
  ScalerQuery q;
  std::string kind_name = "rps";
  if (const std::string* metric = Find(metadata, "metric")) {
    kind_name = *metric;
    bool found = false;
    std::vector<std::string> names;
    for (const auto& [name, kind] : kKinds) {
      names.push_back(name);
      if (*metric == name) {
        q.kind = kind;
        found = true;
      }
    }
    if (!found) {
      return absl::InvalidArgumentError(absl::StrCat("scalerMetadata.metric: unknown metric \"",
                                                     *metric, "\" (use ",
                                                     absl::StrJoin(names, ", "), ")"));
    }
  }
  if (const std::string* route = Find(metadata, "route")) q.route = *route;
  if (const std::string* model = Find(metadata, "model")) {
    if (q.kind != SignalKind::kBacklogSeconds) {
      return absl::InvalidArgumentError(
          "scalerMetadata.model: only metric backlog_seconds is per model");
    }
    if (model->empty()) {
      return absl::InvalidArgumentError(
          "scalerMetadata.model: empty (leave it out for all models)");
    }
    q.model = *model;
  }
  std::string window_name;
  if (const std::string* window = Find(metadata, "window")) {
    if (q.kind != SignalKind::kRps) {
      return absl::InvalidArgumentError("scalerMetadata.window: only metric rps has a window");
    }
    bool found = false;
    std::vector<std::string> names;
    for (size_t i = 0; i < windows.size(); ++i) {
      std::string name = absl::StrCat(windows[i].count(), "s");
      names.push_back(name);
      if (*window == name) {
        q.window = i;
        found = true;
      }
    }
    if (!found) {
      return absl::InvalidArgumentError(absl::StrCat("scalerMetadata.window: \"", *window,
                                                     "\" is not a rate window of this proxy (",
                                                     absl::StrJoin(names, ", "), ")"));
    }
  }
  if (q.kind == SignalKind::kRps && !windows.empty()) {
    window_name = absl::StrCat("-", windows[q.window].count(), "s");
  }
  const std::string* target = Find(metadata, "target");
  if (target == nullptr) {
    return absl::InvalidArgumentError(
        "scalerMetadata.target is required: the value per replica to scale on, e.g. \"20\"");
  }
  absl::StatusOr<double> t = ParseNumber("target", *target, true);
  if (!t.ok()) return t.status();
  q.target = *t;
  if (const std::string* activation = Find(metadata, "activationTarget")) {
    absl::StatusOr<double> a = ParseNumber("activationTarget", *activation, false);
    if (!a.ok()) return a.status();
    q.activation_target = *a;
  }
  std::string scope = q.route.empty() ? "all" : Slug(q.route);
  if (!q.model.empty()) scope = absl::StrCat("model-", Slug(q.model));
  q.metric_name = absl::StrCat("tipperary-", Slug(kind_name), window_name, "-", scope);
  return q;
}

std::optional<double> ReadSignal(const SignalSnapshot& s, const ScalerQuery& q) {
  switch (q.kind) {
    case SignalKind::kQueueDepth:
      return s.worker.queue_depth;
    case SignalKind::kBatchFill:
      return s.worker.batch_fill;
    case SignalKind::kBacklogSeconds: {
      if (!s.worker.known) return std::nullopt;
      if (q.model.empty()) return s.worker.backlog_seconds;
      auto it = s.worker.models.find(q.model);
      if (it == s.worker.models.end()) return std::nullopt;
      return it->second.backlog_seconds;
    }
    default:
      break;
  }
  const RouteSignal* r = &s.all;
  if (!q.route.empty()) {
    auto it = s.routes.find(q.route);
    if (it == s.routes.end()) return 0;
    r = &it->second;
  }
  switch (q.kind) {
    case SignalKind::kRps:
      return q.window < r->rps.size() ? r->rps[q.window] : 0;
    case SignalKind::kInFlight:
      return r->in_flight;
    case SignalKind::kSaturation:
      return r->saturation;
    default:
      return 0;
  }
}

}  // namespace tipperary::autoscaling
