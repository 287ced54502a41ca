// Cost of the request-path operations: Counter::Increment and Histogram::Observe, alone and with
// two threads hitting the same metric (which the per-thread shards keep off one cache line).
#include <benchmark/benchmark.h>

#include "tipperary/metrics/builder.h"
#include "tipperary/metrics/registry.h"

namespace tipperary::metrics {
namespace {

Registry& BenchRegistry() {
  static auto* registry = new Registry();
  return *registry;
}

Counter& BenchCounter() {
  static Counter& counter =
      BuildCounter().Name("bench_total").Help("Bench.").Register(BenchRegistry()).Add({});
  return counter;
}

Histogram& BenchHistogram() {
  static Histogram& histogram = BuildHistogram()
                                    .Name("bench_seconds")
                                    .Help("Bench.")
                                    .Buckets(DefaultLatencyBuckets())
                                    .Register(BenchRegistry())
                                    .Add({});
  return histogram;
}

void BM_CounterIncrement(benchmark::State& state) {
  Counter& counter = BenchCounter();
  for (auto _ : state) counter.Increment();
}
BENCHMARK(BM_CounterIncrement)->Threads(1)->Threads(2)->UseRealTime();

void BM_HistogramObserve(benchmark::State& state) {
  Histogram& histogram = BenchHistogram();
  double v = 0.0001;
  for (auto _ : state) {
    histogram.Observe(v);
    v = v < 20 ? v * 1.7 : 0.0001;  // walk across the buckets
  }
}
BENCHMARK(BM_HistogramObserve)->Threads(1)->Threads(2)->UseRealTime();

void BM_FamilyAdd(benchmark::State& state) {
  auto& family = BuildCounter().Name("bench_add_total").Help("Bench.").Register(BenchRegistry());
  family.Add({{"code", "200"}});
  for (auto _ : state) benchmark::DoNotOptimize(&family.Add({{"code", "200"}}));
}
BENCHMARK(BM_FamilyAdd);

void BM_Serialize(benchmark::State& state) {
  Registry registry;
  auto& counters = BuildCounter().Name("bench_total").Help("Bench.").Register(registry);
  auto& histograms = BuildHistogram()
                         .Name("bench_seconds")
                         .Help("Bench.")
                         .Buckets(DefaultLatencyBuckets())
                         .Register(registry);
  for (int i = 0; i < 50; ++i) {
    counters.Add({{"route", std::to_string(i)}}).Increment(i);
    histograms.Add({{"route", std::to_string(i)}}).Observe(i * 0.001);
  }
  for (auto _ : state) benchmark::DoNotOptimize(registry.Serialize());
}
BENCHMARK(BM_Serialize);

}  // namespace
}  // namespace tipperary::metrics

BENCHMARK_MAIN();
