#include "rpc_support.h"

#include <algorithm>
#include <bit>
#include <cstring>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"
#include "status_details.h"

namespace tipperary::worker {

using google::protobuf::util::TimeUtil;

grpc::Status ToGrpc(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()),
                      SerializedDetails(status));
}

EmbedOptions OptionsOf(const pb::EmbedRequest& request) {
  EmbedOptions options;
  options.truncate = !request.has_truncate() || request.truncate();
  if (request.has_normalize()) options.normalize = request.normalize();
  options.dimensions = request.dimensions();
  if (request.priority() == pb::PRIORITY_INTERACTIVE) {
    options.priority = batcher::Priority::kInteractive;
  } else if (request.priority() == pb::PRIORITY_BULK) {
    options.priority = batcher::Priority::kBulk;
  }
  return options;
}

std::vector<std::string> TextsOf(const pb::EmbedRequest& request) {
  return {request.inputs().begin(), request.inputs().end()};
}

CallTiming TimingOf(const ModelRuntime& model, const EmbedTask& task) {
  return {model.backend(),       task.tokenization_time(), task.max_queue_time(),
          task.inference_span(), task.total_tokens(),      task.characters()};
}

std::vector<std::pair<std::string, std::string>> TimingMetadata(
    const ModelRuntime& model, const EmbedTask& task,
    std::chrono::steady_clock::time_point received, std::chrono::steady_clock::time_point now) {
  return TimingMetadata(TimingOf(model, task), received, now);
}

std::vector<std::pair<std::string, std::string>> TimingMetadata(
    const CallTiming& timing, std::chrono::steady_clock::time_point received,
    std::chrono::steady_clock::time_point now) {
  auto ms = [](std::chrono::nanoseconds time) {
    return absl::StrCat(std::chrono::duration_cast<std::chrono::milliseconds>(time).count());
  };
  const std::chrono::nanoseconds total = std::max(std::chrono::nanoseconds(0), now - received);
  std::vector<std::pair<std::string, std::string>> out;
  if (!timing.backend.empty()) out.emplace_back("x-compute-type", timing.backend);
  out.insert(out.end(), {
                            {"x-compute-time", ms(total)},
                            {"x-total-time", ms(total)},
                            {"x-tokenization-time", ms(timing.tokenization)},
                            {"x-queue-time", ms(timing.queue)},
                            {"x-inference-time", ms(timing.inference)},
                            {"x-compute-tokens", absl::StrCat(timing.tokens)},
                        });
  if (timing.characters >= 0) {
    out.emplace_back("x-compute-characters", absl::StrCat(timing.characters));
  }
  if (timing.inference.count() > 0) {
    const double per_second =
        static_cast<double>(timing.tokens) * 1e9 / static_cast<double>(timing.inference.count());
    out.emplace_back("x-tokens-per-second", absl::StrCat(static_cast<int64_t>(per_second)));
  }
  return out;
}

void FillEmbedResponse(const ModelRuntime& model, const EmbedTask& task,
                       const EmbedOptions& options, int first_index, pb::EmbedResponse* response) {
  response->set_model(model.name());
  for (size_t i = 0; i < task.size(); ++i) {
    pb::Embedding* embedding = response->add_embeddings();
    std::vector<float> values = WorkerCore::FinalVector(model, task, i, options);
    embedding->mutable_values()->Add(values.begin(), values.end());
    embedding->set_tokens(static_cast<int32_t>(task.ids()[i].size()));
    embedding->set_truncated(task.truncated()[i]);
    embedding->set_index(first_index + static_cast<int32_t>(i));
  }
  pb::EmbedMetadata* metadata = response->mutable_metadata();
  metadata->set_total_tokens(static_cast<int32_t>(task.total_tokens()));
  *metadata->mutable_queue_time() = TimeUtil::NanosecondsToDuration(task.max_queue_time().count());
  *metadata->mutable_compute_time() = TimeUtil::NanosecondsToDuration(task.compute_time().count());
  metadata->set_batches(task.batches());
  metadata->set_backend(model.backend());
}

void FillModel(const ModelRuntime& model, uint32_t created, pb::Model* out) {
  out->set_id(model.name());
  out->set_object("model");
  out->set_created(created);
  out->set_owned_by("tipperary");
  out->set_dimensions(model.dim());
  out->set_max_seq_length(model.max_seq_length());
  out->set_backend(model.backend());
  out->set_dtype(model.dtype());
  out->set_pooling(model.pooling());
  out->set_normalize(model.normalize());
  for (const std::string& alias : model.aliases()) out->add_aliases(alias);
}

std::string Base64Floats(const std::vector<float>& values) {
  static_assert(std::endian::native == std::endian::little, "little-endian hosts only");
  std::string bytes(values.size() * sizeof(float), '\0');
  std::memcpy(bytes.data(), values.data(), bytes.size());
  return absl::Base64Escape(bytes);
}

}  // namespace tipperary::worker
