#include "worker_core.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace tipperary::worker {

WorkerCore::WorkerCore(config::WorkerConfig config)
    : config_(std::move(config)),
      stats_(WorkerStats::Register(registry_)),
      default_model_(config_.default_model().name) {}

void WorkerCore::PublishModels(std::vector<std::unique_ptr<ModelRuntime>> models) {
  if (loaded()) return;
  for (auto& model : models) {
    std::string name = model->name();
    models_[name] = std::move(model);
  }
  loaded_.store(true, std::memory_order_release);
}

absl::Status WorkerCore::Admission() const {
  if (draining_.load()) return absl::UnavailableError("the worker is shutting down");
  if (!loaded()) return absl::UnavailableError("the worker is loading its models");
  return absl::OkStatus();
}

absl::StatusOr<ModelRuntime*> WorkerCore::FindModel(const std::string& name) const {
  if (!loaded()) return absl::UnavailableError("the worker is loading its models");
  auto it = models_.find(name.empty() ? default_model_ : name);
  if (it != models_.end()) return it->second.get();
  std::vector<std::string> names;
  for (const auto& [known, model] : models_) names.push_back(known);
  return absl::NotFoundError(
      absl::StrCat("model \"", name, "\" not found (models: ", absl::StrJoin(names, ", "), ")"));
}

absl::StatusOr<std::shared_ptr<EmbedTask>> WorkerCore::MakeTask(
    const ModelRuntime& model, const std::vector<std::string>& texts, const EmbedOptions& options,
    std::shared_ptr<std::atomic<bool>> cancelled, EmbedTask::Done done) const {
  if (texts.empty()) return absl::InvalidArgumentError("no input texts");
  if (texts.size() > config_.max_inputs) {
    return absl::InvalidArgumentError(
        absl::StrCat(texts.size(), " input texts, more than the ", config_.max_inputs, " allowed"));
  }
  if (options.dimensions < 0 || options.dimensions > model.dim()) {
    return absl::InvalidArgumentError(absl::StrCat("dimensions must be between 1 and ", model.dim(),
                                                   " (0 = all), got ", options.dimensions));
  }
  std::vector<std::vector<int32_t>> ids;
  std::vector<bool> truncated;
  ids.reserve(texts.size());
  truncated.reserve(texts.size());
  const size_t max_length = static_cast<size_t>(model.max_seq_length());
  for (size_t i = 0; i < texts.size(); ++i) {
    model::Tokenizer::Encoding encoding = model.tokenizer().Encode(texts[i], max_length, true);
    if (encoding.truncated && !options.truncate) {
      return absl::InvalidArgumentError(absl::StrCat("input ", i,
                                                     " is longer than the model's max_seq_length (",
                                                     max_length, " tokens) and truncate is false"));
    }
    truncated.push_back(encoding.truncated);
    ids.push_back(std::move(encoding.ids));
  }
  return std::make_shared<EmbedTask>(std::move(ids), std::move(truncated), std::move(cancelled),
                                     std::move(done));
}

std::vector<float> WorkerCore::FinalVector(const ModelRuntime& model, const EmbedTask& task,
                                           size_t i, const EmbedOptions& options) {
  int dim = options.dimensions > 0 ? options.dimensions : task.dim();
  const float* row = task.vector(i);
  std::vector<float> out(row, row + dim);
  if (options.normalize.value_or(model.normalize())) model::L2NormalizeRows(out, dim);
  return out;
}

void WorkerCore::RecordRequest(const std::string& model, absl::StatusCode code, int64_t inputs,
                               int64_t tokens) {
  stats_.requests->Add({{"model", model}, {"code", absl::StatusCodeToString(code)}}).Increment();
  if (code == absl::StatusCode::kOk) {
    stats_.inputs->Add({{"model", model}}).Increment(static_cast<double>(inputs));
    stats_.tokens->Add({{"model", model}}).Increment(static_cast<double>(tokens));
  }
}

batcher::TimePoint ToBatcherDeadline(std::chrono::system_clock::time_point deadline) {
  if (deadline == std::chrono::system_clock::time_point::max()) {
    return batcher::TimePoint::max();
  }
  auto left = deadline - std::chrono::system_clock::now();
  // Anything beyond a day is as good as none (and avoids overflow near max()).
  if (left > std::chrono::hours(24)) return batcher::TimePoint::max();
  return batcher::Clock::now() + std::chrono::duration_cast<batcher::Duration>(left);
}

}  // namespace tipperary::worker
