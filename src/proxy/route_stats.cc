#include "route_stats.h"

#include "absl/strings/str_cat.h"

namespace tipperary::proxy {

RouteStats::RouteStats(ProxyStats& stats, std::string label, std::string method)
    : stats_(stats),
      label_(std::move(label)),
      method_(std::move(method)),
      duration_(&stats.http_duration->Add({{"route", label_}})),
      in_flight_(&stats.http_in_flight->Add({{"route", label_}})),
      request_bytes_(&stats.http_request_bytes->Add({{"route", label_}})),
      response_bytes_(&stats.http_response_bytes->Add({{"route", label_}})) {}

metrics::Counter& RouteStats::Requests(int http_status) {
  auto it = by_status_.find(http_status);
  if (it != by_status_.end()) return *it->second;
  metrics::Counter& c = stats_.http_requests->Add(
      {{"route", label_}, {"method", method_}, {"code", absl::StrCat(http_status)}});
  by_status_.emplace(http_status, &c);
  return c;
}

std::shared_ptr<RouteStats> RouteStatsCache::For(const transcoder::Route* route) {
  if (route == nullptr) {
    // Unbounded client input never becomes a label: one "unmatched" route, method "-".
    if (!unmatched_) unmatched_ = std::make_shared<RouteStats>(stats_, "unmatched", "-");
    return unmatched_;
  }
  auto it = by_route_.find(route);
  if (it != by_route_.end()) return it->second;
  auto stats = std::make_shared<RouteStats>(stats_, route->label, route->http_method);
  by_route_.emplace(route, stats);
  return stats;
}

}  // namespace tipperary::proxy
