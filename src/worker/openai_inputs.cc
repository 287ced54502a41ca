#include "openai_inputs.h"

#include <cmath>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "status_details.h"

namespace tipperary::worker {
namespace {

using google::protobuf::ListValue;
using google::protobuf::Value;

// OpenAI's own words for an input it cannot take (an empty string among them), then ours.
absl::Status Invalid(const std::string& why) {
  return WithField(absl::InvalidArgumentError(
                       absl::StrCat("'$.input' is invalid. Please check the API reference: "
                                    "https://platform.openai.com/docs/api-reference. (",
                                    why, ")")),
                   "input");
}

// One array of token ids; `where` names it in errors ("input" or "input[3]").
absl::StatusOr<std::vector<int32_t>> TokenIds(const ListValue& list, const std::string& where) {
  if (list.values().empty()) return Invalid(absl::StrCat(where, " is an empty array"));
  std::vector<int32_t> ids;
  ids.reserve(static_cast<size_t>(list.values_size()));
  for (int j = 0; j < list.values_size(); ++j) {
    const Value& item = list.values(j);
    if (item.kind_case() != Value::kNumberValue) {
      return Invalid(absl::StrCat(where, " mixes token ids with other kinds of input"));
    }
    double id = item.number_value();
    if (!std::isfinite(id) || std::trunc(id) != id ||
        id < static_cast<double>(std::numeric_limits<int32_t>::min()) ||
        id > static_cast<double>(std::numeric_limits<int32_t>::max())) {
      return Invalid(absl::StrCat(where, "[", j, "] is not an integer token id"));
    }
    ids.push_back(static_cast<int32_t>(id));
  }
  return ids;
}

}  // namespace

absl::StatusOr<EmbedInputs> OpenAiInputs(const Value& input) {
  switch (input.kind_case()) {
    case Value::kStringValue:
      if (input.string_value().empty()) return Invalid("input is an empty string");
      return EmbedInputs::Texts({input.string_value()});
    case Value::kListValue:
      break;
    case Value::KIND_NOT_SET:
    case Value::kNullValue:
      return Invalid("input is required");
    default:
      return Invalid(
          "input must be a string, an array of strings, an array of token ids or an array of "
          "arrays of token ids");
  }
  const ListValue& list = input.list_value();
  if (list.values().empty()) return Invalid("input is an empty array");
  // The first item says which of the three array shapes this is; every item must agree.
  switch (list.values(0).kind_case()) {
    case Value::kNumberValue: {
      absl::StatusOr<std::vector<int32_t>> ids = TokenIds(list, "input");
      if (!ids.ok()) return ids.status();
      std::vector<std::vector<int32_t>> rows;
      rows.push_back(*std::move(ids));
      return EmbedInputs::TokenIds(std::move(rows));
    }
    case Value::kStringValue: {
      std::vector<std::string> texts;
      texts.reserve(static_cast<size_t>(list.values_size()));
      for (int i = 0; i < list.values_size(); ++i) {
        const Value& item = list.values(i);
        if (item.kind_case() != Value::kStringValue) {
          return Invalid("input mixes strings with other kinds of input");
        }
        if (item.string_value().empty()) {
          return Invalid(absl::StrCat("input[", i, "] is an empty string"));
        }
        texts.push_back(item.string_value());
      }
      return EmbedInputs::Texts(std::move(texts));
    }
    case Value::kListValue: {
      std::vector<std::vector<int32_t>> rows;
      rows.reserve(static_cast<size_t>(list.values_size()));
      for (int i = 0; i < list.values_size(); ++i) {
        const Value& item = list.values(i);
        if (item.kind_case() != Value::kListValue) {
          return Invalid("input mixes arrays of token ids with other kinds of input");
        }
        absl::StatusOr<std::vector<int32_t>> ids =
            TokenIds(item.list_value(), absl::StrCat("input[", i, "]"));
        if (!ids.ok()) return ids.status();
        rows.push_back(*std::move(ids));
      }
      return EmbedInputs::TokenIds(std::move(rows));
    }
    default:
      return Invalid(
          "an array input must hold strings, token ids or arrays of token ids, all of one kind");
  }
}

}  // namespace tipperary::worker
