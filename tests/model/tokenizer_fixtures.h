// What the tokenizer tests share: where the default model and the committed fixtures
// (tests/fixtures, generated from Hugging Face tokenizers) are, and a JSON-lines reader.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"

namespace tipperary::model::testing {

// TIPPERARY_MODEL_DIR from the environment, else the build's; empty when there is none.
inline std::string ModelDir() {
  if (const char* env = std::getenv("TIPPERARY_MODEL_DIR"); env != nullptr && *env != '\0') {
    return env;
  }
  return TIPPERARY_MODEL_DIR;
}

inline std::filesystem::path FixtureDir() {
  return std::filesystem::path(TIPPERARY_SOURCE_DIR) / "tests" / "fixtures";
}

// One Struct per non-empty line.
inline std::vector<google::protobuf::Struct> ReadJsonLines(const std::filesystem::path& path) {
  std::vector<google::protobuf::Struct> out;
  std::ifstream in(path);
  EXPECT_TRUE(in) << path;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    google::protobuf::Struct s;
    auto status = google::protobuf::util::JsonStringToMessage(line, &s);
    EXPECT_TRUE(status.ok()) << path << ": " << status.ToString();
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace tipperary::model::testing
