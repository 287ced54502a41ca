// Helpers shared by the config dumpers (--check-config, /config): one key/value per call, in
// the same spelling the loaders read back.
#pragma once

#include <charconv>
#include <cstdint>
#include <string>
#include <vector>

#include "tipperary/config/units.h"
#include "yaml-cpp/yaml.h"

namespace tipperary::config::internal {

// Shortest text that reads back as the same double.
inline std::string FormatDouble(double value) {
  char buffer[64];
  auto result = std::to_chars(buffer, buffer + sizeof(buffer), value);
  return std::string(buffer, result.ptr);
}

inline void EmitKey(YAML::Emitter& out, const char* key) { out << YAML::Key << key << YAML::Value; }

template <typename T>
void Emit(YAML::Emitter& out, const char* key, const T& value) {
  EmitKey(out, key);
  out << value;
}

inline void EmitString(YAML::Emitter& out, const char* key, const std::string& value) {
  EmitKey(out, key);
  // Always quoted, so that values such as "1.2" or "-" stay strings for any YAML reader.
  out << YAML::DoubleQuoted << value;
}

inline void EmitStringList(YAML::Emitter& out, const char* key,
                           const std::vector<std::string>& values) {
  EmitKey(out, key);
  out << YAML::Flow << YAML::BeginSeq;
  for (const std::string& value : values) out << YAML::DoubleQuoted << value;
  out << YAML::EndSeq;
}

inline void EmitDuration(YAML::Emitter& out, const char* key, Duration value) {
  Emit(out, key, FormatDuration(value));
}

inline void EmitSize(YAML::Emitter& out, const char* key, uint64_t value) {
  Emit(out, key, FormatSize(value));
}

// An emitter that prints booleans as true/false, as the loaders accept them.
inline void UseLowerCaseBools(YAML::Emitter& out) {
  out.SetBoolFormat(YAML::TrueFalseBool);
  out.SetBoolFormat(YAML::LowerCase);
}

}  // namespace tipperary::config::internal
