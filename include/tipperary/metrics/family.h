// A metric family: one name, help text and type, with one child metric per label set.
// Families are created through the builders (builder.h) and owned by a Registry.
//
//   Family<Counter>& requests = BuildCounter().Name("tipperary_http_requests_total")
//                                   .Help("HTTP requests handled.").Register(registry);
//   Counter& ok = requests.Add({{"code", "200"}});  // takes a mutex: cache the reference
//   ok.Increment();                                  // lock-free
//
// Children are never removed or moved, so references returned by Add() stay valid for the
// lifetime of the Registry.
#pragma once

#include <concepts>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "tipperary/metrics/counter.h"
#include "tipperary/metrics/gauge.h"
#include "tipperary/metrics/histogram.h"

namespace tipperary::metrics {

using Labels = std::map<std::string, std::string>;

enum class MetricType { kCounter, kGauge, kHistogram };

// Everything that defines a family; what a builder collects.
struct FamilySpec {
  std::string name;
  std::string help;
  Labels constant_labels;  // added to every child's samples
  // Histograms only: buckets used by Family<Histogram>::Add(labels).
  std::optional<Histogram::BucketBoundaries> buckets;
};

class FamilyBase {
 public:
  FamilyBase(const FamilyBase&) = delete;
  FamilyBase& operator=(const FamilyBase&) = delete;
  virtual ~FamilyBase() = default;

  const FamilySpec& spec() const { return spec_; }
  const std::string& name() const { return spec_.name; }
  virtual MetricType type() const = 0;

  // Appends "# HELP", "# TYPE" and every child's samples in text format 0.0.4.
  virtual void AppendText(std::string& out) const = 0;

 protected:
  explicit FamilyBase(FamilySpec spec) : spec_(std::move(spec)) {}
  void AppendHeader(std::string& out) const;
  // Validates label names of a new child; aborts with a message on programming errors.
  void CheckChildLabels(const Labels& labels) const;

 private:
  FamilySpec spec_;
};

template <typename T>
class Family final : public FamilyBase {
 public:
  // Returns the child with these labels, creating it on first use. For histograms this uses the
  // family's buckets (FamilySpec::buckets); it aborts if the family has none.
  T& Add(const Labels& labels);
  // Histograms with per-child buckets. Same labels -> same child; asking for an existing child
  // with different buckets aborts.
  T& Add(const Labels& labels,
         const Histogram::BucketBoundaries& buckets) requires std::same_as<T, Histogram>;

  // Drops the child with these labels, if any. Only for children nobody holds a reference to:
  // an info metric whose label value changes (tipperary_config_info{hash}).
  void Remove(const Labels& labels);

  std::size_t size() const;
  // Calls fn(labels, child) for every child, under the family's lock: for samplers and tests
  // that read values once a second, never for the request path.
  void ForEach(const std::function<void(const Labels&, const T&)>& fn) const;
  MetricType type() const override;
  void AppendText(std::string& out) const override;

 private:
  friend class Registry;
  explicit Family(FamilySpec spec) : FamilyBase(std::move(spec)) {}

  T& AddLocked(const Labels& labels, const Histogram::BucketBoundaries* buckets);

  mutable std::mutex mu_;
  std::map<Labels, std::unique_ptr<T>> children_;
};

extern template class Family<Counter>;
extern template class Family<Gauge>;
extern template class Family<Histogram>;

}  // namespace tipperary::metrics
