#include "model_runtime.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "encoder_factory.h"
#include "status_details.h"
#include "tipperary/common/log.h"
#include "tipperary/model/model_card.h"
#include "warmup_plan.h"

namespace tipperary::worker {
namespace {

double Seconds(std::chrono::nanoseconds d) { return std::chrono::duration<double>(d).count(); }

batcher::BatcherOptions BatcherOptionsOf(const config::WorkerBatchingConfig& batching) {
  batcher::BatcherOptions options;
  options.max_batch_size = batching.max_batch_size;
  options.max_batch_tokens = batching.max_batch_tokens;
  options.max_queue_delay = batching.max_queue_delay;
  options.max_queue = batching.max_queue;
  options.group_by_length = batching.group_by_length;
  options.dispatch_when_idle = batching.dispatch_when_idle;
  options.priority_aging = batching.priority_aging;
  options.interactive_instances = batching.interactive_instances;
  return options;
}

}  // namespace

ModelRuntime::ModelRuntime(config::WorkerModelConfig config,
                           std::shared_ptr<const model::ModelBundle> bundle,
                           std::unique_ptr<model::Tokenizer> tokenizer, const WorkerStats& stats)
    : config_(std::move(config)), bundle_(std::move(bundle)), tokenizer_(std::move(tokenizer)) {
  metrics::Labels labels{{"model", config_.name}};
  batch_size_ = &stats.batch_size->Add(labels);
  batch_tokens_ = &stats.batch_tokens->Add(labels);
  padding_ratio_ = &stats.padding_ratio->Add(labels);
  queue_duration_ = &stats.queue_duration->Add(labels);
  compute_duration_ = &stats.compute_duration->Add(labels);
  interactive_batches_ =
      &stats.lane_batches->Add({{"model", config_.name}, {"lane", "interactive"}});
  bulk_batches_ = &stats.lane_batches->Add({{"model", config_.name}, {"lane", "bulk"}});
  aged_texts_ = &stats.aged_texts->Add(labels);
  // Resolved now, so that every series shows from the start (at 0).
  cache_account_.bytes = &stats.cache_bytes->Add(labels);
  cache_account_.entries = &stats.cache_entries->Add(labels);
  cache_account_.evictions = &stats.cache_evictions->Add(labels);
  queue_metrics_.cache_hits = &stats.cache_hits->Add(labels);
  queue_metrics_.cache_misses = &stats.cache_misses->Add(labels);
  queue_metrics_.dedup_joins = &stats.dedup_joins->Add(labels);
}

// The queue stops (and drops this runtime's cache entries) before the encoders go.
ModelRuntime::~ModelRuntime() { queue_.reset(); }

int64_t ModelRuntime::vocabulary_size() const {
  int64_t size = static_cast<int64_t>(tokenizer_->vocab_size());
  int table = bundle_->config().vocab_size;
  return table > 0 ? std::min<int64_t>(size, table) : size;
}

std::string ModelRuntime::pooling() const {
  return bundle_->config().pooling == model::PoolingMode::kCls ? "cls" : "mean";
}

absl::StatusOr<std::unique_ptr<ModelRuntime>> ModelRuntime::Load(
    const config::WorkerModelConfig& config, const config::WorkerBatchingConfig& batching,
    const config::WorkerCacheConfig& cache_config, std::shared_ptr<EmbeddingCache> cache,
    const WorkerStats& stats) {
  auto error = [&](const absl::Status& status) {
    return absl::Status(status.code(), absl::StrCat("model ", config.name, " (", config.path,
                                                    "): ", status.message()));
  };
  absl::StatusOr<std::shared_ptr<const model::ModelBundle>> bundle = model::LoadModel(config.path);
  if (!bundle.ok()) return error(bundle.status());
  absl::StatusOr<model::Tokenizer> tokenizer = model::Tokenizer::Load(config.path);
  if (!tokenizer.ok()) return error(tokenizer.status());

  std::unique_ptr<ModelRuntime> rt(new ModelRuntime(
      config, *bundle, std::make_unique<model::Tokenizer>(std::move(*tokenizer)), stats));
  const model::ModelConfig& mc = (*bundle)->config();
  std::vector<std::string> aliases = config.aliases;
  rt->huggingface_id_ = model::HuggingFaceId(config.path).value_or("");
  if (config.huggingface_aliases && !rt->huggingface_id_.empty()) {
    aliases.push_back(rt->huggingface_id_);
    aliases.emplace_back(model::ShortName(rt->huggingface_id_));
  }
  for (std::string& alias : aliases) {
    bool repeated = alias == config.name;
    for (const std::string& kept : rt->aliases_) repeated = repeated || kept == alias;
    if (!repeated) rt->aliases_.push_back(std::move(alias));
  }
  rt->max_seq_length_ = mc.max_seq_length;
  if (config.max_seq_length != 0) {
    if (static_cast<int>(config.max_seq_length) > mc.max_seq_length) {
      return error(absl::InvalidArgumentError(absl::StrCat("max_seq_length ", config.max_seq_length,
                                                           " is more than the model's ",
                                                           mc.max_seq_length)));
    }
    rt->max_seq_length_ = static_cast<int>(config.max_seq_length);
  }

  absl::StatusOr<std::string> backend = ResolveBackend(config.backend);
  if (!backend.ok()) return error(backend.status());
  rt->backend_ = *backend;
  // instances 0 = auto: two on a GPU, each with its own stream, so that one instance's host
  // work (packing, copies, waiting) overlaps the other's kernels; one on the CPU, where the
  // threads of one encoder already use every core.
  const uint32_t instances =
      config.instances != 0 ? config.instances : (*backend == "cuda" ? 2 : 1);
  rt->instances_ = static_cast<int>(instances);
  int threads = static_cast<int>(config.threads);
  if (threads == 0 && *backend == "cpu") {
    int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    threads = std::max(1, cores / static_cast<int>(instances));
  }
  rt->throughput_ = std::make_unique<ThroughputEstimator>(batching.throughput_window,
                                                          static_cast<int>(instances));
  // Warm-up (models[].warmup): every batch shape bucket on every encoder, so that the first
  // requests after ready do not pay for a shape's first batch (lazy allocations, GEMM code paths,
  // cuBLAS handles and algorithm choice, the weights' first page touches), and a broken backend
  // fails at start.
  const std::vector<WarmupShape> shapes =
      WarmupShapes(config.warmup, static_cast<int>(batching.max_batch_size),
                   static_cast<int>(batching.max_batch_tokens), rt->max_seq_length_);
  // Any token of the vocabulary: the cost does not depend on which.
  const int32_t filler = rt->tokenizer_->unk_id();
  std::chrono::nanoseconds warmup_time{0};  // The batches only, not building the encoders.
  int64_t warmup_tokens = 0;
  // With instances kept for interactive batches, the others (which run the bulk batches) compute
  // at idle OS priority on the CPU, so that the kept ones and the I/O threads preempt them.
  const uint32_t kept = std::min(batching.interactive_instances, instances - 1);
  const bool idle_bulk = *backend == "cpu" && kept > 0 && batching.bulk_cpu_priority == "idle";
  // One copy of the CPU weights for all the model's instances (read-only; each has its scratch).
  std::shared_ptr<const model::CpuEncoderWeights> cpu_weights;
  for (uint32_t i = 0; i < instances; ++i) {
    absl::StatusOr<std::unique_ptr<model::Encoder>> encoder =
        CreateEncoder(*bundle, *backend, config, batching, rt->max_seq_length_, threads,
                      /*idle_priority=*/idle_bulk && i >= kept, &cpu_weights);
    if (!encoder.ok()) return error(encoder.status());
    rt->dim_ = (*encoder)->hidden_size();
    rt->dtype_ = (*encoder)->dtype();
    for (const WarmupShape& shape : shapes) {
      std::vector<float> out;
      const std::vector<std::vector<int32_t>> ids =
          WarmupBatch(shape, rt->tokenizer_->cls_id(), filler, rt->tokenizer_->sep_id());
      const batcher::TimePoint start = batcher::Clock::now();
      if (absl::Status s = (*encoder)->Encode(ids, &out); !s.ok()) {
        return error(
            absl::Status(s.code(), absl::StrCat("warm-up (", shape.batch, " x ", shape.length,
                                                " tokens) failed: ", s.message())));
      }
      const std::chrono::nanoseconds took = batcher::Clock::now() - start;
      warmup_time += took;
      // The throughput estimate's seed, so that backlog_seconds is defined before any batch.
      rt->throughput_->Seed(static_cast<uint64_t>(shape.tokens()), took);
      warmup_tokens += shape.tokens();
      if (out.size() != static_cast<size_t>(shape.batch) * rt->dim_) {
        return error(absl::InternalError("warm-up: the encoder returned the wrong shape"));
      }
    }
    rt->encoders_.push_back(std::move(*encoder));
  }
  // Every encoder holds its own converted copy of the weights now (CPU: one shared copy; CUDA: on
  // the device): the model file's pages need not stay resident in this process.
  (*bundle)->weights().ReleasePages();
  const double warmup_seconds = Seconds(warmup_time);
  stats.warmup_seconds->Add({{"model", config.name}}).Set(warmup_seconds);
  stats.warmup_batches->Add({{"model", config.name}}).Set(static_cast<double>(shapes.size()));
  TIPPERARY_LOG(
      kInfo, "model warmed",
      {{"model", config.name},
       {"warmup", config.warmup},
       {"buckets", absl::StrCat(shapes.size())},
       {"largest", shapes.empty() ? std::string("none")
                                  : absl::StrCat(shapes.back().batch, "x", shapes.back().length)},
       {"instances", absl::StrCat(instances)},
       {"tokens", absl::StrCat(warmup_tokens)},
       {"seconds", absl::StrCat(warmup_seconds)}});
  {
    absl::MutexLock lock(&rt->pool_mu_);
    for (auto& encoder : rt->encoders_) rt->free_encoders_.push_back(encoder.get());
  }

  EmbedQueue::Options options;
  options.batching = BatcherOptionsOf(batching);
  options.instances = rt->instances_;
  options.dim = rt->dim_;
  options.dedup = cache_config.dedup;
  options.cache = std::move(cache);
  options.cache_account = rt->cache_account_;
  options.metrics = rt->queue_metrics_;
  ModelRuntime* self = rt.get();
  rt->queue_ = std::make_unique<EmbedQueue>(
      std::move(options),
      [self](const batcher::Batch& batch, const std::vector<std::vector<int32_t>>& ids,
             std::vector<float>* out,
             std::chrono::nanoseconds* compute) { return self->Encode(batch, ids, out, compute); });
  TIPPERARY_LOG(kInfo, "model loaded",
                {{"model", config.name},
                 {"path", config.path},
                 {"backend", rt->backend_},
                 {"dtype", rt->dtype_},
                 {"dimensions", absl::StrCat(rt->dim_)},
                 {"max_seq_length", absl::StrCat(rt->max_seq_length_)},
                 {"instances", absl::StrCat(rt->instances_)}});
  return rt;
}

absl::Status ModelRuntime::Submit(const std::shared_ptr<EmbedTask>& task,
                                  batcher::TimePoint deadline) {
  absl::Status status = queue_->Submit(task, deadline);
  if (status.code() != absl::StatusCode::kResourceExhausted) return status;
  // No rate (only before the first batch with warmup: none) or nothing queued (the request alone is
  // more than the queue holds): the 1 ms floor, which the proxy shows as Retry-After: 1.
  const double seconds = backlog().seconds.value_or(0);
  const auto delay = std::max<std::chrono::nanoseconds>(
      std::chrono::milliseconds(1),
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::duration<double>(
          std::min(seconds, 3600.0))));  // An hour: a bound for a rate that is nearly 0.
  return WithRetryDelay(std::move(status), delay);
}

