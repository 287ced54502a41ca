#include "tipperary/config/yaml_reader.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "tipperary/config/units.h"
#include "yaml-cpp/eventhandler.h"

namespace tipperary::config {
namespace {

absl::string_view AbslView(std::string_view text) { return {text.data(), text.size()}; }

size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// The known key closest to a typo, when it is close enough to be a likely intent.
std::optional<std::string> Suggest(std::string_view unknown,
                                   const std::vector<std::string>& known) {
  std::optional<std::string> best;
  size_t best_distance = std::max<size_t>(2, unknown.size() / 4) + 1;
  for (const std::string& candidate : known) {
    size_t distance = EditDistance(unknown, candidate);
    // A truncated key ("reflect" for "reflection") is as likely a slip as a typo.
    if (unknown.size() >= 3 && candidate.size() > unknown.size() &&
        candidate.compare(0, unknown.size(), unknown) == 0) {
      distance = std::min<size_t>(distance, 1);
    }
    if (distance < best_distance && distance < candidate.size()) {
      best = candidate;
      best_distance = distance;
    }
  }
  return best;
}

std::string Quoted(std::string_view text) { return absl::StrCat("\"", AbslView(text), "\""); }

}  // namespace

std::string YamlLocation(std::string_view source, const YAML::Mark& mark, std::string_view path) {
  std::string text(source);
  if (!mark.is_null()) absl::StrAppend(&text, ":", mark.line + 1, ":", mark.column + 1);
  if (!path.empty()) absl::StrAppend(&text, ": ", AbslView(path));
  return text;
}

absl::Status YamlError(std::string_view source, const YAML::Mark& mark, std::string_view path,
                       std::string_view message) {
  return absl::InvalidArgumentError(
      absl::StrCat(YamlLocation(source, mark, path), ": ", AbslView(message)));
}

std::string YamlKindName(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Scalar:
      return absl::StrCat("the scalar ", Quoted(node.Scalar()));
    case YAML::NodeType::Null:
      return "nothing (null)";
    case YAML::NodeType::Undefined:
      return "nothing";
  }
  return "something else";
}

YamlValue::YamlValue(std::string source, YAML::Node node, std::string path)
    : source_(std::move(source)), node_(std::move(node)), path_(std::move(path)) {
  mark_ = node_.Mark();
}

YamlValue::YamlValue(std::string source, YAML::Node node, std::string path, YAML::Mark mark)
    : source_(std::move(source)), node_(std::move(node)), path_(std::move(path)), mark_(mark) {}

absl::Status YamlValue::Error(std::string_view message) const {
  return YamlError(source_, mark_, path_, message);
}

std::string YamlValue::ChildPath(std::string_view key) const {
  if (path_.empty()) return std::string(key);
  return absl::StrCat(path_, ".", AbslView(key));
}

std::string YamlValue::ItemPath(size_t index) const { return absl::StrCat(path_, "[", index, "]"); }

absl::StatusOr<std::string> YamlValue::Scalar(std::string_view expected) const {
  if (!node_.IsScalar()) {
    return Error(absl::StrCat("expected ", AbslView(expected), ", got ", YamlKindName(node_)));
  }
  return node_.Scalar();
}

absl::StatusOr<std::string> YamlValue::AsString() const { return Scalar("a string"); }

absl::StatusOr<std::string> YamlValue::AsNonEmptyString() const {
  absl::StatusOr<std::string> text = Scalar("a string");
  if (text.ok() && text->empty()) return Error("must not be empty");
  return text;
}

absl::StatusOr<bool> YamlValue::AsBool() const {
  absl::StatusOr<std::string> text = Scalar("true or false");
  if (!text.ok()) return text.status();
  if (*text == "true" || *text == "True" || *text == "TRUE") return true;
  if (*text == "false" || *text == "False" || *text == "FALSE") return false;
  return Error(absl::StrCat("bad boolean ", Quoted(*text), " (use true or false)"));
}

