#include "embedding_service.h"

#include <bit>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "google/protobuf/util/time_util.h"
#include "ordered_responses.h"
#include "tipperary/common/tsan.h"

namespace tipperary::worker {
namespace {

using google::protobuf::util::TimeUtil;

grpc::Status ToGrpc(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

// reactor.Finish(status), first telling TSan that what this thread did to the reactor happens
// before its OnDone (which deletes it): gRPC orders the two inside libgrpc and libgrpc++, where
// TSan cannot see it. Nothing of the reactor may be touched after this returns.
template <typename Reactor>
void FinishCall(Reactor& reactor, grpc::Status status) {
  common::HappensBefore(&reactor);
  reactor.Finish(std::move(status));
}

// The metrics label for a model: its id when it exists, else "unknown" (bounded cardinality).
std::string ModelLabel(const WorkerCore& core, const std::string& requested) {
  absl::StatusOr<ModelRuntime*> model = core.FindModel(requested);
  return model.ok() ? (*model)->name() : "unknown";
}

EmbedOptions OptionsOf(const pb::EmbedRequest& request) {
  EmbedOptions options;
  options.truncate = !request.has_truncate() || request.truncate();
  if (request.has_normalize()) options.normalize = request.normalize();
  options.dimensions = request.dimensions();
  return options;
}

std::vector<std::string> TextsOf(const pb::EmbedRequest& request) {
  return {request.inputs().begin(), request.inputs().end()};
}

// Fills `response` with the vectors of `task` (indices offset by `first_index`).
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
}

std::string Base64Floats(const std::vector<float>& values) {
  static_assert(std::endian::native == std::endian::little, "little-endian hosts only");
  std::string bytes(values.size() * sizeof(float), '\0');
  std::memcpy(bytes.data(), values.data(), bytes.size());
  return absl::Base64Escape(bytes);
}

// --------------------------------------------------------------------------------------------
// Unary embedding calls (Embed and CreateEmbeddings): one task, one response.

class UnaryEmbedReactor : public grpc::ServerUnaryReactor {
 public:
  using Fill = std::function<void(const ModelRuntime&, const EmbedTask&)>;

  UnaryEmbedReactor(WorkerCore& core, grpc::CallbackServerContext* context)
      : core_(core), context_(context), cancelled_(std::make_shared<std::atomic<bool>>(false)) {}

  // Touches nothing of `this` after a successful submission: the batcher may finish the call
  // (and OnDone delete the reactor) before Submit even returns.
  void Start(const std::string& requested_model, std::vector<std::string> texts,
             EmbedOptions options, Fill fill) {
    absl::Status status = core_.Admission();
    ModelRuntime* model = nullptr;
    if (status.ok()) {
      absl::StatusOr<ModelRuntime*> found = core_.FindModel(requested_model);
      status = found.status();
      if (found.ok()) model = *found;
    }
    std::shared_ptr<EmbedTask> task;
    if (status.ok()) {
      absl::StatusOr<std::shared_ptr<EmbedTask>> made =
          core_.MakeTask(*model, texts, options, cancelled_, [this, model, fill](EmbedTask& done) {
            absl::Status result = done.status();
            if (result.ok()) fill(*model, done);
            core_.RecordRequest(model->name(), result.code(), static_cast<int64_t>(done.size()),
                                done.total_tokens());
            FinishCall(*this, ToGrpc(result));
          });
      status = made.status();
      if (made.ok()) task = *std::move(made);
    }
    if (status.ok()) {
      status = model->Submit(task, ToBatcherDeadline(context_->deadline()));
      if (status.ok()) return;
    }
    core_.RecordRequest(model ? model->name() : ModelLabel(core_, requested_model), status.code(),
                        0, 0);
    FinishCall(*this, ToGrpc(status));
  }

  // gRPC runs OnCancel (if at all) before OnDone, but orders the two inside libgrpc++.
  void OnCancel() override {
    cancelled_->store(true, std::memory_order_release);
    common::HappensBefore(this);
  }
  void OnDone() override {
    common::HappensAfter(this);
    delete this;
  }

