#include "tipperary/metrics/family.h"

#include <limits>
#include <string_view>

#include "check.h"
#include "tipperary/metrics/text_format.h"

namespace tipperary::metrics {
namespace {

const char* TypeName(MetricType type) {
  switch (type) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "untyped";
}

void AppendLabel(std::string& out, bool& first, const std::string& name, std::string_view value) {
  out += first ? '{' : ',';
  first = false;
  out += name;
  out += "=\"";
  AppendEscapedLabelValue(out, value);
  out += '"';
}

// name{constant labels + labels [+ le]} value. The two label maps are disjoint (checked at Add),
// so merging them keeps the output sorted by label name; "le" goes last as the clients do.
void AppendSampleStart(std::string& out, const std::string& name, std::string_view suffix,
                       const Labels& constant_labels, const Labels& labels,
                       const std::string* le = nullptr) {
  out += name;
  out += suffix;
  bool first = true;
  auto a = constant_labels.begin();
  auto b = labels.begin();
  while (a != constant_labels.end() || b != labels.end()) {
    if (b == labels.end() || (a != constant_labels.end() && a->first < b->first)) {
      AppendLabel(out, first, a->first, a->second);
      ++a;
    } else {
      AppendLabel(out, first, b->first, b->second);
      ++b;
    }
  }
  if (le != nullptr) AppendLabel(out, first, "le", *le);
  if (!first) out += '}';
  out += ' ';
}

Histogram::BucketBoundaries WithoutTrailingInf(Histogram::BucketBoundaries bounds) {
  if (!bounds.empty() && bounds.back() == std::numeric_limits<double>::infinity()) {
    bounds.pop_back();
  }
  return bounds;
}

template <typename T>
constexpr MetricType TypeOf() {
  if constexpr (std::is_same_v<T, Counter>) {
    return MetricType::kCounter;
  } else if constexpr (std::is_same_v<T, Gauge>) {
    return MetricType::kGauge;
  } else {
    return MetricType::kHistogram;
  }
}

}  // namespace

void FamilyBase::AppendHeader(std::string& out) const {
  if (!spec_.help.empty()) {
    out += "# HELP ";
    out += spec_.name;
    out += ' ';
    AppendEscapedHelp(out, spec_.help);
    out += '\n';
  }
  out += "# TYPE ";
  out += spec_.name;
  out += ' ';
  out += TypeName(type());
  out += '\n';
}

void FamilyBase::CheckChildLabels(const Labels& labels) const {
  for (const auto& [label, value] : labels) {
    detail::Check(IsValidLabelName(label),
                  "invalid label name '" + label + "' on metric " + spec_.name);
    detail::Check(!spec_.constant_labels.contains(label),
                  "label '" + label + "' of metric " + spec_.name + " is also a constant label");
    detail::Check(type() != MetricType::kHistogram || label != "le",
                  "label 'le' is reserved on histogram " + spec_.name);
  }
}

template <typename T>
T& Family<T>::Add(const Labels& labels) {
  std::lock_guard lock(mu_);
  if constexpr (std::is_same_v<T, Histogram>) {
    auto it = children_.find(labels);
    if (it != children_.end()) return *it->second;
    detail::Check(spec().buckets.has_value(),
                  "histogram " + name() + " has no default buckets; pass them to Add()");
    return AddLocked(labels, &*spec().buckets);
  } else {
    return AddLocked(labels, nullptr);
  }
}

template <typename T>
T& Family<T>::Add(const Labels& labels,
                  const Histogram::BucketBoundaries& buckets) requires std::same_as<T, Histogram> {
  std::lock_guard lock(mu_);
  auto it = children_.find(labels);
  if (it != children_.end()) {
    detail::Check(it->second->boundaries() == WithoutTrailingInf(buckets),
                  "histogram " + name() + " child re-added with different buckets");
    return *it->second;
  }
  return AddLocked(labels, &buckets);
}

template <typename T>
T& Family<T>::AddLocked(const Labels& labels, const Histogram::BucketBoundaries* buckets) {
  auto it = children_.find(labels);
  if (it != children_.end()) return *it->second;
  CheckChildLabels(labels);
  std::unique_ptr<T> child;
  if constexpr (std::is_same_v<T, Histogram>) {
    child = std::make_unique<Histogram>(*buckets);
  } else {
    child = std::make_unique<T>();
  }
  T& ref = *child;
  children_.emplace(labels, std::move(child));
  return ref;
}

template <typename T>
void Family<T>::Remove(const Labels& labels) {
  std::lock_guard lock(mu_);
  children_.erase(labels);
}

template <typename T>
std::size_t Family<T>::size() const {
  std::lock_guard lock(mu_);
  return children_.size();
}

template <typename T>
void Family<T>::ForEach(const std::function<void(const Labels&, const T&)>& fn) const {
  std::lock_guard lock(mu_);
  for (const auto& [labels, child] : children_) fn(labels, *child);
}

template <typename T>
MetricType Family<T>::type() const {
  return TypeOf<T>();
}

template <typename T>
void Family<T>::AppendText(std::string& out) const {
  AppendHeader(out);
  const std::string& metric = name();
  const Labels& constant = spec().constant_labels;
  std::lock_guard lock(mu_);
  for (const auto& [labels, child] : children_) {
    if constexpr (std::is_same_v<T, Histogram>) {
      const std::vector<std::uint64_t> counts = child->BucketCounts();
      const Histogram::BucketBoundaries& bounds = child->boundaries();
      std::uint64_t cumulative = 0;
      for (std::size_t i = 0; i < counts.size(); ++i) {
        cumulative += counts[i];
        const std::string le = i < bounds.size() ? FormatValue(bounds[i]) : "+Inf";
        AppendSampleStart(out, metric, "_bucket", constant, labels, &le);
        out += std::to_string(cumulative);
        out += '\n';
      }
      AppendSampleStart(out, metric, "_sum", constant, labels);
      AppendValue(out, child->Sum());
      out += '\n';
      // The +Inf bucket, so that _count always equals it even while observations race the read.
      AppendSampleStart(out, metric, "_count", constant, labels);
      out += std::to_string(cumulative);
      out += '\n';
    } else {
      AppendSampleStart(out, metric, "", constant, labels);
      AppendValue(out, child->Value());
      out += '\n';
    }
  }
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

}  // namespace tipperary::metrics