absl::StatusOr<int64_t> YamlValue::AsInt(int64_t min, int64_t max) const {
  absl::StatusOr<std::string> text = Scalar("an integer");
  if (!text.ok()) return text.status();
  int64_t value = 0;
  if (text->empty() || !absl::SimpleAtoi(*text, &value) || text->front() == ' ' ||
      text->back() == ' ') {
    return Error(absl::StrCat("bad integer ", Quoted(*text)));
  }
  if (value < min || value > max) {
    return Error(absl::StrCat(value, " is out of range (", min, "..", max, ")"));
  }
  return value;
}

absl::StatusOr<double> YamlValue::AsDouble(double min, double max) const {
  absl::StatusOr<std::string> text = Scalar("a number");
  if (!text.ok()) return text.status();
  double value = 0;
  if (text->empty() || !absl::SimpleAtod(*text, &value) || !std::isfinite(value) ||
      text->front() == ' ' || text->back() == ' ') {
    return Error(absl::StrCat("bad number ", Quoted(*text)));
  }
  if (value < min || value > max) {
    return Error(absl::StrCat(*text, " is out of range (", min, "..", max, ")"));
  }
  return value;
}

absl::StatusOr<Duration> YamlValue::AsDuration(Duration min, Duration max) const {
  absl::StatusOr<std::string> text = Scalar("a duration");
  if (!text.ok()) return text.status();
  absl::StatusOr<Duration> value = ParseDuration(*text);
  if (!value.ok()) return Error(std::string(value.status().message()));
  if (*value < min) {
    if (min == Duration(1)) return Error(absl::StrCat(*text, " is out of range (must be > 0)"));
    return Error(
        absl::StrCat(*text, " is out of range (must be at least ", FormatDuration(min), ")"));
  }
  if (*value > max) {
    return Error(
        absl::StrCat(*text, " is out of range (must be at most ", FormatDuration(max), ")"));
  }
  return value;
}

absl::StatusOr<uint64_t> YamlValue::AsSize(uint64_t min, uint64_t max) const {
  absl::StatusOr<std::string> text = Scalar("a size");
  if (!text.ok()) return text.status();
  absl::StatusOr<uint64_t> value = ParseSize(*text);
  if (!value.ok()) return Error(std::string(value.status().message()));
  if (*value < min || *value > max) {
    std::string range;
    if (max == std::numeric_limits<uint64_t>::max()) {
      range = min == 1 ? "must be > 0" : absl::StrCat("must be at least ", FormatSize(min));
    } else {
      range = absl::StrCat(FormatSize(min), "..", FormatSize(max));
    }
    return Error(absl::StrCat(*text, " is out of range (", range, ")"));
  }
  return value;
}

absl::StatusOr<std::string> YamlValue::AsEnum(
    std::initializer_list<std::string_view> allowed) const {
  absl::StatusOr<std::string> text = Scalar("a string");
  if (!text.ok()) return text.status();
  for (std::string_view candidate : allowed) {
    if (*text == candidate) return text;
  }
  std::vector<std::string> names;
  for (std::string_view candidate : allowed) names.emplace_back(candidate);
  return Error(
      absl::StrCat("bad value ", Quoted(*text), " (use one of: ", absl::StrJoin(names, ", "), ")"));
}

absl::StatusOr<std::vector<YamlValue>> YamlValue::AsList() const {
  std::vector<YamlValue> items;
  if (node_.IsNull()) return items;
  if (!node_.IsSequence()) {
    return Error(absl::StrCat("expected a list, got ", YamlKindName(node_)));
  }
  items.reserve(node_.size());
  for (size_t i = 0; i < node_.size(); ++i) {
    items.emplace_back(source_, node_[i], ItemPath(i));
  }
  return items;
}