 private:
  WorkerCore& core_;
  grpc::CallbackServerContext* const context_;
  const std::shared_ptr<std::atomic<bool>> cancelled_;
};

absl::StatusOr<std::vector<std::string>> OpenAiInputs(const google::protobuf::Value& input) {
  const char* kShape =
      "input must be a string or an array of strings (token arrays are not supported)";
  switch (input.kind_case()) {
    case google::protobuf::Value::kStringValue:
      return std::vector<std::string>{input.string_value()};
    case google::protobuf::Value::kListValue: {
      std::vector<std::string> texts;
      for (const google::protobuf::Value& item : input.list_value().values()) {
        if (item.kind_case() != google::protobuf::Value::kStringValue) {
          return absl::InvalidArgumentError(kShape);
        }
        texts.push_back(item.string_value());
      }
      if (texts.empty()) return absl::InvalidArgumentError("input must not be an empty array");
      return texts;
    }
    case google::protobuf::Value::KIND_NOT_SET:
      return absl::InvalidArgumentError("input is required");
    default:
      return absl::InvalidArgumentError(kShape);
  }
}

// --------------------------------------------------------------------------------------------
// EmbedStream: the texts in chunks, a few chunks in the batcher at a time, written in order.

class EmbedStreamReactor : public grpc::ServerWriteReactor<pb::EmbedResponse> {
 public:
  static constexpr size_t kWindow = 4;  // Chunks submitted ahead of the one being written.

  EmbedStreamReactor(WorkerCore& core, grpc::CallbackServerContext* context)
      : core_(core), context_(context), cancelled_(std::make_shared<std::atomic<bool>>(false)) {}

  void Start(const pb::EmbedRequest& request) {
    absl::Status status = core_.Admission();
    if (status.ok()) {
      absl::StatusOr<ModelRuntime*> found = core_.FindModel(request.model());
      status = found.status();
      if (found.ok()) model_ = *found;
    }
    if (status.ok()) {
      options_ = OptionsOf(request);
      size_t chunk = request.chunk_size() > 0 ? static_cast<size_t>(request.chunk_size())
                                              : core_.config().stream_chunk_size;
      std::vector<std::string> texts = TextsOf(request);
      if (texts.empty()) status = absl::InvalidArgumentError("no input texts");
      // Tokenise everything up front so that a bad text fails the call before any output.
      for (size_t start = 0; status.ok() && start < texts.size(); start += chunk) {
        size_t end = std::min(texts.size(), start + chunk);
        std::vector<std::string> part(std::make_move_iterator(texts.begin() + start),
                                      std::make_move_iterator(texts.begin() + end));
        size_t index = chunks_.size();
        absl::StatusOr<std::shared_ptr<EmbedTask>> task =
            core_.MakeTask(*model_, part, options_, cancelled_,
                           [this, index](EmbedTask& done) { OnChunkDone(index, done); });
        if (!task.ok()) {
          status = task.status();
          if (start > 0) {
            status = absl::Status(status.code(), absl::StrCat("in the chunk of texts from ", start,
                                                              ": ", status.message()));
          }
          break;
        }
        chunks_.push_back({*std::move(task), static_cast<int>(start)});
      }
    }
    if (!status.ok()) {
      core_.RecordRequest(model_ ? model_->name() : ModelLabel(core_, request.model()),
                          status.code(), 0, 0);
      FinishCall(*this, ToGrpc(status));
      return;
    }
    deadline_ = ToBatcherDeadline(context_->deadline());
    std::optional<grpc::Status> finish;
    {
      absl::MutexLock lock(&mu_);
      SubmitMoreLocked();
      finish = MaybeFinishLocked();
    }
    if (finish) FinishCall(*this, *std::move(finish));
  }

  void OnWriteDone(bool ok) override {
    std::optional<grpc::Status> finish;
    {
      absl::MutexLock lock(&mu_);
      if (out_.WriteDone(ok)) cancelled_->store(true);
      SubmitMoreLocked();
      finish = MaybeFinishLocked();
    }
    if (finish) FinishCall(*this, *std::move(finish));
  }

  // gRPC runs OnCancel (if at all) before OnDone, but orders the two inside libgrpc++.
  void OnCancel() override {
    cancelled_->store(true, std::memory_order_release);
    common::HappensBefore(this);
  }
  void OnDone() override {
    common::HappensAfter(this);
    delete this;
  }

 private:
  struct Chunk {
    std::shared_ptr<EmbedTask> task;
    int first_index;
  };

  // On a batcher thread, which holds no reference to the call: once Finish() is called, gRPC may
  // run OnDone (delete this) on its own thread at any time, so Finish comes after the unlock.
  void OnChunkDone(size_t index, EmbedTask& task) {
    std::optional<grpc::Status> finish;
    {
      absl::MutexLock lock(&mu_);
      if (pb::EmbedResponse* slot = out_.Completed(index, task)) {
        FillEmbedResponse(*model_, task, options_, chunks_[index].first_index, slot);
      }
      chunks_[index].task.reset();  // Its vectors are copied; free them early.
      finish = MaybeFinishLocked();
    }
    if (finish) FinishCall(*this, *std::move(finish));
  }

