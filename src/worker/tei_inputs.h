// Hugging Face TEI's request shapes (google.protobuf.Value fields of tei.proto) as plain
// values, checked as TEI checks them, and TEI's errors: a status whose google.rpc.ErrorInfo
// reason names TEI's error_type (the proxy renders {"error", "error_type"} and TEI's status
// from it). Messages are TEI's own where TEI has one, so clients that match on them still do.
//
//   absl::StatusOr<std::vector<TeiInput>> inputs = TeiEmbedInputs(request.inputs(), max_inputs);
//   if (!inputs.ok()) return Finish(inputs.status());  // 400 Empty or 422 Validation
#pragma once

#include <google/protobuf/struct.pb.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tipperary::worker {

// TEI's error types, as the reason of the ErrorInfo the proxy reads (Transcoder::TeiErrorFor).
absl::Status TeiValidation(std::string_view message);  // INVALID_ARGUMENT, 422
absl::Status TeiEmpty(std::string_view message);       // INVALID_ARGUMENT, 400
absl::Status TeiUnhealthy(std::string_view message);   // UNAVAILABLE, 503

// One input of /embed: a text, or token ids (u32 in TEI's JSON, so int64 here).
struct TeiInput {
  bool is_ids = false;
  std::string text = {};
  std::vector<int64_t> ids = {};
};

// /embed's `inputs`: a string, an array of token ids, or an array of strings and arrays of
// token ids. An empty array is "`inputs` cannot be empty" (Empty); more than `max_batch` inputs
// is TEI's batch size error (Validation). Empty items are left to the caller (TEI refuses them
// when it tokenises them, with the same Empty error).
absl::StatusOr<std::vector<TeiInput>> TeiEmbedInputs(const google::protobuf::Value& inputs,
                                                     uint32_t max_batch);

// /tokenize's `inputs`: a string or an array of strings, checked as above.
absl::StatusOr<std::vector<std::string>> TeiTokenizeInputs(const google::protobuf::Value& inputs,
                                                           uint32_t max_batch);

// /decode's `ids`: an array of token ids or an array of such arrays; every list non-empty
// ("`input_ids` cannot be empty"), every id an integer in [0, 2^32).
absl::StatusOr<std::vector<std::vector<int64_t>>> TeiDecodeIds(const google::protobuf::Value& ids,
                                                               uint32_t max_batch);

}  // namespace tipperary::worker
