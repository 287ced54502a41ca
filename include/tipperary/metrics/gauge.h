// A value that goes up and down (Prometheus gauge). One atomic: Set() needs a single location,
// and gauges are updated far less often than counters.
//
//   Gauge& open =
//   BuildGauge().Name("tipperary_open_connections").Help("...").Register(reg).Add({});
//   open.Increment();  ...  open.Decrement();
#pragma once

#include <atomic>

namespace tipperary::metrics {

class Gauge {
 public:
  Gauge() = default;
  Gauge(const Gauge&) = delete;
  Gauge& operator=(const Gauge&) = delete;

  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  void Increment(double v = 1.0) { value_.fetch_add(v, std::memory_order_relaxed); }
  void Decrement(double v = 1.0) { value_.fetch_sub(v, std::memory_order_relaxed); }
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

}  // namespace tipperary::metrics
