// State the gRPC service shares: the loaded models, readiness and draining flags, metrics, and
// the request-shaping helpers (model lookup, tokenisation into an EmbedTask, vector
// post-processing) that every RPC uses.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "embed_task.h"
#include "model_runtime.h"
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
};

// What one request embeds: texts, or (OpenAI's pre-tokenised input) token ids of the model's
// own vocabulary without special tokens, one list per input.
struct EmbedInputs {
  std::vector<std::string> texts;
  std::vector<std::vector<int32_t>> token_ids;
  bool tokenized = false;  // token_ids, not texts.

  static EmbedInputs Texts(std::vector<std::string> texts) { return {std::move(texts), {}, false}; }
  static EmbedInputs TokenIds(std::vector<std::vector<int32_t>> ids) {
    return {{}, std::move(ids), true};
  }
  size_t size() const { return tokenized ? token_ids.size() : texts.size(); }
};

class WorkerCore {
 public:
  explicit WorkerCore(config::WorkerConfig config);

  const config::WorkerConfig& config() const { return config_; }
  metrics::Registry& registry() { return registry_; }
  const WorkerStats& stats() const { return stats_; }

  // Installs the loaded models, once; from then on loaded() is true and models() is fixed.
  void PublishModels(std::vector<std::unique_ptr<ModelRuntime>> models);
  bool loaded() const { return loaded_.load(std::memory_order_acquire); }
  // Only once loaded() is true.
  const std::map<std::string, std::unique_ptr<ModelRuntime>>& models() const { return models_; }

  bool ready() const { return loaded() && !draining_.load(); }
  void SetDraining() { draining_.store(true); }
  bool draining() const { return draining_.load(); }

  // UNAVAILABLE while models load or once draining, else OK.
  absl::Status Admission() const;
  // Empty name = the default model; else a model's name or alias, exactly, or else
  // case-insensitively (when that names one model only); unknown: NOT_FOUND (reason
  // MODEL_NOT_FOUND) naming the known ones; UNAVAILABLE before the models are loaded.
  absl::StatusOr<ModelRuntime*> FindModel(const std::string& name) const;

  // Checks and tokenises `inputs` for `model`: INVALID_ARGUMENT for no inputs, too many, an
  // out-of-range `dimensions`, a token id outside the model's vocabulary or (with truncate
  // false) an input longer than max_seq_length. Token ids get the texts' [CLS]/[SEP] (unless
  // they already start with [CLS] and end with [SEP]) and truncation. The task's `done` is `done`;
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
  const config::WorkerConfig config_;
  metrics::Registry registry_;
  const WorkerStats stats_;
  std::map<std::string, std::unique_ptr<ModelRuntime>> models_;
  // Names and aliases -> model, exactly; lower-cased -> model, or null where two models fold to
  // the same text. Built once by PublishModels.
  std::map<std::string, ModelRuntime*> names_;
  std::map<std::string, ModelRuntime*> folded_names_;
  std::string default_model_;
  std::atomic<bool> loaded_{false};
  std::atomic<bool> draining_{false};
};

// The batcher's steady-clock deadline for a gRPC deadline (system clock); max() = none.
batcher::TimePoint ToBatcherDeadline(std::chrono::system_clock::time_point deadline);

}  // namespace tipperary::worker
