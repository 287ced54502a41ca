// Owns metric families and renders them in the Prometheus text exposition format 0.0.4.
//
//   Registry registry;
//   RegisterProcessMetrics(registry);
//   auto& requests = BuildCounter().Name("tipperary_http_requests_total").Help("...")
//                        .Register(registry);
//   registry.AddCollectHook([&] { queue_depth.Set(queue.size()); });
//   std::string body = registry.Serialize();  // Content-Type: kContentType
//
// All methods are thread-safe. Serialize() locks each family while reading it, which only ever
// contends with Add() (startup / first use), never with Increment() or Observe().
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "tipperary/metrics/family.h"

namespace tipperary::metrics {

class Registry {
 public:
  static constexpr const char* kContentType = "text/plain; version=0.0.4; charset=utf-8";

  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Returns the family named spec.name, creating it on first use. Registering a name again with
  // the same type, help, constant labels and buckets returns the existing family; anything else
  // (or an invalid metric/label name) aborts with a message: names are constants in code.
  // Prefer the builders (builder.h) to calling this directly.
  template <typename T>
  Family<T>& Add(FamilySpec spec);

  bool HasFamily(const std::string& name) const;

  // Hooks run, in the order added, at the start of every Serialize(), e.g. to refresh gauges that
  // are computed at scrape time. They may run concurrently if Serialize() is called concurrently.
  void AddCollectHook(std::function<void()> hook);

  // Families sorted by name; within a family, children sorted by labels.
  std::string Serialize() const;

 private:
  mutable std::mutex mu_;
  mutable std::mutex hooks_mu_;  // Held while the collect hooks run (one scrape at a time).
  std::map<std::string, std::unique_ptr<FamilyBase>> families_;
  std::vector<std::shared_ptr<const std::function<void()>>> hooks_;
};

extern template Family<Counter>& Registry::Add<Counter>(FamilySpec);
extern template Family<Gauge>& Registry::Add<Gauge>(FamilySpec);
extern template Family<Histogram>& Registry::Add<Histogram>(FamilySpec);

}  // namespace tipperary::metrics
