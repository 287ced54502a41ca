// The worker's metrics: every family it exports, declared once in a stats table and registered
// together. Every family but the GPU gauges, the cache's bound and the config reload ones
// carries a `model` label (the config's model name).
#pragma once

#include "tipperary/metrics/histogram.h"
#include "tipperary/metrics/stats_table.h"

namespace tipperary::worker {

inline metrics::Histogram::BucketBoundaries BatchSizeBuckets() {
  return metrics::ExponentialBuckets(1, 2, 12);  // 1 ... 2048 texts
}
inline metrics::Histogram::BucketBoundaries BatchTokenBuckets() {
  return metrics::ExponentialBuckets(16, 2, 14);  // 16 ... 131072 tokens
}
inline metrics::Histogram::BucketBoundaries RatioBuckets() {
  return metrics::LinearBuckets(0.1, 0.1, 9);  // 0.1 ... 0.9
}
inline metrics::Histogram::BucketBoundaries ModelLatencyBuckets() {
  return metrics::ExponentialBuckets(0.0001, 2, 18);  // 100us ... ~13s
}

// clang-format off
#define TIPPERARY_WORKER_METRICS(COUNTER, GAUGE, HISTOGRAM)                                       \
  COUNTER(requests, "tipperary_worker_requests_total",                                            \
          "gRPC requests finished, by model and gRPC status code.")                               \
  COUNTER(inputs, "tipperary_worker_inputs_total", "Texts embedded (or tokenised).")              \
  COUNTER(tokens, "tipperary_worker_tokens_total",                                                \
          "Tokens of the texts embedded, [CLS] and [SEP] included.")                              \
  GAUGE(queue_depth, "tipperary_worker_queue_depth", "Texts waiting in the batcher's queue.")      \
  GAUGE(queued_tokens, "tipperary_worker_queued_tokens",                                          \
        "Real (unpadded) tokens of the texts waiting in the batcher's queue.")                    \
  GAUGE(tokens_per_second, "tipperary_worker_tokens_per_second",                                  \
        "Real tokens per second of busy time the model has been sustaining over "                  \
        "batching.throughput_window, times its instances.")                                       \
  GAUGE(backlog_seconds, "tipperary_worker_backlog_seconds",                                      \
        "Seconds of work queued: queued tokens / tokens per second.")                              \
  GAUGE(ready, "tipperary_worker_ready", "1 when the models are loaded and warm and not draining.")\
  GAUGE(warmup_seconds, "tipperary_worker_warmup_seconds",                                        \
        "Seconds the model's last load spent warming its encoders (models[].warmup).")           \
  GAUGE(warmup_batches, "tipperary_worker_warmup_batches",                                        \
        "Batch shape buckets the model's last load ran on each encoder before it was ready.")    \
  COUNTER(lane_batches, "tipperary_worker_lane_batches_total",                                    \
          "Batches run, by lane: interactive (aged bulk texts included) or bulk.")               \
  COUNTER(aged_texts, "tipperary_worker_aged_texts_total",                                        \
          "Bulk texts batched as interactive after waiting batching.priority_aging.")            \
  HISTOGRAM(batch_size, "tipperary_worker_batch_size", "Texts per batch run by the model.",       \
            ::tipperary::worker::BatchSizeBuckets())                                              \
  HISTOGRAM(batch_tokens, "tipperary_worker_batch_tokens",                                        \
            "Padded tokens per batch (texts x the longest one).",                                 \
            ::tipperary::worker::BatchTokenBuckets())                                             \
  HISTOGRAM(padding_ratio, "tipperary_worker_padding_ratio",                                      \
            "Share of a batch's padded tokens that are padding.",                                 \
            ::tipperary::worker::RatioBuckets())                                                  \
  HISTOGRAM(queue_duration, "tipperary_worker_queue_duration_seconds",                            \
            "Time a text waited in the queue before its batch formed.",                           \
            ::tipperary::worker::ModelLatencyBuckets())                                           \
  HISTOGRAM(compute_duration, "tipperary_worker_compute_duration_seconds",                        \
            "Model time per batch.", ::tipperary::worker::ModelLatencyBuckets())                  \
  COUNTER(cache_hits, "tipperary_worker_cache_hits_total",                                      \
          "Texts answered from the embedding cache, without computing.")                         \
  COUNTER(cache_misses, "tipperary_worker_cache_misses_total",                                  \
          "Texts looked up in the embedding cache and not found (only while it is on).")          \
  COUNTER(cache_evictions, "tipperary_worker_cache_evictions_total",                            \
          "The model's cache entries evicted to keep the cache within cache.max_bytes.")          \
  GAUGE(cache_bytes, "tipperary_worker_cache_bytes",                                            \
        "Bytes the model's entries hold in the embedding cache (ids, vector, bookkeeping).")      \
  GAUGE(cache_entries, "tipperary_worker_cache_entries",                                        \
        "Entries the model has in the embedding cache.")                                          \
  GAUGE(cache_max_bytes, "tipperary_worker_cache_max_bytes",                                    \
        "cache.max_bytes in effect, all models together (0 = no cache).")                          \
  COUNTER(dedup_joins, "tipperary_worker_dedup_joins_total",                                    \
          "Texts that joined an identical text already queued or executing instead of being "     \
          "computed again.")                                                                       \
  GAUGE(gpu_utilization, "tipperary_gpu_utilization_ratio",                                       \
        "GPU busy ratio over NVML's last sample period (CUDA backend only).")                     \
  GAUGE(gpu_memory_used, "tipperary_gpu_memory_used_bytes",                                       \
        "GPU memory in use (CUDA backend only).")                                                 \
  COUNTER(config_reloads, "tipperary_config_reload_total",                                        \
          "Config reloads (SIGHUP, POST /reload) by result: applied, unchanged, rejected.")       \
  GAUGE(config_last_reload_success, "tipperary_config_last_reload_success_timestamp_seconds",     \
        "Unix time the config in effect was loaded: at start, then at each applied or "           \
        "unchanged reload.")                                                                       \
  GAUGE(config_info, "tipperary_config_info",                                                     \
        "Always 1; hash is the SHA-256 of the config in effect (GET /config), one series.")
// clang-format on

TIPPERARY_DECLARE_METRICS_STRUCT(WorkerStats, TIPPERARY_WORKER_METRICS);

}  // namespace tipperary::worker
