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

#include "absl/strings/str_cat.h"
#include "admission.h"
#include "embed_bidi_reactor.h"
#include "embed_stream_reactor.h"
#include "openai_inputs.h"
#include "rpc_support.h"
#include "status_details.h"
#include "unary_embed_reactor.h"

namespace tipperary::worker {

EmbeddingService::EmbeddingService(WorkerCore& core)
    : core_(core),
      created_(static_cast<uint32_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                         std::chrono::system_clock::now().time_since_epoch())
                                         .count())) {}

grpc::ServerUnaryReactor* EmbeddingService::Embed(grpc::CallbackServerContext* context,
                                                  const pb::EmbedRequest* request,
                                                  pb::EmbedResponse* response) {
  EmbedOptions options = OptionsOf(*request);
  return StartUnaryEmbed(core_, context, request->model(), EmbedInputs::Texts(TextsOf(*request)),
                         options,
                         [response, options](const ModelRuntime& model, const EmbedTask& task) {
                           FillEmbedResponse(model, task, options, 0, response);
                         });
}

grpc::ServerUnaryReactor* EmbeddingService::CreateEmbeddings(
    grpc::CallbackServerContext* context, const pb::CreateEmbeddingsRequest* request,
    pb::CreateEmbeddingsResponse* response) {
  absl::StatusOr<EmbedInputs> inputs = OpenAiInputs(request->input());
  absl::Status status = inputs.status();
  const std::string& format = request->encoding_format();
  if (status.ok() && !format.empty() && format != "float" && format != "base64") {
    status =
        WithField(absl::InvalidArgumentError(absl::StrCat(
                      "encoding_format must be \"float\" or \"base64\", got \"", format, "\"")),
                  "encoding_format");
  }
  // OpenAI: unset = all dimensions; otherwise at least 1 (at most the model's: MakeTask).
  if (status.ok() && request->has_dimensions() && request->dimensions() < 1) {
    status = WithField(absl::InvalidArgumentError(absl::StrCat(
                           "dimensions must be at least 1, got ", request->dimensions())),
                       "dimensions");
  }
  if (status.ok()) status = Admit(core_, request->model()).status();
  if (!status.ok()) {
    core_.RecordRequest(ModelLabel(core_, request->model()), status.code(), 0, 0);
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(ToGrpc(status));
    return reactor;
  }
  EmbedOptions options;
  if (request->has_dimensions()) {
    // OpenAI's semantics: the first N dimensions, re-normalised to unit length.
    options.dimensions = request->dimensions();
    options.normalize = true;
  }
  bool base64 = format == "base64";
  return StartUnaryEmbed(
      core_, context, request->model(), *std::move(inputs), options,
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
            google::protobuf::ListValue* list = data->mutable_embedding()->mutable_list_value();
            for (float v : values) list->add_values()->set_number_value(v);
          }
        }
        // OpenAI counts the input's tokens; the [CLS]/[SEP] the model also sees are ours.
        int32_t tokens = static_cast<int32_t>(task.input_tokens());
        response->mutable_usage()->set_prompt_tokens(tokens);
        response->mutable_usage()->set_total_tokens(tokens);
      });
}

grpc::ServerWriteReactor<pb::EmbedResponse>* EmbeddingService::EmbedStream(
    grpc::CallbackServerContext* context, const pb::EmbedRequest* request) {
  return StartEmbedStream(core_, context, *request);
}

grpc::ServerBidiReactor<pb::EmbedRequest, pb::EmbedResponse>* EmbeddingService::EmbedBidi(
    grpc::CallbackServerContext* context) {
  return StartEmbedBidi(core_, context);
}

grpc::ServerUnaryReactor* EmbeddingService::Tokenize(grpc::CallbackServerContext* context,
                                                     const pb::TokenizeRequest* request,
                                                     pb::TokenizeResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<std::shared_ptr<ModelRuntime>> admitted = Admit(core_, request->model());
  absl::Status status = admitted.status();
  std::shared_ptr<ModelRuntime> model = admitted.ok() ? *admitted : nullptr;
  if (status.ok() && request->inputs().empty()) {
    status = absl::InvalidArgumentError("no input texts");
  }
  if (status.ok() && static_cast<uint32_t>(request->inputs_size()) > core_.config()->max_inputs) {
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
    // Held for the loop: a range-for keeps no temporary of its range expression but the last
    // (until C++23), and a reload may drop the set meanwhile.
    const std::shared_ptr<const ModelSet> models = core_.models();
    for (const auto& [name, model] : models->models()) {
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
    absl::StatusOr<std::shared_ptr<ModelRuntime>> admitted = Admit(core_, request->id());
    status = admitted.status();
    if (admitted.ok()) FillModel(**admitted, created_, response);
  }
  reactor->Finish(ToGrpc(status));
  return reactor;
}

}  // namespace tipperary::worker
