// OpenAI's `input` (CreateEmbeddingsRequest.input, a google.protobuf.Value) as the worker's
// EmbedInputs: a string, an array of strings, an array of token ids or an array of arrays of
// token ids, as OpenAI's API takes it. Anything else (an empty string, an empty array, a mix of
// kinds, a number that is no integer) is INVALID_ARGUMENT with OpenAI's message for it and
// the field "input"; which ids the model knows is WorkerCore::MakeTask's to check.
//
//   absl::StatusOr<EmbedInputs> inputs = OpenAiInputs(request.input());
#pragma once

#include <google/protobuf/struct.pb.h>

#include "absl/status/statusor.h"
#include "worker_core.h"

namespace tipperary::worker {

absl::StatusOr<EmbedInputs> OpenAiInputs(const google::protobuf::Value& input);

}  // namespace tipperary::worker