  void SubmitMoreLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    while (out_.error().ok() && next_submit_ < chunks_.size() &&
           next_submit_ < out_.next_write() + kWindow) {
      out_.Submitted();
      absl::Status status = model_->Submit(chunks_[next_submit_].task, deadline_);
      if (!status.ok()) {
        out_.SubmitFailed(status);
        cancelled_->store(true);
        return;
      }
      ++next_submit_;
    }
  }

  // Writes the next response when it is ready. Once nothing is in flight and either every
  // chunk is written or an error happened, returns the status to finish the call with: the
  // caller calls Finish() after releasing mu_ (OnDone may delete this as soon as it is called).
  std::optional<grpc::Status> MaybeFinishLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    switch (out_.Advance(chunks_.size(), /*total_is_final=*/true)) {
      case OrderedResponses::Step::kWrite:
        StartWrite(out_.writing());
        break;
      case OrderedResponses::Step::kFinish:
        core_.RecordRequest(model_->name(), out_.error().code(), out_.inputs(), out_.tokens());
        return ToGrpc(out_.error());
      case OrderedResponses::Step::kWait:
        break;
    }
    return std::nullopt;
  }

  WorkerCore& core_;
  grpc::CallbackServerContext* const context_;
  const std::shared_ptr<std::atomic<bool>> cancelled_;
  ModelRuntime* model_ = nullptr;
  EmbedOptions options_;
  batcher::TimePoint deadline_ = batcher::TimePoint::max();
  std::vector<Chunk> chunks_;  // Fixed once Start() has tokenised.

  absl::Mutex mu_;
  size_t next_submit_ ABSL_GUARDED_BY(mu_) = 0;
  OrderedResponses out_ ABSL_GUARDED_BY(mu_);  // Indexed by chunk.
};

// --------------------------------------------------------------------------------------------
// EmbedBidi: every request message is one task; responses go out in request order.

class EmbedBidiReactor : public grpc::ServerBidiReactor<pb::EmbedRequest, pb::EmbedResponse> {
 public:
  static constexpr size_t kMaxPending = 8;  // Requests read ahead of their responses.

  EmbedBidiReactor(WorkerCore& core, grpc::CallbackServerContext* context)
      : core_(core), context_(context), cancelled_(std::make_shared<std::atomic<bool>>(false)) {}

  void Start() {
    absl::Status status = core_.Admission();
    std::optional<grpc::Status> finish;
    {
      absl::MutexLock lock(&mu_);
      if (!status.ok()) {
        out_.Fail(status);
        finish = MaybeFinishLocked();
      } else {
        reading_ = true;
        StartRead(&request_);
      }
    }
    if (finish) FinishCall(*this, *std::move(finish));
  }

  void OnReadDone(bool ok) override {
    std::optional<grpc::Status> finish;
    {
      absl::MutexLock lock(&mu_);
      finish = ReadDoneLocked(ok);
    }
    if (finish) FinishCall(*this, *std::move(finish));
  }

  void OnWriteDone(bool ok) override {
    std::optional<grpc::Status> finish;
    {
      absl::MutexLock lock(&mu_);
      if (out_.WriteDone(ok)) cancelled_->store(true);
      MaybeReadLocked();
      finish = MaybeFinishLocked();
    }
    if (finish) FinishCall(*this, *std::move(finish));
  }

  // gRPC runs OnCancel (if at all) before OnDone, but orders the two inside libgrpc++.
  void OnCancel() override {
    cancelled_->store(true, std::memory_order_release);
    common::HappensBefore(this);
  }
  void OnDone() override {
    common::HappensAfter(this);
    delete this;
  }

