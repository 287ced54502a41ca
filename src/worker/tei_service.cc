#include "tei_service.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "admission.h"
#include "rpc_support.h"
#include "tei_inputs.h"
#include "unary_embed_reactor.h"

namespace tipperary::worker {
namespace {

using google::protobuf::ListValue;
using google::protobuf::Struct;
using google::protobuf::Value;
using model::Tokenizer;

// The double that prints as the shortest decimal reading back as `f` ("0.1" for 0.1f, not
// "0.10000000149011612"): what TEI prints for an f32, and about half the bytes. Any JSON reader
// gets `f` back when it reads the number as a float32, and TEI's very number as a double.
double ShortestDouble(float f) {
  char text[32];
  const std::to_chars_result printed = std::to_chars(text, text + sizeof text, f);
  double d = static_cast<double>(f);
  if (printed.ec == std::errc()) std::from_chars(text, printed.ptr, d);
  return d;
}

absl::StatusOr<Tokenizer::Truncation> Direction(const std::string& name) {
  if (name.empty() || name == "Right" || name == "right") return Tokenizer::Truncation::kRight;
  if (name == "Left" || name == "left") return Tokenizer::Truncation::kLeft;
  return TeiValidation(
      absl::StrCat("`truncation_direction` must be \"Right\" or \"Left\", got \"", name, "\""));
}

// The text `prompt_name` puts before every input ("" without one), as TEI resolves it against
// the model's sentence-transformers prompts.
absl::StatusOr<std::string> PromptText(const ModelRuntime& model, bool has_prompt,
                                       const std::string& name) {
  if (!has_prompt) return std::string();
  const auto& prompts = model.model_config().prompts;
  if (!prompts.has_value()) {
    return TeiValidation(absl::StrCat("`prompt_name` is set to `", name,
                                      "` but no prompts were found in the Sentence Transformers "
                                      "configuration of ",
                                      model.name()));
  }
  auto it = prompts->find(name);
  if (it == prompts->end()) {
    std::vector<std::string> names;
    for (const auto& [key, text] : *prompts) names.push_back(absl::StrCat("\"", key, "\""));
    return TeiValidation(absl::StrCat("`prompt_name` is set to `", name,
                                      "` but it was not found in the Sentence Transformers "
                                      "prompts. Available prompts: [",
                                      absl::StrJoin(names, ", "), "]"));
  }
  return it->second;
}

// One /embed input as the model's whole input, as TEI's tokenizer worker makes it: a text
// (after its prompt) with [CLS]/[SEP]; token ids as they are, or, with a prompt, decoded,
// prompted and tokenised again. Cut to max_seq_length from `direction` when `truncate`, else
// refused when longer.
absl::StatusOr<Tokenizer::Encoding> EncodeInput(const ModelRuntime& model, const TeiInput& input,
                                                const std::string& prompt, bool truncate,
                                                Tokenizer::Truncation direction) {
  const Tokenizer& tok = model.tokenizer();
  const size_t max_length = static_cast<size_t>(model.max_seq_length());
  const size_t limit = truncate ? max_length : 0;
  Tokenizer::Encoding encoding;
  if (!input.is_ids) {
    if (input.text.empty()) return TeiEmpty("`inputs` cannot be empty");
    encoding =
        tok.Encode(prompt.empty() ? input.text : prompt + input.text, limit, true, direction);
  } else {
    if (input.ids.empty()) return TeiEmpty("`inputs` cannot be empty");
    const int64_t vocabulary = model.vocabulary_size();
    std::vector<int32_t> ids;
    ids.reserve(input.ids.size());
    for (int64_t id : input.ids) {
      if (id >= vocabulary) {
        return TeiValidation(absl::StrCat("token id ", id, " is outside the vocabulary of ",
                                          model.name(), " (ids 0 to ", vocabulary - 1, ")"));
      }
      ids.push_back(static_cast<int32_t>(id));
    }
    if (prompt.empty()) {
      encoding = tok.PostProcess(ids, limit, /*add_special_tokens=*/false, direction);
    } else {
      encoding = tok.Encode(prompt + tok.Decode(ids, true), limit, true, direction);
    }
  }
  if (encoding.ids.size() > max_length) {
    return TeiValidation(absl::StrCat("`inputs` must have less than ", max_length,
                                      " tokens. Given: ", encoding.ids.size()));
  }
  return encoding;
}

Value NullValue() {
  Value v;
  v.set_null_value(google::protobuf::NULL_VALUE);
  return v;
}

}  // namespace

grpc::ServerUnaryReactor* TeiService::Finish(grpc::CallbackServerContext* context,
                                             const std::string& model, const absl::Status& status,
                                             int64_t inputs, int64_t tokens) {
  core_.RecordRequest(model, status.code(), inputs, tokens);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpc(status));
  return reactor;
}

