// Strict, position-aware reading of YAML configuration files.
//
// A YamlValue is a yaml-cpp node plus where it came from: the source name (a file path) and a
// path inside the document such as "upstreams[1].endpoints[0]". Every conversion reports a bad
// value as an InvalidArgument status whose message names the source, the 1-based line and
// column and the path, e.g.
//   proxy.yaml:12:5: upstreams[0].connect_timeout: bad duration "2 parsecs" (use e.g. 250ms, 2s,
//   1m)
// A YamlMap is a map whose keys were checked against the known ones: an unknown key is an error
// at the key's position, with a "did you mean" when one known key is close.
//
//   absl::StatusOr<YamlValue> root = ParseYamlDocument(text, "worker.yaml");
//   if (!root.ok()) return root.status();
//   absl::StatusOr<YamlMap> map = root->AsMap({"threads", "timeout"});
//   if (!map.ok()) return map.status();
//   uint32_t threads = 4;  // Default, kept when the key is absent.
//   if (absl::Status s = map->ReadUint32("threads", &threads, 1, 64); !s.ok()) return s;
#pragma once

#include <cstdint>
#include <initializer_list>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tipperary/config/proxy_config.h"
#include "yaml-cpp/yaml.h"

namespace tipperary::config {

class YamlMap;

// "source:line:col: path: message"; line:col is left out when `mark` is null and "path: " when
// `path` is empty. Lines and columns are printed 1-based (yaml-cpp counts from 0).
absl::Status YamlError(std::string_view source, const YAML::Mark& mark, std::string_view path,
                       std::string_view message);
// The "source:line:col: path" part alone (what YamlError puts before the message).
std::string YamlLocation(std::string_view source, const YAML::Mark& mark, std::string_view path);

// "a map", "a list", "a scalar", "null": for "expected X, got Y" messages.
std::string YamlKindName(const YAML::Node& node);

class YamlValue {
 public:
  YamlValue(std::string source, YAML::Node node, std::string path);
  // `mark` replaces the node's own: yaml-cpp places an empty (null) value at the next token,
  // often on a later line, so such values are reported at their key.
  YamlValue(std::string source, YAML::Node node, std::string path, YAML::Mark mark);

  const YAML::Node& node() const { return node_; }
  const std::string& source() const { return source_; }
  const std::string& path() const { return path_; }
  const YAML::Mark& mark() const { return mark_; }
  bool IsNull() const { return node_.IsNull(); }

  // An InvalidArgument error located at this value.
  absl::Status Error(std::string_view message) const;
  // "source:line:col: path": for problems found after loading (a route's method, a model's files).
  std::string Location() const { return YamlLocation(source_, mark_, path_); }

  // Scalars. A null (empty) value is an error for all of them.
  absl::StatusOr<std::string> AsString() const;
  absl::StatusOr<std::string> AsNonEmptyString() const;
  absl::StatusOr<bool> AsBool() const;  // true/True/TRUE/false/False/FALSE only.
  absl::StatusOr<int64_t> AsInt(int64_t min, int64_t max) const;
  absl::StatusOr<double> AsDouble(double min, double max) const;  // Finite, in [min, max].
  absl::StatusOr<Duration> AsDuration(Duration min = Duration::zero(),
                                      Duration max = Duration::max()) const;
  absl::StatusOr<uint64_t> AsSize(uint64_t min = 0,
                                  uint64_t max = std::numeric_limits<uint64_t>::max()) const;
  // One of `allowed`; the error lists them.
  absl::StatusOr<std::string> AsEnum(std::initializer_list<std::string_view> allowed) const;

  // Containers. A null value (a key with nothing after it) reads as an empty list or map.
  absl::StatusOr<std::vector<YamlValue>> AsList() const;  // Items have paths "path[i]".
  absl::StatusOr<std::vector<std::string>> AsStringList() const;
  absl::StatusOr<YamlMap> AsMap(std::vector<std::string> known_keys) const;

  // The path of a child: "path.key" (or "key" at the top level) and "path[index]".
  std::string ChildPath(std::string_view key) const;
  std::string ItemPath(size_t index) const;

 private:
  absl::StatusOr<std::string> Scalar(std::string_view expected) const;

  std::string source_;
  YAML::Node node_;
  std::string path_;
  YAML::Mark mark_;
};

// A map whose keys are all known. The Read* helpers leave *out untouched when the key is
// absent, so callers initialise it with the default first.
class YamlMap {
 public:
  const YamlValue& value() const { return value_; }
  const std::string& path() const { return value_.path(); }

  bool Has(std::string_view key) const;
  std::optional<YamlValue> Find(std::string_view key) const;
  // An error at the map itself unless every key in `keys` is present.
  absl::Status Require(std::initializer_list<std::string_view> keys) const;
  // An InvalidArgument error located at the map.
  absl::Status Error(std::string_view message) const { return value_.Error(message); }

  absl::Status ReadString(std::string_view key, std::string* out) const;
  absl::Status ReadNonEmptyString(std::string_view key, std::string* out) const;
  absl::Status ReadBool(std::string_view key, bool* out) const;
  absl::Status ReadUint32(std::string_view key, uint32_t* out, uint32_t min, uint32_t max) const;
  absl::Status ReadDouble(std::string_view key, double* out, double min, double max) const;
  absl::Status ReadDuration(std::string_view key, Duration* out, Duration min = Duration::zero(),
                            Duration max = Duration::max()) const;
  absl::Status ReadSize(std::string_view key, uint64_t* out, uint64_t min = 0,
                        uint64_t max = std::numeric_limits<uint64_t>::max()) const;
  absl::Status ReadEnum(std::string_view key, std::string* out,
                        std::initializer_list<std::string_view> allowed) const;
  absl::Status ReadStringList(std::string_view key, std::vector<std::string>* out) const;

 private:
  friend class YamlValue;
  struct Entry {
    std::string key;
    YAML::Mark key_mark;
    YAML::Node value;
  };
  explicit YamlMap(YamlValue value) : value_(std::move(value)) {}

  YamlValue value_;
  std::vector<Entry> entries_;
};

// Parses exactly one YAML document. Syntax errors become InvalidArgument with the parser's
// line:col; an empty document or more than one document is an error too.
absl::StatusOr<YamlValue> ParseYamlDocument(const std::string& text, const std::string& source);

// The whole text of a config file; NotFound / PermissionDenied / InvalidArgument (a directory)
// with a message naming the path.
absl::StatusOr<std::string> ReadConfigFile(const std::string& path);

}  // namespace tipperary::config