 private:
  std::optional<grpc::Status> ReadDoneLocked(bool ok) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    reading_ = false;
    if (!ok) {
      reads_done_ = true;
      return MaybeFinishLocked();
    }
    if (out_.finished() || !out_.error().ok()) return MaybeFinishLocked();
    size_t sequence = next_sequence_++;
    // Checked per message: a stream opened before a drain gets no new work in.
    absl::Status status = core_.Admission();
    ModelRuntime* model = nullptr;
    if (status.ok()) {
      absl::StatusOr<ModelRuntime*> found = core_.FindModel(request_.model());
      status = found.status();
      if (found.ok()) model = *found;
    }
    if (model_name_.empty())
      model_name_ = model ? model->name() : ModelLabel(core_, request_.model());
    if (status.ok()) {
      EmbedOptions options = OptionsOf(request_);
      absl::StatusOr<std::shared_ptr<EmbedTask>> task =
          core_.MakeTask(*model, TextsOf(request_), options, cancelled_,
                         [this, sequence, model, options](EmbedTask& done) {
                           OnTaskDone(sequence, *model, options, done);
                         });
      status = task.status();
      if (task.ok()) {
        out_.Submitted();
        status = model->Submit(*task, ToBatcherDeadline(context_->deadline()));
        if (!status.ok()) out_.SubmitFailed(status);
      }
    }
    if (!status.ok()) {
      out_.Fail(status);
      cancelled_->store(true);
      return MaybeFinishLocked();
    }
    MaybeReadLocked();
    return std::nullopt;
  }

  // On a batcher thread, which holds no reference to the call: once Finish() is called, gRPC may
  // run OnDone (delete this) on its own thread at any time, so Finish comes after the unlock.
  void OnTaskDone(size_t sequence, const ModelRuntime& model, const EmbedOptions& options,
                  EmbedTask& task) {
    std::optional<grpc::Status> finish;
    {
      absl::MutexLock lock(&mu_);
      if (pb::EmbedResponse* slot = out_.Completed(sequence, task)) {
        FillEmbedResponse(model, task, options, 0, slot);
      } else if (!task.status().ok()) {
        cancelled_->store(true);
      }
      MaybeReadLocked();
      finish = MaybeFinishLocked();
    }
    if (finish) FinishCall(*this, *std::move(finish));
  }

  void MaybeReadLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (reading_ || reads_done_ || out_.finished() || !out_.error().ok()) return;
    if (next_sequence_ - out_.next_write() >= kMaxPending) return;
    reading_ = true;
    StartRead(&request_);
  }

  // As EmbedStreamReactor's: the caller calls Finish() with the result after releasing mu_.
  std::optional<grpc::Status> MaybeFinishLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    switch (out_.Advance(next_sequence_, /*total_is_final=*/reads_done_)) {
      case OrderedResponses::Step::kWrite:
        StartWrite(out_.writing());
        break;
      case OrderedResponses::Step::kFinish:
        core_.RecordRequest(model_name_.empty() ? core_.config().default_model().name : model_name_,
                            out_.error().code(), out_.inputs(), out_.tokens());
        return ToGrpc(out_.error());
      case OrderedResponses::Step::kWait:
        break;
    }
    return std::nullopt;
  }

  WorkerCore& core_;
  grpc::CallbackServerContext* const context_;
  const std::shared_ptr<std::atomic<bool>> cancelled_;

  absl::Mutex mu_;
  pb::EmbedRequest request_ ABSL_GUARDED_BY(mu_);
  bool reading_ ABSL_GUARDED_BY(mu_) = false;
  bool reads_done_ ABSL_GUARDED_BY(mu_) = false;
  size_t next_sequence_ ABSL_GUARDED_BY(mu_) = 0;
  OrderedResponses out_ ABSL_GUARDED_BY(mu_);  // Indexed by request sequence.
  std::string model_name_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

EmbeddingService::EmbeddingService(WorkerCore& core)
    : core_(core),
      created_(static_cast<uint32_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                         std::chrono::system_clock::now().time_since_epoch())
                                         .count())) {}

grpc::ServerUnaryReactor* EmbeddingService::Embed(grpc::CallbackServerContext* context,
                                                  const pb::EmbedRequest* request,
                                                  pb::EmbedResponse* response) {
  auto* reactor = new UnaryEmbedReactor(core_, context);
  EmbedOptions options = OptionsOf(*request);
  reactor->Start(request->model(), TextsOf(*request), options,
                 [response, options](const ModelRuntime& model, const EmbedTask& task) {
                   FillEmbedResponse(model, task, options, 0, response);
                 });
  return reactor;
}