grpc::ServerUnaryReactor* TeiService::Embed(grpc::CallbackServerContext* context,
                                            const pb::TeiEmbedRequest* request,
                                            pb::TeiEmbedResponse* response) {
  const auto received = std::chrono::steady_clock::now();
  absl::StatusOr<std::shared_ptr<ModelRuntime>> admitted = Admit(core_, request->model());
  if (!admitted.ok()) {
    return Finish(context, ModelLabel(core_, request->model()), admitted.status());
  }
  std::shared_ptr<ModelRuntime> model = *std::move(admitted);
  const ModelRuntime& m = *model;
  auto refuse = [&](const absl::Status& status) { return Finish(context, m.name(), status); };

  absl::StatusOr<std::vector<TeiInput>> inputs =
      TeiEmbedInputs(request->inputs(), core_.config()->max_inputs);
  if (!inputs.ok()) return refuse(inputs.status());
  absl::StatusOr<Tokenizer::Truncation> direction = Direction(request->truncation_direction());
  if (!direction.ok()) return refuse(direction.status());
  absl::StatusOr<std::string> prompt =
      PromptText(m, request->has_prompt_name(), request->prompt_name());
  if (!prompt.ok()) return refuse(prompt.status());
  EmbedOptions options;
  options.normalize = !request->has_normalize() || request->normalize();
  if (request->has_dimensions()) {
    if (request->dimensions() <= 0) return refuse(TeiValidation("`dimensions` should be positive"));
    if (request->dimensions() > m.dim()) {
      return refuse(
          TeiValidation("`dimensions` should be smaller than the maximum embedding dimension."));
    }
    options.dimensions = request->dimensions();
  }
  // Unset: TEI's auto_truncate, which is true (GET /info says so).
  const bool truncate = !request->has_truncate() || request->truncate();
  std::vector<Tokenizer::Encoding> encodings;
  encodings.reserve(inputs->size());
  const auto tokenize_start = std::chrono::steady_clock::now();
  // TEI's x-compute-characters counts texts; token-id inputs have none to count.
  int64_t characters = 0;
  bool all_texts = true;
  for (const TeiInput& input : *inputs) {
    absl::StatusOr<Tokenizer::Encoding> encoding =
        EncodeInput(m, input, *prompt, truncate, *direction);
    if (!encoding.ok()) return refuse(encoding.status());
    encodings.push_back(*std::move(encoding));
    if (input.is_ids) all_texts = false;
    characters += CountCharacters(input.text);
  }
  EmbedInputs embed_inputs = EmbedInputs::Encoded(std::move(encodings));
  embed_inputs.received = received;
  embed_inputs.tokenization_time = std::chrono::steady_clock::now() - tokenize_start;
  if (all_texts) embed_inputs.characters = characters;
  return StartUnaryEmbed(core_, context, std::move(model), embed_inputs, options,
                         [response, options](const ModelRuntime& runtime, const EmbedTask& task) {
                           for (size_t i = 0; i < task.size(); ++i) {
                             const std::vector<float> values =
                                 WorkerCore::FinalVector(runtime, task, i, options);
                             ListValue* list = response->add_embeddings();
                             list->mutable_values()->Reserve(static_cast<int>(values.size()));
                             for (float v : values) {
                               list->add_values()->set_number_value(ShortestDouble(v));
                             }
                           }
                         });
}

grpc::ServerUnaryReactor* TeiService::Tokenize(grpc::CallbackServerContext* context,
                                               const pb::TeiTokenizeRequest* request,
                                               pb::TeiTokenizeResponse* response) {
  absl::StatusOr<std::shared_ptr<ModelRuntime>> admitted = Admit(core_, request->model());
  if (!admitted.ok()) {
    return Finish(context, ModelLabel(core_, request->model()), admitted.status());
  }
  const ModelRuntime& m = **admitted;
  absl::StatusOr<std::vector<std::string>> inputs =
      TeiTokenizeInputs(request->inputs(), core_.config()->max_inputs);
  if (!inputs.ok()) return Finish(context, m.name(), inputs.status());
  absl::StatusOr<std::string> prompt =
      PromptText(m, request->has_prompt_name(), request->prompt_name());
  if (!prompt.ok()) return Finish(context, m.name(), prompt.status());
  const bool special = !request->has_add_special_tokens() || request->add_special_tokens();
  int64_t tokens = 0;
  for (const std::string& text : *inputs) {
    if (text.empty()) {
      response->Clear();
      return Finish(context, m.name(), TeiEmpty("`inputs` cannot be empty"));
    }
    // Offsets are into the text TEI tokenised: the prompt and the input.
    const std::string full = *prompt + text;
    ListValue* list = response->add_tokens();
    for (const Tokenizer::Token& token : m.tokenizer().EncodeWithOffsets(full, special)) {
      Struct* object = list->add_values()->mutable_struct_value();
      auto& fields = *object->mutable_fields();
      fields["id"].set_number_value(token.id);
      fields["special"].set_bool_value(token.special);
      if (token.special) {
        fields["text"].set_string_value(m.tokenizer().IdsToTokens({token.id})[0]);
        fields["start"] = NullValue();
        fields["stop"] = NullValue();
      } else {
        fields["text"].set_string_value(full.substr(token.start, token.end - token.start));
        fields["start"].set_number_value(static_cast<double>(token.start));
        fields["stop"].set_number_value(static_cast<double>(token.end));
      }
      ++tokens;
    }
  }
  return Finish(context, m.name(), absl::OkStatus(), static_cast<int64_t>(inputs->size()), tokens);
}

