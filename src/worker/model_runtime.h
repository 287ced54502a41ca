// One served model: its weights, tokenizer, `instances` encoders and the queue that feeds them
// (EmbedQueue: the embedding cache, in-flight deduplication and the dynamic batcher). Requests
// tokenise with tokenizer(), then Submit() an EmbedTask; the batcher's executor threads run the
// encoders and the queue scatters the pooled rows back into the tasks.
//
//   absl::StatusOr<std::unique_ptr<ModelRuntime>> rt =
//       ModelRuntime::Load(model_cfg, batching, cache_cfg, cache, stats);
//   auto task = std::make_shared<EmbedTask>(ids, truncated, cancelled, on_done);
//   absl::Status s = (*rt)->Submit(task, deadline);  // RESOURCE_EXHAUSTED when the queue is full
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "embed_queue.h"
#include "embed_task.h"
#include "embedding_cache.h"
#include "throughput_estimator.h"
#include "tipperary/batcher/dynamic_batcher.h"
#include "tipperary/config/worker_config.h"
#include "tipperary/model/encoder.h"
#include "tipperary/model/model_bundle.h"
#include "tipperary/model/tokenizer.h"
#include "worker_stats.h"

namespace tipperary::worker {

class ModelRuntime {
 public:
  // Loads the model and tokenizer, builds the encoders on the configured backend, runs the
  // warm-up batches of config.warmup through each (warmup_plan.h; logged as "model warmed", the
  // tipperary_worker_warmup_* gauges) and starts the batcher. `cache` (shared by every model; may
  // be null) answers texts it holds for this runtime; cache_config.dedup sets deduplication.
  static absl::StatusOr<std::unique_ptr<ModelRuntime>> Load(
      const config::WorkerModelConfig& config, const config::WorkerBatchingConfig& batching,
      const config::WorkerCacheConfig& cache_config, std::shared_ptr<EmbeddingCache> cache,
      const WorkerStats& stats);
  // Stops the queue (joining its threads), so the last reference must not be dropped on one
  // of them unless Stop() already ran (a reload stops a model before letting it go). Then drops
  // this runtime's cache entries.
  ~ModelRuntime();

  const std::string& name() const { return config_.name; }
  // The other names it answers to: the configured aliases, then its Hugging Face id and short
  // name (model_card.h) unless config huggingface_aliases is false; none repeats the name.
  const std::vector<std::string>& aliases() const { return aliases_; }
  // "org/name" as the model's files say (model_card.h), whatever huggingface_aliases says; ""
  // when they do not.
  const std::string& huggingface_id() const { return huggingface_id_; }
  // Token ids the model takes: [0, vocabulary_size()), the smaller of the tokenizer's
  // vocabulary and the model's embedding table.
  int64_t vocabulary_size() const;
  const config::WorkerModelConfig& config() const { return config_; }
  const model::ModelConfig& model_config() const { return bundle_->config(); }
  const model::Tokenizer& tokenizer() const { return *tokenizer_; }
  int max_seq_length() const { return max_seq_length_; }
  int dim() const { return dim_; }
  bool normalize() const { return bundle_->config().normalize; }
  const std::string& backend() const { return backend_; }
  const std::string& dtype() const { return dtype_; }
  // Encoders serving the model: config instances, or what its 0 (auto) resolved to.
  int instances() const { return instances_; }
  std::string pooling() const;

  // Takes every text of the task (all or none; embed_queue.h). The task's `done` runs once all
  // of them are computed, answered from the cache or rejected, on one of the queue's threads,
  // never inside Submit. A full queue's RESOURCE_EXHAUSTED carries a google.rpc.RetryInfo: the
  // backlog, the time this model needs to work through what is queued now (at least 1 ms, so
  // that the proxy's Retry-After, rounded up to seconds, is at least 1).
  absl::Status Submit(const std::shared_ptr<EmbedTask>& task, batcher::TimePoint deadline);