grpc::ServerUnaryReactor* EmbeddingService::CreateEmbeddings(
    grpc::CallbackServerContext* context, const pb::CreateEmbeddingsRequest* request,
    pb::CreateEmbeddingsResponse* response) {
  absl::StatusOr<std::vector<std::string>> texts = OpenAiInputs(request->input());
  absl::Status status = texts.status();
  const std::string& format = request->encoding_format();
  if (status.ok() && !format.empty() && format != "float" && format != "base64") {
    status = absl::InvalidArgumentError(
        absl::StrCat("encoding_format must be \"float\" or \"base64\", got \"", format, "\""));
  }
  if (status.ok() && request->dimensions() < 0) {
    status = absl::InvalidArgumentError("dimensions must not be negative");
  }
  if (!status.ok() || !core_.Admission().ok()) {
    if (status.ok()) status = core_.Admission();
    core_.RecordRequest(ModelLabel(core_, request->model()), status.code(), 0, 0);
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(ToGrpc(status));
    return reactor;
  }
  auto* reactor = new UnaryEmbedReactor(core_, context);
  EmbedOptions options;
  options.dimensions = request->dimensions();
  bool base64 = format == "base64";
  reactor->Start(request->model(), *std::move(texts), options,
                 [response, options, base64](const ModelRuntime& model, const EmbedTask& task) {
                   response->set_object("list");
                   response->set_model(model.name());
                   for (size_t i = 0; i < task.size(); ++i) {
                     pb::EmbeddingData* data = response->add_data();
                     data->set_object("embedding");
                     data->set_index(static_cast<int32_t>(i));
                     std::vector<float> values = WorkerCore::FinalVector(model, task, i, options);
                     if (base64) {
                       data->mutable_embedding()->set_string_value(Base64Floats(values));
                     } else {
                       google::protobuf::ListValue* list =
                           data->mutable_embedding()->mutable_list_value();
                       for (float v : values) list->add_values()->set_number_value(v);
                     }
                   }
                   int32_t tokens = static_cast<int32_t>(task.total_tokens());
                   response->mutable_usage()->set_prompt_tokens(tokens);
                   response->mutable_usage()->set_total_tokens(tokens);
                 });
  return reactor;
}

grpc::ServerWriteReactor<pb::EmbedResponse>* EmbeddingService::EmbedStream(
    grpc::CallbackServerContext* context, const pb::EmbedRequest* request) {
  auto* reactor = new EmbedStreamReactor(core_, context);
  reactor->Start(*request);
  return reactor;
}

grpc::ServerBidiReactor<pb::EmbedRequest, pb::EmbedResponse>* EmbeddingService::EmbedBidi(
    grpc::CallbackServerContext* context) {
  auto* reactor = new EmbedBidiReactor(core_, context);
  reactor->Start();
  return reactor;
}

grpc::ServerUnaryReactor* EmbeddingService::Tokenize(grpc::CallbackServerContext* context,
                                                     const pb::TokenizeRequest* request,
                                                     pb::TokenizeResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::Status status = core_.Admission();
  ModelRuntime* model = nullptr;
  if (status.ok()) {
    absl::StatusOr<ModelRuntime*> found = core_.FindModel(request->model());
    status = found.status();
    if (found.ok()) model = *found;
  }
  if (status.ok() && request->inputs().empty()) {
    status = absl::InvalidArgumentError("no input texts");
  }
  if (status.ok() && static_cast<uint32_t>(request->inputs_size()) > core_.config().max_inputs) {
    status = absl::InvalidArgumentError("too many input texts");
  }
  int64_t tokens = 0;
  if (status.ok()) {
    bool special = !request->has_add_special_tokens() || request->add_special_tokens();
    response->set_model(model->name());
    for (const std::string& text : request->inputs()) {
      model::Tokenizer::Encoding encoding =
          model->tokenizer().Encode(text, static_cast<size_t>(model->max_seq_length()), special);
      pb::TokenList* list = response->add_tokens();
      list->mutable_ids()->Add(encoding.ids.begin(), encoding.ids.end());
      for (std::string& token : model->tokenizer().IdsToTokens(encoding.ids)) {
        list->add_tokens(std::move(token));
      }
      list->set_truncated(encoding.truncated);
      tokens += static_cast<int64_t>(encoding.ids.size());
    }
  }
  core_.RecordRequest(model ? model->name() : ModelLabel(core_, request->model()), status.code(),
                      status.ok() ? request->inputs_size() : 0, tokens);
  reactor->Finish(ToGrpc(status));
  return reactor;
}

grpc::ServerUnaryReactor* EmbeddingService::ListModels(grpc::CallbackServerContext* context,
                                                       const pb::ListModelsRequest* /*request*/,
                                                       pb::ListModelsResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::Status status = core_.Admission();
  if (status.ok()) {
    response->set_object("list");
    for (const auto& [name, model] : core_.models()) {
      FillModel(*model, created_, response->add_data());
    }
  }
  reactor->Finish(ToGrpc(status));
  return reactor;
}

grpc::ServerUnaryReactor* EmbeddingService::GetModel(grpc::CallbackServerContext* context,
                                                     const pb::GetModelRequest* request,
                                                     pb::Model* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::Status status = core_.Admission();
  if (status.ok() && request->id().empty()) status = absl::InvalidArgumentError("id is required");
  if (status.ok()) {
    absl::StatusOr<ModelRuntime*> found = core_.FindModel(request->id());
    status = found.status();
    if (found.ok()) FillModel(**found, created_, response);
  }
  reactor->Finish(ToGrpc(status));
  return reactor;
}

}  // namespace tipperary::worker