grpc::ServerUnaryReactor* TeiService::Decode(grpc::CallbackServerContext* context,
                                             const pb::TeiDecodeRequest* request,
                                             pb::TeiDecodeResponse* response) {
  absl::StatusOr<std::shared_ptr<ModelRuntime>> admitted = Admit(core_, request->model());
  if (!admitted.ok()) {
    return Finish(context, ModelLabel(core_, request->model()), admitted.status());
  }
  const ModelRuntime& m = **admitted;
  absl::StatusOr<std::vector<std::vector<int64_t>>> rows =
      TeiDecodeIds(request->ids(), core_.config()->max_inputs);
  if (!rows.ok()) return Finish(context, m.name(), rows.status());
  const bool skip = !request->has_skip_special_tokens() || request->skip_special_tokens();
  int64_t tokens = 0;
  std::vector<int32_t> ids;
  for (const std::vector<int64_t>& row : *rows) {
    // Ids past int32 are past every vocabulary: dropped, as HF drops unknown ids.
    ids.assign(row.size(), -1);
    for (size_t i = 0; i < row.size(); ++i) {
      if (row[i] <= INT32_MAX) ids[i] = static_cast<int32_t>(row[i]);
    }
    response->add_texts(m.tokenizer().Decode(ids, skip));
    tokens += static_cast<int64_t>(row.size());
  }
  return Finish(context, m.name(), absl::OkStatus(), static_cast<int64_t>(rows->size()), tokens);
}

grpc::ServerUnaryReactor* TeiService::Info(grpc::CallbackServerContext* context,
                                           const pb::TeiInfoRequest* request,
                                           pb::TeiInfo* response) {
  absl::StatusOr<std::shared_ptr<ModelRuntime>> admitted = Admit(core_, request->model());
  if (!admitted.ok()) {
    return Finish(context, ModelLabel(core_, request->model()), admitted.status());
  }
  const ModelRuntime& m = **admitted;
  const std::shared_ptr<const config::WorkerConfig> config = core_.config();
  response->set_model_id(m.huggingface_id().empty() ? m.name() : m.huggingface_id());
  *response->mutable_model_sha() = NullValue();
  response->set_model_dtype(m.dtype());
  response->set_served_model_name(m.name());
  response->mutable_model_type()->mutable_embedding()->set_pooling(m.pooling());
  response->set_max_concurrent_requests(config->batching.max_queue);
  response->set_max_input_length(static_cast<uint32_t>(m.max_seq_length()));
  response->set_max_batch_tokens(config->batching.max_batch_tokens);
  response->set_max_batch_requests(config->batching.max_batch_size);
  response->set_max_client_batch_size(config->max_inputs);
  response->set_auto_truncate(true);
  response->set_tokenization_workers(std::max(1u, std::thread::hardware_concurrency()));
  response->set_version(TIPPERARY_VERSION);
  *response->mutable_sha() = NullValue();
  *response->mutable_docker_label() = NullValue();
  return Finish(context, m.name(), absl::OkStatus());
}

grpc::ServerUnaryReactor* TeiService::Health(grpc::CallbackServerContext* context,
                                             const pb::TeiHealthRequest* request,
                                             google::api::HttpBody* response) {
  absl::StatusOr<std::shared_ptr<ModelRuntime>> admitted = Admit(core_, request->model());
  absl::Status status = admitted.status();
  if (status.code() == absl::StatusCode::kUnavailable) {
    status = TeiUnhealthy(absl::StrCat("unhealthy: ", status.message()));
  }
  // TEI answers an empty 200.
  if (status.ok()) response->set_content_type("text/plain; charset=utf-8");
  return Finish(context, admitted.ok() ? (*admitted)->name() : ModelLabel(core_, request->model()),
                status);
}

}  // namespace tipperary::worker
