// Fuzz target: the files of a model directory, which the operator points tipperary-worker at
// (models[].path, --model-path): model.safetensors (SafetensorsFile: the 8-byte length, the JSON
// header, dtypes, shapes, offsets; ReadFloat32's F16/BF16 conversions), config.json,
// modules.json, 1_Pooling/config.json and sentence_bert_config.json (LoadModelConfig), the whole
// directory through LoadModel (every tensor the config implies), and the tokenizer's files
// (tokenizer.json, tokenizer_config.json, vocab.txt, special_tokens_map.json: Tokenizer::Load).
//
// Input: the name of one of those files, a newline, then its content. At start-up two scratch
// directories get a tiny valid model (tests/model/tiny_model.h) and tokenizer, one with
// tokenizer.json and one with vocab.txt only; each input replaces its file in the directory that
// reads it, the loaders run, and the file is put back.
// Besides not crashing, checks what a successful load promises: tensors inside the buffer with
// the byte size their shape and dtype give, ReadFloat32 returning every element, a config whose
// hidden size splits into its heads and whose max_seq_length fits the position embeddings, a
// tokenizer whose encodings stay in its vocabulary.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <string_view>

#include "../model/tiny_model.h"
#include "absl/strings/str_cat.h"
#include "tipperary/model/model_bundle.h"
#include "tipperary/model/model_config.h"
#include "tipperary/model/safetensors.h"
#include "tipperary/model/tokenizer.h"

namespace {

namespace fs = std::filesystem;
using namespace tipperary::model;  // NOLINT

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "FUZZ FINDING: %s\n", what.c_str());
  std::abort();
}

struct Dirs {
  std::string root;
  fs::path json;                                 // tiny model + tokenizer.json
  fs::path txt;                                  // tiny model + vocab.txt (no tokenizer.json)
  std::map<std::string, std::string> originals;  // file name -> content, per json/txt
};

Dirs& Scratch() {
  static Dirs dirs;
  return dirs;
}

void RemoveScratch() {
  std::error_code error;
  if (!Scratch().root.empty()) fs::remove_all(Scratch().root, error);
}

