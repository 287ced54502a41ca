#include "tipperary/config/reload_report.h"

#include <openssl/evp.h>
#include <yaml-cpp/yaml.h>

#include <set>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "tipperary/common/log.h"

namespace tipperary::config {
namespace {

std::string Emit(const YAML::Node& node) {
  YAML::Emitter out;
  out << node;
  return out.c_str();
}

void AppendStringArray(std::string& out, const std::vector<std::string>& values) {
  out += "[";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += ",";
    out += "\"";
    common::AppendJsonEscaped(out, values[i]);
    out += "\"";
  }
  out += "]";
}

}  // namespace

std::string ConfigHash(std::string_view effective_config_dump) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(effective_config_dump.data(), effective_config_dump.size(), digest, &length,
             EVP_sha256(), nullptr);
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(digest), length));
}

std::vector<std::string> ChangedKeys(std::string_view old_dump, std::string_view new_dump) {
  YAML::Node before = YAML::Load(std::string(old_dump));
  YAML::Node after = YAML::Load(std::string(new_dump));
  std::set<std::string> sections;
  for (const YAML::Node* node : {&before, &after}) {
    if (!node->IsMap()) continue;
    for (const auto& entry : *node) sections.insert(entry.first.as<std::string>());
  }
  std::vector<std::string> changed;
  for (const std::string& section : sections) {
    const YAML::Node a = before[section];
    const YAML::Node b = after[section];
    if (a && b && a.IsMap() && b.IsMap()) {
      std::set<std::string> keys;
      for (const auto& entry : a) keys.insert(entry.first.as<std::string>());
      for (const auto& entry : b) keys.insert(entry.first.as<std::string>());
      for (const std::string& key : keys) {
        const YAML::Node x = a[key];
        const YAML::Node y = b[key];
        if (!x || !y || Emit(x) != Emit(y)) changed.push_back(absl::StrCat(section, ".", key));
      }
    } else if (!a || !b || Emit(a) != Emit(b)) {
      changed.push_back(section);
    }
  }
  return changed;
}

std::string_view ReloadReport::ResultName() const {
  switch (result) {
    case Result::kApplied:
      return "applied";
    case Result::kUnchanged:
      return "unchanged";
    case Result::kRejected:
      return "rejected";
  }
  return "rejected";
}

int ReloadReport::HttpStatus() const { return result == Result::kRejected ? 422 : 200; }

std::string ReloadReport::ToJson() const {
  std::string out =
      absl::StrCat("{\"result\":\"", absl::string_view(ResultName().data(), ResultName().size()),
                   "\",\"config_hash\":\"", config_hash, "\",\"changed\":");
  AppendStringArray(out, changed);
  out += ",\"restart_required\":";
  AppendStringArray(out, restart_required);
  if (!error.empty()) {
    out += ",\"error\":\"";
    common::AppendJsonEscaped(out, error);
    out += "\"";
  }
  return out + "}\n";
}

}  // namespace tipperary::config
