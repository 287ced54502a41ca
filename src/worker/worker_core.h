// State the gRPC service shares: the configuration and the set of models in effect (both
// replaced whole by a live reload), readiness and draining flags, metrics, and the
// request-shaping helpers (model lookup, tokenisation into an EmbedTask, vector
// post-processing) that every RPC uses.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "embed_task.h"
#include "embedding_cache.h"
#include "model_runtime.h"
#include "model_set.h"
#include "tipperary/batcher/batch.h"
#include "tipperary/batcher/time_source.h"
#include "tipperary/config/worker_config.h"
#include "tipperary/metrics/registry.h"
#include "worker_stats.h"

namespace tipperary::worker {

// What a request asks of the embedding path, whatever its RPC.
struct EmbedOptions {
  bool truncate = true;
  std::optional<bool> normalize;  // Unset: the model's default.
  int dimensions = 0;             // 0 = all.
  // The batching lane; unset: the call's `priority` metadata, else interactive
  // (request_priority.h, resolved by the reactor that starts the call).
  std::optional<batcher::Priority> priority;
};

// What one request embeds: texts, or (OpenAI's pre-tokenised input) token ids of the model's
// own vocabulary without special tokens, one list per input, or (TEI's API, which tokenises
// its own way) the model's whole input per text, special tokens included and already cut to
// max_seq_length.
struct EmbedInputs {
  std::vector<std::string> texts;
  std::vector<std::vector<int32_t>> token_ids;
  bool tokenized = false;  // token_ids, not texts.
  std::vector<model::Tokenizer::Encoding> encodings;
  bool encoded = false;  // encodings, neither texts nor token_ids.
  // For the timing metadata (x-total-time, x-tokenization-time, x-compute-characters) of a
  // caller that tokenised before MakeTask (TEI's API): when the call arrived (unset: when the
  // reactor started it), the time its own tokenisation took and its inputs' characters (-1:
  // unknown; MakeTask counts texts itself).
  std::chrono::steady_clock::time_point received = {};
  std::chrono::nanoseconds tokenization_time = std::chrono::nanoseconds(0);
  int64_t characters = -1;

  static EmbedInputs Texts(std::vector<std::string> texts) {
    EmbedInputs inputs;
    inputs.texts = std::move(texts);
    return inputs;
  }
  static EmbedInputs TokenIds(std::vector<std::vector<int32_t>> ids) {
    EmbedInputs inputs;
    inputs.token_ids = std::move(ids);
    inputs.tokenized = true;
    return inputs;
  }
  static EmbedInputs Encoded(std::vector<model::Tokenizer::Encoding> encodings) {
    EmbedInputs inputs;
    inputs.encodings = std::move(encodings);
    inputs.encoded = true;
    return inputs;
  }
  size_t size() const {
    return encoded ? encodings.size() : tokenized ? token_ids.size() : texts.size();
  }
};

// Unicode code points of a UTF-8 text (TEI's x-compute-characters).
int64_t CountCharacters(std::string_view text);

class WorkerCore {
 public:
  explicit WorkerCore(config::WorkerConfig config);

  // The configuration in effect: a snapshot, so a request reads one consistent config even if a
  // reload replaces it meanwhile.
  std::shared_ptr<const config::WorkerConfig> config() const ABSL_LOCKS_EXCLUDED(mu_);
  // ConfigHash of config()'s dump (reload_report.h).
  std::string config_hash() const ABSL_LOCKS_EXCLUDED(mu_);
  // A reload's configuration and model set, replaced together (one lock), so no request sees
  // the one without the other. Batchers are ConfigReloader's business.
  void Apply(config::WorkerConfig config, std::shared_ptr<const ModelSet> models)
      ABSL_LOCKS_EXCLUDED(mu_);

  metrics::Registry& registry() { return registry_; }
  const WorkerStats& stats() const { return stats_; }
  // The embedding cache every model shares (sized by cache.max_bytes; off at 0).
  const std::shared_ptr<EmbeddingCache>& cache() const { return cache_; }
  // A reload's cache.max_bytes: applies at once (a smaller bound evicts down to it).
  void SetCacheMaxBytes(uint64_t max_bytes);

  // Installs a set of models: at start, then on every reload that changes them. From the first
  // call on loaded() is true. Requests that found a model in an earlier set keep it.
  void PublishModels(std::shared_ptr<const ModelSet> models) ABSL_LOCKS_EXCLUDED(mu_);
  bool loaded() const { return loaded_.load(std::memory_order_acquire); }
  // The set in effect; null before loaded().
  std::shared_ptr<const ModelSet> models() const ABSL_LOCKS_EXCLUDED(mu_);

  // Not ready once a device fault made an encoder unusable (ModelRuntime::device_faulted).
  bool ready() const;
  void SetDraining() { draining_.store(true); }
  bool draining() const { return draining_.load(); }

  // UNAVAILABLE while models load or once draining, else OK.
  absl::Status Admission() const;
  // Empty name = the default model; else a model's name or alias, exactly, or else
  // case-insensitively (when that names one model only); unknown: NOT_FOUND (reason
  // MODEL_NOT_FOUND) naming the known ones; UNAVAILABLE before the models are loaded. The
  // caller keeps the runtime alive (and a reload waits for it before unloading the model).
  absl::StatusOr<std::shared_ptr<ModelRuntime>> FindModel(const std::string& name) const;

  // Checks and tokenises `inputs` for `model`: INVALID_ARGUMENT for no inputs, too many, an
  // out-of-range `dimensions`, a token id outside the model's vocabulary or (with truncate
  // false) an input longer than max_seq_length. Token ids get the texts' [CLS]/[SEP] (unless
  // they already start with [CLS] and end with [SEP]) and truncation; encodings are taken as
  // they are (ids checked, nothing added or cut). The task's `done` is `done`;
  // `cancelled` is shared by every task of one call.
  absl::StatusOr<std::shared_ptr<EmbedTask>> MakeTask(const ModelRuntime& model,
                                                      const EmbedInputs& inputs,
                                                      const EmbedOptions& options,
                                                      std::shared_ptr<std::atomic<bool>> cancelled,
                                                      EmbedTask::Done done) const;

  // Row i of a finished task, cut to `dimensions` and L2-normalised when asked.
  static std::vector<float> FinalVector(const ModelRuntime& model, const EmbedTask& task, size_t i,
                                        const EmbedOptions& options);

  // Counts a finished RPC (requests_total; inputs/tokens when it succeeded).
  void RecordRequest(const std::string& model, absl::StatusCode code, int64_t inputs,
                     int64_t tokens);

 private:
  metrics::Registry registry_;
  const WorkerStats stats_;
  const std::shared_ptr<EmbeddingCache> cache_;
  mutable absl::Mutex mu_;
  std::shared_ptr<const config::WorkerConfig> config_ ABSL_GUARDED_BY(mu_);
  std::string config_hash_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<const ModelSet> models_ ABSL_GUARDED_BY(mu_);
  std::atomic<bool> loaded_{false};
  std::atomic<bool> draining_{false};
};

// The batcher's steady-clock deadline for a gRPC deadline (system clock); max() = none.
batcher::TimePoint ToBatcherDeadline(std::chrono::system_clock::time_point deadline);

}  // namespace tipperary::worker
