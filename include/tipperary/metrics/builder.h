// prometheus-cpp style builders for metric families.
//
//   Family<Counter>& requests = BuildCounter()
//                                   .Name("tipperary_http_requests_total")
//                                   .Help("HTTP requests handled.")
//                                   .Labels({{"listener", "main"}})  // constant labels, optional
//                                   .Register(registry);
//   Family<Histogram>& latency = BuildHistogram()
//                                    .Name("tipperary_request_duration_seconds")
//                                    .Help("Time from request head to response end.")
//                                    .Buckets(DefaultLatencyBuckets())
//                                    .Register(registry);
#pragma once

#include <concepts>
#include <string>
#include <utility>

#include "tipperary/metrics/family.h"
#include "tipperary/metrics/registry.h"

namespace tipperary::metrics {

template <typename T>
class Builder {
 public:
  Builder& Name(std::string name) {
    spec_.name = std::move(name);
    return *this;
  }
  Builder& Help(std::string help) {
    spec_.help = std::move(help);
    return *this;
  }
  // Constant labels, added to every sample of the family.
  Builder& Labels(const ::tipperary::metrics::Labels& labels) {
    spec_.constant_labels = labels;
    return *this;
  }
  // Default buckets for Family<Histogram>::Add(labels).
  Builder& Buckets(Histogram::BucketBoundaries buckets) requires std::same_as<T, Histogram> {
    spec_.buckets = std::move(buckets);
    return *this;
  }
  Family<T>& Register(Registry& registry) const { return registry.Add<T>(spec_); }

 private:
  FamilySpec spec_;
};

inline Builder<Counter> BuildCounter() { return {}; }
inline Builder<Gauge> BuildGauge() { return {}; }
inline Builder<Histogram> BuildHistogram() { return {}; }

}  // namespace tipperary::metrics