absl::StatusOr<std::vector<std::string>> YamlValue::AsStringList() const {
  absl::StatusOr<std::vector<YamlValue>> items = AsList();
  if (!items.ok()) return items.status();
  std::vector<std::string> strings;
  for (const YamlValue& item : *items) {
    absl::StatusOr<std::string> text = item.AsNonEmptyString();
    if (!text.ok()) return text.status();
    strings.push_back(*std::move(text));
  }
  return strings;
}

absl::StatusOr<YamlMap> YamlValue::AsMap(std::vector<std::string> known_keys) const {
  YamlMap map(*this);
  if (node_.IsNull()) return map;
  if (!node_.IsMap()) return Error(absl::StrCat("expected a map, got ", YamlKindName(node_)));
  for (const auto& pair : node_) {
    const YAML::Node& key_node = pair.first;
    if (!key_node.IsScalar()) {
      return YamlError(source_, key_node.Mark(), path_,
                       absl::StrCat("a key must be a plain name, got ", YamlKindName(key_node)));
    }
    const std::string& key = key_node.Scalar();
    if (std::find(known_keys.begin(), known_keys.end(), key) == known_keys.end()) {
      std::string message = absl::StrCat("unknown key ", Quoted(key),
                                         path_.empty() ? " at the top level" : " in " + path_,
                                         " (known: ", absl::StrJoin(known_keys, ", "), ")");
      if (std::optional<std::string> suggestion = Suggest(key, known_keys)) {
        absl::StrAppend(&message, "; did you mean ", Quoted(*suggestion), "?");
      }
      return YamlError(source_, key_node.Mark(), "", message);
    }
    for (const YamlMap::Entry& entry : map.entries_) {
      if (entry.key == key) {
        return YamlError(source_, key_node.Mark(), ChildPath(key), "duplicate key");
      }
    }
    map.entries_.push_back({key, key_node.Mark(), pair.second});
  }
  return map;
}

bool YamlMap::Has(std::string_view key) const { return Find(key).has_value(); }

std::optional<YamlValue> YamlMap::Find(std::string_view key) const {
  for (const Entry& entry : entries_) {
    if (entry.key != key) continue;
    return YamlValue(value_.source(), entry.value, value_.ChildPath(key),
                     entry.value.IsNull() ? entry.key_mark : entry.value.Mark());
  }
  return std::nullopt;
}

absl::Status YamlMap::Require(std::initializer_list<std::string_view> keys) const {
  for (std::string_view key : keys) {
    if (!Has(key)) return Error(absl::StrCat("missing required key ", Quoted(key)));
  }
  return absl::OkStatus();
}

namespace {

// Assigns the converted value of `key` to *out when the key is present.
template <typename T, typename Convert>
absl::Status ReadInto(const YamlMap& map, std::string_view key, T* out, Convert convert) {
  std::optional<YamlValue> value = map.Find(key);
  if (!value) return absl::OkStatus();
  auto converted = convert(*value);
  if (!converted.ok()) return converted.status();
  *out = static_cast<T>(*std::move(converted));
  return absl::OkStatus();
}

}  // namespace

absl::Status YamlMap::ReadString(std::string_view key, std::string* out) const {
  return ReadInto(*this, key, out, [](const YamlValue& v) { return v.AsString(); });
}

absl::Status YamlMap::ReadNonEmptyString(std::string_view key, std::string* out) const {
  return ReadInto(*this, key, out, [](const YamlValue& v) { return v.AsNonEmptyString(); });
}

absl::Status YamlMap::ReadBool(std::string_view key, bool* out) const {
  return ReadInto(*this, key, out, [](const YamlValue& v) { return v.AsBool(); });
}

absl::Status YamlMap::ReadUint32(std::string_view key, uint32_t* out, uint32_t min,
                                 uint32_t max) const {
  return ReadInto(*this, key, out, [&](const YamlValue& v) { return v.AsInt(min, max); });
}

absl::Status YamlMap::ReadDouble(std::string_view key, double* out, double min, double max) const {
  return ReadInto(*this, key, out, [&](const YamlValue& v) { return v.AsDouble(min, max); });
}

