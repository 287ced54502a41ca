#include "tipperary/metrics/registry.h"

#include "check.h"
#include "tipperary/metrics/text_format.h"

namespace tipperary::metrics {

template <typename T>
Family<T>& Registry::Add(FamilySpec spec) {
  detail::Check(IsValidMetricName(spec.name), "invalid metric name '" + spec.name + "'");
  for (const auto& [label, value] : spec.constant_labels) {
    detail::Check(IsValidLabelName(label),
                  "invalid label name '" + label + "' on metric " + spec.name);
    detail::Check(!std::is_same_v<T, Histogram> || label != "le",
                  "label 'le' is reserved on histogram " + spec.name);
  }
  if constexpr (std::is_same_v<T, Histogram>) {
    // Validates (aborting on bad bounds) and normalizes the default buckets.
    if (spec.buckets) spec.buckets = Histogram(*spec.buckets).boundaries();
  } else {
    spec.buckets.reset();
  }

  std::lock_guard lock(mu_);
  auto it = families_.find(spec.name);
  if (it != families_.end()) {
    auto* existing = dynamic_cast<Family<T>*>(it->second.get());
    detail::Check(existing != nullptr,
                  "metric " + spec.name + " registered again with a different type");
    const FamilySpec& old = existing->spec();
    detail::Check(old.help == spec.help && old.constant_labels == spec.constant_labels &&
                      old.buckets == spec.buckets,
                  "metric " + spec.name +
                      " registered again with different help, constant labels or buckets");
    return *existing;
  }
  auto* family = new Family<T>(std::move(spec));
  families_.emplace(family->name(), std::unique_ptr<FamilyBase>(family));
  return *family;
}

template Family<Counter>& Registry::Add<Counter>(FamilySpec);
template Family<Gauge>& Registry::Add<Gauge>(FamilySpec);
template Family<Histogram>& Registry::Add<Histogram>(FamilySpec);

bool Registry::HasFamily(const std::string& name) const {
  std::lock_guard lock(mu_);
  return families_.contains(name);
}

void Registry::AddCollectHook(std::function<void()> hook) {
  auto shared = std::make_shared<const std::function<void()>>(std::move(hook));
  std::lock_guard lock(mu_);
  hooks_.push_back(std::move(shared));
}

std::string Registry::Serialize() const {
  // Hooks run outside mu_ so that they may register families or call Add() themselves, and one
  // scrape at a time: a hook may keep state between scrapes (the last totals it exported).
  std::lock_guard hooks_lock(hooks_mu_);
  std::vector<std::shared_ptr<const std::function<void()>>> hooks;
  {
    std::lock_guard lock(mu_);
    hooks = hooks_;
  }
  for (const auto& hook : hooks) (*hook)();

  std::string out;
  std::lock_guard lock(mu_);
  for (const auto& [name, family] : families_) family->AppendText(out);
  return out;
}

}  // namespace tipperary::metrics
