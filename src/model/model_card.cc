#include "tipperary/model/model_card.h"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"

namespace tipperary::model {
namespace {

bool IsNamePart(std::string_view s) {
  if (s.empty() || s == "." || s == "..") return false;
  for (char c : s) {
    if (!(absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-')) {
      return false;
    }
  }
  return true;
}

// ".../models--ORG--NAME/snapshots/REV[/...]": huggingface_hub's cache layout.
std::optional<std::string> FromCachePath(const std::string& model_dir) {
  std::filesystem::path path = std::filesystem::path(model_dir).lexically_normal();
  std::vector<std::string> parts;
  for (const auto& part : path) parts.push_back(part.string());
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    if (parts[i + 1] != "snapshots" || !absl::StartsWith(parts[i], "models--")) continue;
    // ORG--NAME; neither part may hold "--" itself, as the Hub's names cannot.
    std::string name = parts[i].substr(8);
    size_t dashes = name.find("--");
    if (dashes == std::string::npos) continue;
    std::string id = name.substr(0, dashes) + "/" + name.substr(dashes + 2);
    if (name.find("--", dashes + 2) == std::string::npos && IsHuggingFaceId(id)) return id;
  }
  return std::nullopt;
}

// The first SentenceTransformer('ORG/NAME') (either quote) in the model card.
std::optional<std::string> FromModelCard(const std::string& model_dir) {
  std::ifstream in(std::filesystem::path(model_dir) / "README.md", std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream text;
  text << in.rdbuf();
  const std::string card = text.str();
  constexpr std::string_view kCall = "SentenceTransformer(";
  for (size_t at = card.find(kCall); at != std::string::npos; at = card.find(kCall, at + 1)) {
    size_t open = at + kCall.size();
    while (open < card.size() && (card[open] == ' ' || card[open] == '\t')) ++open;
    if (open >= card.size() || (card[open] != '\'' && card[open] != '"')) continue;
    size_t close = card.find(card[open], open + 1);
    if (close == std::string::npos) continue;
    std::string id = card.substr(open + 1, close - open - 1);
    if (IsHuggingFaceId(id)) return id;
  }
  return std::nullopt;
}

}  // namespace

bool IsHuggingFaceId(std::string_view id) {
  size_t slash = id.find('/');
  return slash != std::string_view::npos && IsNamePart(id.substr(0, slash)) &&
         IsNamePart(id.substr(slash + 1));
}

std::string_view ShortName(std::string_view hf_id) {
  size_t slash = hf_id.rfind('/');
  return slash == std::string_view::npos ? hf_id : hf_id.substr(slash + 1);
}

std::optional<std::string> HuggingFaceId(const std::string& model_dir) {
  if (std::optional<std::string> id = FromCachePath(model_dir)) return id;
  return FromModelCard(model_dir);
}

}  // namespace tipperary::model