void ModelRuntime::SetBatching(const config::WorkerBatchingConfig& batching) {
  queue_->SetBatching(BatcherOptionsOf(batching));
  throughput_->SetWindow(batching.throughput_window);
}

model::Encoder* ModelRuntime::AcquireEncoder(bool bulk) {
  absl::MutexLock lock(&pool_mu_);
  // The batcher runs at most `instances` batches at once, so one is always free.
  pool_mu_.Await(absl::Condition(
      +[](std::vector<model::Encoder*>* free) { return !free->empty(); }, &free_encoders_));
  // Bulk batches go to an encoder at idle priority, interactive ones to a kept (normal) one,
  // where one is free. The batcher lets a bulk batch start only while more instances are free
  // than are kept, so a bulk batch finds an idle-priority encoder unless an interactive batch
  // formed at the same moment took it; then it takes what is free rather than wait.
  auto it = std::find_if(free_encoders_.begin(), free_encoders_.end(),
                         [bulk](model::Encoder* e) { return e->idle_priority() == bulk; });
  if (it == free_encoders_.end()) it = free_encoders_.end() - 1;
  model::Encoder* encoder = *it;
  free_encoders_.erase(it);
  return encoder;
}

void ModelRuntime::ReleaseEncoder(model::Encoder* encoder) {
  absl::MutexLock lock(&pool_mu_);
  free_encoders_.push_back(encoder);
}