  size_t queue_depth() const { return queue_->queue_depth(); }
  // Real tokens of the texts waiting in the batcher's queue (not those executing).
  uint64_t queued_tokens() const { return queue_->batcher_stats().queued_tokens; }
  // The queued tokens now, the sustained rate and the backlog they imply, read together
  // (throughput_estimator.h): what /autoscaling, the metrics and a full queue's RetryInfo report.
  struct Backlog {
    uint64_t queued_tokens = 0;
    std::optional<double> tokens_per_second;  // nullopt: nothing measured yet
    std::optional<double> seconds;            // nullopt: tokens queued and no rate yet
  };
  Backlog backlog() const {
    const uint64_t queued = queued_tokens();
    return {queued, throughput_->TokensPerSecond(), throughput_->BacklogSeconds(queued)};
  }
  // This model's batch histograms (texts, padded tokens): their counts and sums are the
  // cumulative batch figures the admin /autoscaling endpoint reports.
  const metrics::Histogram& batch_sizes() const { return *batch_size_; }
  const metrics::Histogram& batch_tokens() const { return *batch_tokens_; }
  // Stop accepting; queued work runs until `deadline`, the rest is rejected UNAVAILABLE.
  void Drain(batcher::TimePoint deadline) { queue_->Drain(deadline); }
  void Stop() { queue_->Stop(); }
  // A config reload's batching knobs, for the batches formed from now on (instances and the
  // encoders' sizes stay: a CUDA encoder splits a bigger batch into passes of the size it was
  // built for).
  void SetBatching(const config::WorkerBatchingConfig& batching);
  // A config reload's cache.dedup, for the texts submitted from then on.
  void SetDedup(bool dedup) { queue_->SetDedup(dedup); }

  // True once an encoder of any model has reported itself unusable (model::IsEncoderUnusable:
  // a sticky CUDA error loses the GPU context of the whole process, so every CUDA model is
  // affected). From then on the worker is not ready (/readyz fails); with the model's
  // on_device_fault: exit (the default) the process exits with kDeviceFaultExitCode instead.
  static bool device_faulted();
  static constexpr int kDeviceFaultExitCode = 70;  // EX_SOFTWARE

 private:
  ModelRuntime(config::WorkerModelConfig config, std::shared_ptr<const model::ModelBundle> bundle,
               std::unique_ptr<model::Tokenizer> tokenizer, const WorkerStats& stats);

  // EmbedQueue's Encode: runs one batch on a free encoder and observes the batch metrics.
  absl::Status Encode(const batcher::Batch& batch, const std::vector<std::vector<int32_t>>& ids,
                      std::vector<float>* out, std::chrono::nanoseconds* compute);
  model::Encoder* AcquireEncoder(bool bulk);
  void ReleaseEncoder(model::Encoder* encoder);
  // An encoder returned an unusable-encoder status: mark the process faulted; exit if so
  // configured.
  void OnDeviceFault(const absl::Status& status);

  const config::WorkerModelConfig config_;
  std::vector<std::string> aliases_;
  std::string huggingface_id_;
  std::shared_ptr<const model::ModelBundle> bundle_;
  std::unique_ptr<model::Tokenizer> tokenizer_;
  int max_seq_length_ = 0;
  int dim_ = 0;
  std::string backend_;
  std::string dtype_;
  int instances_ = 1;

  // Metric children for this model, resolved once.
  metrics::Histogram* batch_size_;
  metrics::Histogram* batch_tokens_;
  metrics::Histogram* padding_ratio_;
  metrics::Histogram* queue_duration_;
  metrics::Histogram* compute_duration_;
  metrics::Counter* interactive_batches_;
  metrics::Counter* bulk_batches_;
  metrics::Counter* aged_texts_;
  CacheAccount cache_account_;
  EmbedQueue::Metrics queue_metrics_;
  std::unique_ptr<ThroughputEstimator> throughput_;  // Made by Load, before the first batch.

  std::vector<std::unique_ptr<model::Encoder>> encoders_;
  absl::Mutex pool_mu_;
  std::vector<model::Encoder*> free_encoders_ ABSL_GUARDED_BY(pool_mu_);

  std::unique_ptr<EmbedQueue> queue_;  // Last: its threads use everything above.
};

}  // namespace tipperary::worker
