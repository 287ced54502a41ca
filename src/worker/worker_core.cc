#include "worker_core.h"

#include <cmath>
#include <span>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "status_details.h"
#include "tipperary/common/log.h"
#include "tipperary/config/reload_report.h"

namespace tipperary::worker {

bool WorkerCore::ready() const {
  return loaded() && !draining_.load() && !ModelRuntime::device_faulted();
}

WorkerCore::WorkerCore(config::WorkerConfig config)
    : stats_(WorkerStats::Register(registry_)),
      cache_(std::make_shared<EmbeddingCache>(
          EmbeddingCache::Options{.max_bytes = config.cache.max_bytes})) {
  stats_.cache_max_bytes->Add({}).Set(static_cast<double>(config.cache.max_bytes));
  config_hash_ = config::ConfigHash(config::DumpWorkerConfig(config));
  config_ = std::make_shared<const config::WorkerConfig>(std::move(config));
}

std::shared_ptr<const config::WorkerConfig> WorkerCore::config() const {
  absl::ReaderMutexLock lock(&mu_);
  return config_;
}

std::string WorkerCore::config_hash() const {
  absl::ReaderMutexLock lock(&mu_);
  return config_hash_;
}

void WorkerCore::Apply(config::WorkerConfig config, std::shared_ptr<const ModelSet> models) {
  std::string hash = config::ConfigHash(config::DumpWorkerConfig(config));
  auto snapshot = std::make_shared<const config::WorkerConfig>(std::move(config));
  {
    absl::MutexLock lock(&mu_);
    config_ = std::move(snapshot);
    config_hash_ = std::move(hash);
    models_ = std::move(models);
  }
  loaded_.store(true, std::memory_order_release);
}

void WorkerCore::SetCacheMaxBytes(uint64_t max_bytes) {
  cache_->SetMaxBytes(max_bytes);
  stats_.cache_max_bytes->Add({}).Set(static_cast<double>(max_bytes));
}

void WorkerCore::PublishModels(std::shared_ptr<const ModelSet> models) {
  {
    absl::MutexLock lock(&mu_);
    models_ = std::move(models);
  }
  loaded_.store(true, std::memory_order_release);
}

std::shared_ptr<const ModelSet> WorkerCore::models() const {
  absl::ReaderMutexLock lock(&mu_);
  return models_;
}

absl::Status WorkerCore::Admission() const {
  if (draining_.load()) return absl::UnavailableError("the worker is shutting down");
  if (!loaded()) return absl::UnavailableError("the worker is loading its models");
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<ModelRuntime>> WorkerCore::FindModel(const std::string& name) const {
  std::shared_ptr<const ModelSet> set = models();
  if (set == nullptr) return absl::UnavailableError("the worker is loading its models");
  return set->Find(name);
}

int64_t CountCharacters(std::string_view text) {
  // Every byte that is not a continuation byte (10xxxxxx) starts a code point.
  int64_t n = 0;
  for (char c : text) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

absl::StatusOr<std::shared_ptr<EmbedTask>> WorkerCore::MakeTask(
    const ModelRuntime& model, const EmbedInputs& inputs, const EmbedOptions& options,
    std::shared_ptr<std::atomic<bool>> cancelled, EmbedTask::Done done) const {
  const size_t count = inputs.size();
  if (count == 0) return WithField(absl::InvalidArgumentError("no input texts"), "input");
  const uint32_t max_inputs = config()->max_inputs;
  if (count > max_inputs) {
    return WithField(absl::InvalidArgumentError(absl::StrCat(count, " input texts, more than the ",
                                                             max_inputs, " allowed")),
                     "input");
  }
  if (options.dimensions < 0 || options.dimensions > model.dim()) {
    return WithField(
        absl::InvalidArgumentError(absl::StrCat("dimensions must be between 1 and ", model.dim(),
                                                " (0 = all), got ", options.dimensions)),
        "dimensions");
  }
  // The model's embedding table bounds the ids it can take, whatever the tokenizer's size.
  const int64_t vocabulary = model.vocabulary_size();
  std::vector<std::vector<int32_t>> ids;
  std::vector<bool> truncated;
  int64_t special_tokens = 0;
  ids.reserve(count);
  truncated.reserve(count);
  const size_t max_length = static_cast<size_t>(model.max_seq_length());
  const auto tokenize_start = std::chrono::steady_clock::now();
  for (size_t i = 0; i < count; ++i) {
    model::Tokenizer::Encoding encoding;
    if (inputs.encoded) {
      encoding = inputs.encodings[i];
      for (size_t j = 0; j < encoding.ids.size(); ++j) {
        if (encoding.ids[j] < 0 || encoding.ids[j] >= vocabulary) {
          return WithField(
              absl::InvalidArgumentError(absl::StrCat(
                  "input ", i, ": token id ", encoding.ids[j], " is outside the vocabulary of ",
                  model.name(), " (ids 0 to ", vocabulary - 1, ")")),
              "input");
        }
      }
      if (encoding.ids.size() > max_length) {
        return WithField(absl::InvalidArgumentError(absl::StrCat(
                             "input ", i, " has ", encoding.ids.size(),
                             " tokens, more than the model's max_seq_length (", max_length, ")")),
                         "input");
      }
    } else if (inputs.tokenized) {
      std::span<const int32_t> row = inputs.token_ids[i];
      // Ids as Hugging Face tokenizers (and /v1/tokenize) return them, with [CLS] ... [SEP]
      // already there, as TEI and vLLM take them: not wrapped twice.
      size_t first = 0;  // Of row in the request's ids, for the errors.
      if (row.size() >= 2 && row.front() == model.tokenizer().cls_id() &&
          row.back() == model.tokenizer().sep_id()) {
        row = row.subspan(1, row.size() - 2);
        first = 1;
      }
      for (size_t j = 0; j < row.size(); ++j) {
        if (row[j] < 0 || row[j] >= vocabulary) {
          return WithField(
              absl::InvalidArgumentError(absl::StrCat(
                  "input[", i, "][", first + j, "]: token id ", row[j],
                  " is outside the vocabulary of ", model.name(), " (ids 0 to ", vocabulary - 1,
                  "); token ids must be the served model's own, not another tokenizer's")),
              "input");
        }
      }
      encoding = model.tokenizer().PostProcess(row, max_length);
    } else {
      encoding = model.tokenizer().Encode(inputs.texts[i], max_length, true);
    }
    if (encoding.truncated && !options.truncate) {
      return WithField(absl::InvalidArgumentError(
                           absl::StrCat("input ", i, " is longer than the model's max_seq_length (",
                                        max_length, " tokens) and truncate is false")),
                       "input");
    }
    special_tokens += static_cast<int64_t>(encoding.special_tokens);
    truncated.push_back(encoding.truncated);
    ids.push_back(std::move(encoding.ids));
  }
  const auto tokenize_time = std::chrono::steady_clock::now() - tokenize_start;
  auto task = std::make_shared<EmbedTask>(std::move(ids), std::move(truncated),
                                          std::move(cancelled), std::move(done), special_tokens);
  task->set_tokenization_time(inputs.tokenization_time +
                              std::chrono::duration_cast<std::chrono::nanoseconds>(tokenize_time));
  int64_t characters = inputs.characters;
  if (!inputs.encoded && !inputs.tokenized) {
    characters = 0;
    for (const std::string& text : inputs.texts) characters += CountCharacters(text);
  }
  task->set_characters(characters);
  task->set_priority(options.priority.value_or(batcher::Priority::kInteractive));
  return task;
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