namespace {
std::atomic<bool> g_device_faulted{false};
}  // namespace

bool ModelRuntime::device_faulted() { return g_device_faulted.load(std::memory_order_acquire); }

void ModelRuntime::OnDeviceFault(const absl::Status& status) {
  if (!g_device_faulted.exchange(true)) {
    TIPPERARY_LOG(kError, "encoder unusable: the worker is no longer ready",
                  {{"model", config_.name},
                   {"error", std::string(status.message())},
                   {"on_device_fault", config_.on_device_fault}});
  }
  if (config_.on_device_fault == "exit") {
    TIPPERARY_LOG(kError, "exiting so that the worker is restarted with a fresh GPU context",
                  {{"model", config_.name}, {"exit_code", absl::StrCat(kDeviceFaultExitCode)}});
    std::fflush(nullptr);
    // _Exit, not exit: no destructors. They would wait for executing batches and call into a
    // CUDA context that fails every call; the process's state is lost anyway.
    std::_Exit(kDeviceFaultExitCode);
  }
}

absl::Status ModelRuntime::Encode(const batcher::Batch& batch,
                                  const std::vector<std::vector<int32_t>>& ids,
                                  std::vector<float>* out, std::chrono::nanoseconds* compute) {
  model::Encoder* encoder = AcquireEncoder(batch.priority == batcher::Priority::kBulk);
  batcher::TimePoint start = batcher::Clock::now();
  absl::Status status;
  // The batcher's thread is the boundary: an exception from an encoder's library would end the
  // process; it fails this batch instead.
  try {
    status = encoder->Encode(ids, out);
  } catch (const std::exception& e) {
    status = absl::InternalError(absl::StrCat("the encoder threw: ", e.what()));
  } catch (...) {
    status = absl::InternalError("the encoder threw");
  }
  batcher::TimePoint end = batcher::Clock::now();
  ReleaseEncoder(encoder);
  if (status.ok() && out->size() != ids.size() * static_cast<size_t>(dim_)) {
    status = absl::InternalError("the encoder returned the wrong number of values");
  }
  if (!status.ok()) {
    TIPPERARY_LOG(kError, "batch failed", {{"model", config_.name}, {"error", status.ToString()}});
    if (model::IsEncoderUnusable(status)) OnDeviceFault(status);
  }
  *compute = end - start;
  if (status.ok()) throughput_->Record(batch.real_tokens, *compute);
  batch_size_->Observe(static_cast<double>(batch.items.size()));
  batch_tokens_->Observe(static_cast<double>(batch.padded_tokens));
  padding_ratio_->Observe(batch.padding_ratio());
  compute_duration_->Observe(Seconds(*compute));
  size_t aged = 0;
  for (const batcher::Item& item : batch.items) {
    queue_duration_->Observe(Seconds(batch.formed_time - item.enqueue_time));
    aged += item.priority == batcher::Priority::kBulk ? 1 : 0;
  }
  if (batch.priority == batcher::Priority::kBulk) {
    bulk_batches_->Increment();
  } else {
    interactive_batches_->Increment();
    if (aged > 0) aged_texts_->Increment(static_cast<double>(aged));
  }
  return status;
}

}  // namespace tipperary::worker