std::string ReadAll(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void CheckSafetensors(const std::string& bytes) {
  auto file = SafetensorsFile::FromBuffer(bytes, "fuzz.safetensors");
  if (!file.ok()) return;
  for (const auto& [name, t] : (*file)->tensors()) {
    const int64_t n = t.NumElements();
    if (n < 0 || t.size_bytes != static_cast<size_t>(n) * SafetensorsDTypeSize(t.dtype)) {
      Fail(absl::StrCat("tensor ", name, ": ", t.size_bytes, " bytes for shape ", t.ShapeString()));
    }
    (void)t.ShapeString();
    if (t.dtype == SafetensorsDType::kF32 || t.dtype == SafetensorsDType::kF16 ||
        t.dtype == SafetensorsDType::kBF16) {
      absl::StatusOr<std::vector<float>> v = (*file)->ReadFloat32(name);
      if (!v.ok()) Fail(absl::StrCat("ReadFloat32(", name, "): ", v.status().ToString()));
      if (v->size() != static_cast<size_t>(n)) Fail(absl::StrCat("ReadFloat32(", name, ") size"));
    }
  }
}

void CheckModel(const fs::path& dir) {
  absl::StatusOr<ModelConfig> config = LoadModelConfig(dir.string());
  if (config.ok()) {
    if (config->num_attention_heads <= 0 ||
        config->hidden_size % config->num_attention_heads != 0 || config->head_dim() <= 0) {
      Fail(absl::StrCat("hidden_size ", config->hidden_size, " with ", config->num_attention_heads,
                        " heads"));
    }
    if (config->max_seq_length < 2 || config->max_seq_length > config->max_position_embeddings) {
      Fail(absl::StrCat("max_seq_length ", config->max_seq_length));
    }
  }
  absl::StatusOr<std::shared_ptr<const ModelBundle>> bundle = LoadModel(dir.string());
  if (bundle.ok()) {
    (void)(*bundle)->weights_dtype();
    if (!(*bundle)->TensorFloat32("embeddings.word_embeddings.weight").ok()) {
      Fail("a loaded model without its word embeddings");
    }
  }
}

void CheckTokenizer(const fs::path& dir) {
  absl::StatusOr<Tokenizer> tok = Tokenizer::Load(dir.string());
  if (!tok.ok()) return;
  for (std::string_view text :
       {std::string_view("Hello, worlds! [MASK] caf\xc3\xa9 \xe4\xb8\xad x"),
        std::string_view("helloworldhello [UNK][CLS]")}) {
    Tokenizer::Encoding enc = tok->Encode(text, 0);
    for (int32_t id : enc.ids) {
      if (id < 0 || static_cast<size_t>(id) >= tok->vocab_size()) Fail(absl::StrCat("id ", id));
    }
    Tokenizer::Encoding cut = tok->Encode(text, 4);
    if (cut.ids.size() > 4) Fail("max_length 4 exceeded");
    (void)tok->IdsToTokens(enc.ids);
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  namespace t = tipperary::model::testing;
  const char* tmp = std::getenv("TMPDIR");
  std::string root =
      std::string(tmp != nullptr && *tmp ? tmp : "/tmp") + "/model-files-fuzz.XXXXXX";
  if (mkdtemp(root.data()) == nullptr) Fail("cannot make a scratch directory " + root);
  Dirs& d = Scratch();
  d.root = root;
  std::atexit(RemoveScratch);
  d.json = fs::path(root) / "json";
  d.txt = fs::path(root) / "txt";
  t::TinyConfig config;
  for (const fs::path& dir : {d.json, d.txt}) {
    t::WriteTinyModel(dir, config, t::TinyWeights(config));
  }
  const std::string vocab = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\nworld\n##s\n,\n!\ncafe\n";
  t::WriteFile(d.txt / "vocab.txt", vocab);
  t::WriteFile(d.txt / "special_tokens_map.json",
               R"({"unk_token":"[UNK]","sep_token":"[SEP]","pad_token":"[PAD]",)"
               R"("cls_token":"[CLS]","mask_token":"[MASK]"})");
  t::WriteFile(d.txt / "tokenizer_config.json", R"({"do_lower_case":true})");
  t::WriteFile(d.json / "tokenizer.json",
               R"({"added_tokens":[{"id":0,"content":"[PAD]","special":true},)"
               R"({"id":4,"content":"[MASK]","single_word":false,"lstrip":false}],)"
               R"("normalizer":{"type":"BertNormalizer","clean_text":true,)"
               R"("handle_chinese_chars":true,"strip_accents":null,"lowercase":true},)"
               R"("pre_tokenizer":{"type":"BertPreTokenizer"},)"
               R"("model":{"type":"WordPiece","unk_token":"[UNK]",)"
               R"("continuing_subword_prefix":"##","max_input_chars_per_word":100,)"
               R"("vocab":{"[PAD]":0,"[UNK]":1,"[CLS]":2,"[SEP]":3,"[MASK]":4,"hello":5,)"
               R"("world":6,"##s":7,",":8,"!":9,"cafe":10}}})");
  t::WriteFile(d.json / "tokenizer_config.json", R"({"do_lower_case":true})");
  for (const char* name : {"config.json", "modules.json", "1_Pooling/config.json",
                           "sentence_bert_config.json", "model.safetensors", "tokenizer.json",
                           "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"}) {
    const bool txt = std::string_view(name) == "vocab.txt" ||
                     std::string_view(name) == "special_tokens_map.json";
    d.originals[name] = ReadAll((txt ? d.txt : d.json) / name);
  }
  // The scratch model must load as it is, or every input would test an error path.
  if (!LoadModel(d.json.string()).ok() || !Tokenizer::Load(d.json.string()).ok() ||
      !Tokenizer::Load(d.txt.string()).ok()) {
    Fail("the scratch model does not load");
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t nl = input.find('\n');
  if (nl == std::string_view::npos) return 0;
  const std::string name(input.substr(0, nl));
  const std::string content(input.substr(nl + 1));
  Dirs& d = Scratch();
  auto original = d.originals.find(name);
  if (original == d.originals.end()) return 0;
  const bool txt = name == "vocab.txt" || name == "special_tokens_map.json";
  const fs::path dir = txt ? d.txt : d.json;
  const fs::path path = dir / name;

  if (name == "model.safetensors") CheckSafetensors(content);
  std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
  if (name.find("token") != std::string::npos || name == "vocab.txt") {
    CheckTokenizer(dir);
  } else {
    CheckModel(dir);
  }
  std::ofstream(path, std::ios::binary | std::ios::trunc) << original->second;
  return 0;
}