absl::Status YamlMap::ReadDuration(std::string_view key, Duration* out, Duration min,
                                   Duration max) const {
  return ReadInto(*this, key, out, [&](const YamlValue& v) { return v.AsDuration(min, max); });
}

absl::Status YamlMap::ReadSize(std::string_view key, uint64_t* out, uint64_t min,
                               uint64_t max) const {
  return ReadInto(*this, key, out, [&](const YamlValue& v) { return v.AsSize(min, max); });
}

absl::Status YamlMap::ReadEnum(std::string_view key, std::string* out,
                               std::initializer_list<std::string_view> allowed) const {
  return ReadInto(*this, key, out, [&](const YamlValue& v) { return v.AsEnum(allowed); });
}

absl::Status YamlMap::ReadStringList(std::string_view key, std::vector<std::string>* out) const {
  return ReadInto(*this, key, out, [](const YamlValue& v) { return v.AsStringList(); });
}

namespace {

// Where each document of a stream starts (its first token) and where its root node is, for
// ParseYamlDocument.
class DocumentMarks : public YAML::EventHandler {
 public:
  std::vector<YAML::Mark> starts;
  std::vector<YAML::Mark> roots;

  void OnDocumentStart(const YAML::Mark& mark) override { starts.push_back(mark); }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t) override { Node(mark); }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override { Node(mark); }
  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                const std::string&) override {
    Node(mark);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    Node(mark);
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    Node(mark);
  }
  void OnMapEnd() override {}

 private:
  void Node(const YAML::Mark& mark) {
    if (roots.size() < starts.size()) roots.push_back(mark);
  }
};

}  // namespace

absl::StatusOr<YamlValue> ParseYamlDocument(const std::string& text, const std::string& source) {
  // yaml-cpp 0.7 leaves a token that cannot start a node (a ',' outside a flow collection)
  // unconsumed and starts an empty document at it, again and again: YAML::LoadAll never
  // returns and allocates a document per turn. So the documents are counted first, three at
  // most: one that starts where the previous one did is that stuck token, a syntax error. Only
  // then is the first (and only) document loaded.
  YAML::Node document;
  try {
    std::istringstream stream(text);
    YAML::Parser parser(stream);
    DocumentMarks documents;
    while (documents.starts.size() < 3 && parser.HandleNextDocument(documents)) {
    }
    const std::vector<YAML::Mark>& marks = documents.starts;
    for (size_t i = 1; i < marks.size(); ++i) {
      if (marks[i].pos == marks[i - 1].pos) {
        const size_t pos = static_cast<size_t>(std::max(marks[i].pos, 0));
        std::string what = pos < text.size()
                               ? absl::StrCat("unexpected \"", text.substr(pos, 1), "\"")
                               : std::string("unexpected end of input");
        return YamlError(source, marks[i], "", absl::StrCat("YAML syntax error: ", what));
      }
    }
    if (marks.size() > 1) {
      const YAML::Mark& at = documents.roots.size() > 1 ? documents.roots[1] : marks[1];
      return YamlError(source, at, "", "more than one YAML document (remove the extra \"---\")");
    }
    if (!marks.empty()) document = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return YamlError(source, e.mark, "", absl::StrCat("YAML syntax error: ", e.msg));
  }
  if (!document.IsDefined() || document.IsNull()) {
    return YamlError(source, YAML::Mark(), "", "the file is empty");
  }
  return YamlValue(source, document, "");
}

absl::StatusOr<std::string> ReadConfigFile(const std::string& path) {
  std::error_code error;
  if (std::filesystem::is_directory(path, error)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": cannot read the config file: it is a directory"));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    int saved = errno;
    std::string message =
        absl::StrCat(path, ": cannot read the config file: ", std::strerror(saved));
    if (saved == EACCES) return absl::PermissionDeniedError(message);
    return absl::NotFoundError(message);
  }
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace tipperary::config
