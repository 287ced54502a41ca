#include "tei_inputs.h"

#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "status_details.h"

namespace tipperary::worker {
namespace {

using google::protobuf::ListValue;
using google::protobuf::Value;

constexpr char kInputsEmpty[] = "`inputs` cannot be empty";
constexpr char kIdsEmpty[] = "`input_ids` cannot be empty";

absl::Status BatchSize(size_t size, uint32_t max_batch) {
  if (size <= max_batch) return absl::OkStatus();
  return TeiValidation(
      absl::StrCat("batch size ", size, " > maximum allowed batch size ", max_batch));
}

// A list of token ids (TEI reads them as u32); `where` names it in errors ("inputs[2]").
absl::StatusOr<std::vector<int64_t>> Ids(const ListValue& list, const std::string& where) {
  std::vector<int64_t> ids;
  ids.reserve(static_cast<size_t>(list.values_size()));
  for (int j = 0; j < list.values_size(); ++j) {
    const Value& item = list.values(j);
    const double id = item.number_value();
    if (item.kind_case() != Value::kNumberValue || !std::isfinite(id) || std::trunc(id) != id ||
        id < 0 || id > 4294967295.0) {
      return TeiValidation(
          absl::StrCat(where, "[", j, "] must be a token id (an integer from 0 to 4294967295)"));
    }
    ids.push_back(static_cast<int64_t>(id));
  }
  return ids;
}

bool AllNumbers(const ListValue& list) {
  for (const Value& v : list.values()) {
    if (v.kind_case() != Value::kNumberValue) return false;
  }
  return true;
}

}  // namespace

absl::Status TeiValidation(std::string_view message) {
  return WithReason(absl::InvalidArgumentError(absl::string_view(message.data(), message.size())),
                    "VALIDATION");
}

absl::Status TeiEmpty(std::string_view message) {
  return WithReason(absl::InvalidArgumentError(absl::string_view(message.data(), message.size())),
                    "EMPTY");
}

absl::Status TeiUnhealthy(std::string_view message) {
  return WithReason(absl::UnavailableError(absl::string_view(message.data(), message.size())),
                    "UNHEALTHY");
}

absl::StatusOr<std::vector<TeiInput>> TeiEmbedInputs(const Value& inputs, uint32_t max_batch) {
  constexpr char kShapes[] =
      "`inputs` must be a string, an array of token ids, or an array of strings and arrays of "
      "token ids";
  std::vector<TeiInput> out;
  switch (inputs.kind_case()) {
    case Value::kStringValue:
      out.push_back({.text = inputs.string_value()});
      return out;
    case Value::kListValue:
      break;
    case Value::KIND_NOT_SET:
    case Value::kNullValue:
      return TeiValidation("`inputs` is required");
    default:
      return TeiValidation(kShapes);
  }
  const ListValue& list = inputs.list_value();
  // As TEI's untagged enum reads it: an array of numbers (or none) is one input of ids.
  if (list.values().empty()) return TeiEmpty(kInputsEmpty);
  if (AllNumbers(list)) {
    absl::StatusOr<std::vector<int64_t>> ids = Ids(list, "inputs");
    if (!ids.ok()) return ids.status();
    out.push_back({.is_ids = true, .ids = *std::move(ids)});
    return out;
  }
  if (absl::Status s = BatchSize(static_cast<size_t>(list.values_size()), max_batch); !s.ok()) {
    return s;
  }
  out.reserve(static_cast<size_t>(list.values_size()));
  for (int i = 0; i < list.values_size(); ++i) {
    const Value& item = list.values(i);
    if (item.kind_case() == Value::kStringValue) {
      out.push_back({.text = item.string_value()});
    } else if (item.kind_case() == Value::kListValue) {
      absl::StatusOr<std::vector<int64_t>> ids =
          Ids(item.list_value(), absl::StrCat("inputs[", i, "]"));
      if (!ids.ok()) return ids.status();
      out.push_back({.is_ids = true, .ids = *std::move(ids)});
    } else {
      return TeiValidation(absl::StrCat(kShapes, " (inputs[", i, "] is neither)"));
    }
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> TeiTokenizeInputs(const Value& inputs,
                                                           uint32_t max_batch) {
  if (inputs.kind_case() == Value::kStringValue) return std::vector{inputs.string_value()};
  if (inputs.kind_case() != Value::kListValue) {
    return TeiValidation("`inputs` must be a string or an array of strings");
  }
  const ListValue& list = inputs.list_value();
  if (list.values().empty()) return TeiEmpty(kInputsEmpty);
  if (absl::Status s = BatchSize(static_cast<size_t>(list.values_size()), max_batch); !s.ok()) {
    return s;
  }
  std::vector<std::string> out;
  out.reserve(static_cast<size_t>(list.values_size()));
  for (int i = 0; i < list.values_size(); ++i) {
    if (list.values(i).kind_case() != Value::kStringValue) {
      return TeiValidation(absl::StrCat("`inputs` must be a string or an array of strings (inputs[",
                                        i, "] is not a string)"));
    }
    out.push_back(list.values(i).string_value());
  }
  return out;
}

absl::StatusOr<std::vector<std::vector<int64_t>>> TeiDecodeIds(const Value& ids,
                                                               uint32_t max_batch) {
  constexpr char kShapes[] = "`ids` must be an array of token ids or an array of such arrays";
  if (ids.kind_case() != Value::kListValue) return TeiValidation(kShapes);
  const ListValue& list = ids.list_value();
  std::vector<std::vector<int64_t>> out;
  // [] and [1, 2] are one list of ids (TEI's untagged enum tries that first).
  if (AllNumbers(list)) {
    if (list.values().empty()) return TeiEmpty(kIdsEmpty);
    absl::StatusOr<std::vector<int64_t>> row = Ids(list, "ids");
    if (!row.ok()) return row.status();
    out.push_back(*std::move(row));
    return out;
  }
  if (absl::Status s = BatchSize(static_cast<size_t>(list.values_size()), max_batch); !s.ok()) {
    return s;
  }
  out.reserve(static_cast<size_t>(list.values_size()));
  for (int i = 0; i < list.values_size(); ++i) {
    const Value& item = list.values(i);
    if (item.kind_case() != Value::kListValue) {
      return TeiValidation(absl::StrCat(kShapes, " (ids[", i, "] is neither)"));
    }
    if (item.list_value().values().empty()) return TeiEmpty(kIdsEmpty);
    absl::StatusOr<std::vector<int64_t>> row = Ids(item.list_value(), absl::StrCat("ids[", i, "]"));
    if (!row.ok()) return row.status();
    out.push_back(*std::move(row));
  }
  return out;
}

}  // namespace tipperary::worker
