// Envoy-style stats tables: one X-macro per component names all of its metrics once; the table
// both declares a struct of family pointers and registers them.
//
//   // TABLE(COUNTER, GAUGE, HISTOGRAM): one entry per metric.
//   //   COUNTER(member, "metric_name", "help")
//   //   GAUGE(member, "metric_name", "help")
//   //   HISTOGRAM(member, "metric_name", "help", buckets...)   // any Histogram::BucketBoundaries
//   #define TIPPERARY_PROXY_METRICS(COUNTER, GAUGE, HISTOGRAM)  (line continuations omitted)
//     COUNTER(http_requests, "tipperary_http_requests_total", "HTTP requests handled.")
//     GAUGE(open_connections, "tipperary_open_connections", "Open downstream connections.")
//     HISTOGRAM(request_duration, "tipperary_request_duration_seconds", "Request latency.",
//               ::tipperary::metrics::DefaultLatencyBuckets())
//
//   TIPPERARY_DECLARE_METRICS_STRUCT(ProxyMetrics, TIPPERARY_PROXY_METRICS);
//
//   // ProxyMetrics has members `Family<Counter>* http_requests`, `Family<Gauge>*
//   // open_connections`, `Family<Histogram>* request_duration` (buckets preset), and
//   // static ProxyMetrics Register(Registry&, const Labels& constant_labels = {});
//
//   ProxyMetrics m = ProxyMetrics::Register(registry);
//   Counter& ok = m.http_requests->Add({{"code", "200"}});
//   m.request_duration->Add({}).Observe(0.01);
//
// Registering the same table twice on one registry returns the same families.
#pragma once

#include "tipperary/metrics/builder.h"
#include "tipperary/metrics/family.h"
#include "tipperary/metrics/histogram.h"
#include "tipperary/metrics/registry.h"

#define TIPPERARY_METRICS_DETAIL_COUNTER_MEMBER(member, name, help) \
  ::tipperary::metrics::Family<::tipperary::metrics::Counter>* member = nullptr;
#define TIPPERARY_METRICS_DETAIL_GAUGE_MEMBER(member, name, help) \
  ::tipperary::metrics::Family<::tipperary::metrics::Gauge>* member = nullptr;
#define TIPPERARY_METRICS_DETAIL_HISTOGRAM_MEMBER(member, name, help, ...) \
  ::tipperary::metrics::Family<::tipperary::metrics::Histogram>* member = nullptr;

#define TIPPERARY_METRICS_DETAIL_COUNTER_REGISTER(member, name, help) \
  metrics_.member = &::tipperary::metrics::BuildCounter()             \
                         .Name(name)                                  \
                         .Help(help)                                  \
                         .Labels(constant_labels_)                    \
                         .Register(registry_);
#define TIPPERARY_METRICS_DETAIL_GAUGE_REGISTER(member, name, help) \
  metrics_.member = &::tipperary::metrics::BuildGauge()             \
                         .Name(name)                                \
                         .Help(help)                                \
                         .Labels(constant_labels_)                  \
                         .Register(registry_);
#define TIPPERARY_METRICS_DETAIL_HISTOGRAM_REGISTER(member, name, help, ...) \
  metrics_.member = &::tipperary::metrics::BuildHistogram()                  \
                         .Name(name)                                         \
                         .Help(help)                                         \
                         .Labels(constant_labels_)                           \
                         .Buckets(__VA_ARGS__)                               \
                         .Register(registry_);

// Declares `struct StructName` with one Family<X>* member per TABLE entry and
// `static StructName Register(Registry&, const Labels& constant_labels = {})`.
#define TIPPERARY_DECLARE_METRICS_STRUCT(StructName, TABLE)                                     \
  struct StructName {                                                                           \
    TABLE(TIPPERARY_METRICS_DETAIL_COUNTER_MEMBER, TIPPERARY_METRICS_DETAIL_GAUGE_MEMBER,       \
          TIPPERARY_METRICS_DETAIL_HISTOGRAM_MEMBER)                                            \
    static StructName Register(::tipperary::metrics::Registry& registry_,                       \
                               const ::tipperary::metrics::Labels& constant_labels_ = {}) {     \
      StructName metrics_;                                                                      \
      TABLE(TIPPERARY_METRICS_DETAIL_COUNTER_REGISTER, TIPPERARY_METRICS_DETAIL_GAUGE_REGISTER, \
            TIPPERARY_METRICS_DETAIL_HISTOGRAM_REGISTER)                                        \
      return metrics_;                                                                          \
    }                                                                                           \
  }
