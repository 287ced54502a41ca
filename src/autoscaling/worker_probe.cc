#include "tipperary/autoscaling/worker_probe.h"

#include <google/protobuf/util/json_util.h>

#include "absl/strings/str_cat.h"
#include "tipperary/admin/v1/worker_load.pb.h"
#include "tipperary/http1/simple_client.h"

namespace tipperary::autoscaling {

absl::StatusOr<WorkerCounters> ParseWorkerCounters(const std::string& json) {
  admin::v1::WorkerLoad load;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;  // A newer worker may say more.
  auto status = google::protobuf::util::JsonStringToMessage(json, &load, options);
  if (!status.ok()) {
    return absl::InternalError(
        absl::StrCat("worker /autoscaling is not a WorkerLoad: ", std::string(status.message())));
  }
  const struct {
    bool present;
    const char* name;
  } required[] = {{load.has_queue_depth(), "queue_depth"},
                  {load.has_batches_total(), "batches_total"},
                  {load.has_batch_texts_total(), "batch_texts_total"},
                  {load.has_batch_tokens_total(), "batch_tokens_total"},
                  {load.has_max_batch_size(), "max_batch_size"},
                  {load.has_max_batch_tokens(), "max_batch_tokens"}};
  for (const auto& field : required) {
    if (!field.present) {
      return absl::InternalError(absl::StrCat("worker /autoscaling has no \"", field.name, "\""));
    }
  }
  WorkerCounters c;
  c.queue_depth = load.queue_depth();
  c.batches = load.batches_total();
  c.batch_texts = load.batch_texts_total();
  c.batch_tokens = load.batch_tokens_total();
  c.max_batch_size = load.max_batch_size();
  c.max_batch_tokens = load.max_batch_tokens();
  // The backlog came later: a worker without it is older, not broken (the signal is then
  // unavailable, and a scaler asking for it says so).
  if (load.has_queued_tokens()) c.queued_tokens = load.queued_tokens();
  if (load.has_backlog_seconds()) c.backlog_seconds = load.backlog_seconds();
  for (const auto& [name, model] : load.models()) {
    if (!model.has_queued_tokens()) continue;
    ModelBacklog& b = c.models[name];
    b.queued_tokens = model.queued_tokens();
    if (model.has_tokens_per_second()) b.tokens_per_second = model.tokens_per_second();
    if (model.has_backlog_seconds()) b.backlog_seconds = model.backlog_seconds();
  }
  return c;
}

absl::StatusOr<WorkerCounters> WorkerProbe::Poll() const {
  absl::StatusOr<std::string> body =
      http1::Get(address_, "/autoscaling", timeout_, 64 * 1024, "tipperary-proxy");
  if (!body.ok()) {
    return absl::UnavailableError(absl::StrCat("worker admin ", body.status().message()));
  }
  return ParseWorkerCounters(*body);
}

}  // namespace tipperary::autoscaling
