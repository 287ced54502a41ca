#include "tipperary/model/tokenizer.h"

#include <utf8proc.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"

namespace tipperary::model {
namespace {

using google::protobuf::Struct;
using google::protobuf::Value;

absl::string_view AsAbsl(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// Decodes one code point at text[*pos], advancing *pos. Returns -1 for an invalid sequence
// (overlong, surrogate, out of range, truncated), consuming the bytes a lossy decoder would
// replace with one U+FFFD.
int32_t DecodeUtf8(std::string_view text, size_t* pos) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  size_t i = *pos;
  const unsigned char b0 = s[i];
  if (b0 < 0x80) {
    *pos = i + 1;
    return b0;
  }
  int len = 0;
  int32_t cp = 0;
  unsigned char lo = 0x80;
  unsigned char hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2;
    cp = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3;
    cp = b0 & 0x0F;
    if (b0 == 0xE0) lo = 0xA0;  // overlong
    if (b0 == 0xED) hi = 0x9F;  // surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4;
    cp = b0 & 0x07;
    if (b0 == 0xF0) lo = 0x90;  // overlong
    if (b0 == 0xF4) hi = 0x8F;  // > U+10FFFF
  } else {
    *pos = i + 1;
    return -1;
  }
  ++i;
  for (int k = 1; k < len; ++k, ++i) {
    if (i >= n) {
      *pos = i;
      return -1;
    }
    const unsigned char b = s[i];
    const unsigned char min = k == 1 ? lo : 0x80;
    const unsigned char max = k == 1 ? hi : 0xBF;
    if (b < min || b > max) {
      *pos = i;  // the offending byte starts the next sequence
      return -1;
    }
    cp = (cp << 6) | (b & 0x3F);
  }
  *pos = i;
  return cp;
}

void AppendUtf8(char32_t cp, std::string& out) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// Rust's char::is_whitespace (Unicode White_Space), which HF uses.
bool IsWhitespace(char32_t c) {
  switch (c) {
    case 0x09:
    case 0x0A:
    case 0x0B:
    case 0x0C:
    case 0x0D:
    case 0x20:
    case 0x85:
    case 0xA0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000:
      return true;
    default:
      return c >= 0x2000 && c <= 0x200A;
  }
}

// HF's is_control: categories Cc, Cf and Co (not Cn), but tab/newline/CR count as whitespace.
bool IsControl(char32_t c) {
  if (c == '\t' || c == '\n' || c == '\r') return false;
  if (c < 0x20 || c == 0x7F) return true;
  if (c < 0xA0) return c >= 0x80;
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CO:
      return true;
    default:
      return false;
  }
}

// The CJK ranges of HF's BertNormalizer (note 0x2B920, not BERT's 0x2B820).
bool IsChineseChar(char32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
         (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
         (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

// BertPreTokenizer: ASCII punctuation (which includes symbols like $ + < = > ^ ` | ~) or any
// Unicode P* category.
bool IsPunctuation(char32_t c) {
  if (c < 0x80) {
    return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) ||
           (c >= 123 && c <= 126);
  }
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
    case UTF8PROC_CATEGORY_PC:
    case UTF8PROC_CATEGORY_PD:
    case UTF8PROC_CATEGORY_PS:
    case UTF8PROC_CATEGORY_PE:
    case UTF8PROC_CATEGORY_PI:
    case UTF8PROC_CATEGORY_PF:
    case UTF8PROC_CATEGORY_PO:
      return true;
    default:
      return false;
  }
}

bool IsNonspacingMark(char32_t c) {
  return c >= 0x300 && utf8proc_category(static_cast<utf8proc_int32_t>(c)) == UTF8PROC_CATEGORY_MN;
}

absl::StatusOr<std::string> ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path.string(), ": cannot open"));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return absl::DataLossError(absl::StrCat(path.string(), ": read error"));
  return std::move(ss).str();
}

absl::StatusOr<Struct> ReadJson(const std::filesystem::path& path) {
  absl::StatusOr<std::string> text = ReadFile(path);
  if (!text.ok()) return text.status();
  Struct out;
  google::protobuf::util::JsonParseOptions opts;
  opts.ignore_unknown_fields = true;
  auto status = google::protobuf::util::JsonStringToMessage(*text, &out, opts);
  if (!status.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path.string(), ": invalid JSON: ", status.ToString()));
  }
  return out;
}

const Value* Field(const Struct& s, const std::string& key) {
  auto it = s.fields().find(key);
  return it == s.fields().end() ? nullptr : &it->second;
}

// A token setting is either "text" or an AddedToken object {"content": "text", ...}.
bool TokenText(const Value* v, std::string* out) {
  if (v == nullptr) return false;
  if (v->has_string_value()) {
    *out = v->string_value();
    return true;
  }
  if (v->has_struct_value()) {
    const Value* c = Field(v->struct_value(), "content");
    if (c != nullptr && c->has_string_value()) {
      *out = c->string_value();
      return true;
    }
  }
  return false;
}

bool BoolField(const Struct& s, const std::string& key, bool* out) {
  const Value* v = Field(s, key);
  if (v == nullptr || !v->has_bool_value()) return false;
  *out = v->bool_value();
  return true;
}

}  // namespace

absl::StatusOr<Tokenizer> Tokenizer::Load(const std::string& model_dir) {
  namespace fs = std::filesystem;
  const fs::path dir(model_dir);
  Tokenizer tok;
  std::vector<std::string> special_texts;  // matched in raw text when there is no tokenizer.json

  // tokenizer_config.json is what transformers' BertTokenizerFast (and so sentence-transformers)
  // honours over tokenizer.json's normaliser, so it wins when both exist.
  std::optional<bool> cfg_lower, cfg_strip, cfg_chinese;
  const fs::path config_path = dir / "tokenizer_config.json";
  if (fs::exists(config_path)) {
    absl::StatusOr<Struct> cfg = ReadJson(config_path);
    if (!cfg.ok()) return cfg.status();
    bool b;
    if (BoolField(*cfg, "do_lower_case", &b)) cfg_lower = b;
    if (BoolField(*cfg, "strip_accents", &b)) cfg_strip = b;
    if (BoolField(*cfg, "tokenize_chinese_chars", &b)) cfg_chinese = b;
    TokenText(Field(*cfg, "unk_token"), &tok.unk_token_);
    TokenText(Field(*cfg, "cls_token"), &tok.cls_token_);
    TokenText(Field(*cfg, "sep_token"), &tok.sep_token_);
    TokenText(Field(*cfg, "pad_token"), &tok.pad_token_);
    std::string mask;
    if (TokenText(Field(*cfg, "mask_token"), &mask)) special_texts.push_back(mask);
  }

  const fs::path json_path = dir / "tokenizer.json";
  std::string file;
  if (fs::exists(json_path)) {
    file = json_path.string();
    absl::StatusOr<Struct> root = ReadJson(json_path);
    if (!root.ok()) return root.status();
    const Value* model = Field(*root, "model");
    if (model == nullptr || !model->has_struct_value()) {
      return absl::InvalidArgumentError(absl::StrCat(file, ": no \"model\" object"));
    }
    const Struct& m = model->struct_value();
    const Value* type = Field(m, "type");
    if (type == nullptr || type->string_value() != "WordPiece") {
      return absl::InvalidArgumentError(absl::StrCat(
          file, ": model.type must be \"WordPiece\" (only BERT WordPiece is supported)"));
    }
    TokenText(Field(m, "unk_token"), &tok.unk_token_);
    TokenText(Field(m, "continuing_subword_prefix"), &tok.options_.continuing_subword_prefix);
    if (const Value* v = Field(m, "max_input_chars_per_word");
        v != nullptr && v->has_number_value()) {
      // A double from the file: converting a negative, fractional or huge one to size_t is
      // undefined behaviour, so only whole numbers in [0, 2^32] are taken.
      const double n = v->number_value();
      if (!(n >= 0 && n <= 4294967296.0) || n != std::floor(n)) {
        return absl::InvalidArgumentError(
            absl::StrCat(file, ": model.max_input_chars_per_word must be a whole number in [0, ",
                         "2^32], got ", n));
      }
      tok.options_.max_input_chars_per_word = static_cast<size_t>(n);
    }
    const Value* vocab = Field(m, "vocab");
    if (vocab == nullptr || !vocab->has_struct_value()) {
      return absl::InvalidArgumentError(absl::StrCat(file, ": no model.vocab object"));
    }
    const auto& entries = vocab->struct_value().fields();
    tok.id_to_token_.resize(entries.size());
    for (const auto& [token, id_value] : entries) {
      const double id = id_value.number_value();
      if (!id_value.has_number_value() || id < 0 || id >= static_cast<double>(entries.size()) ||
          id != static_cast<double>(static_cast<int32_t>(id))) {
        return absl::InvalidArgumentError(
            absl::StrCat(file, ": model.vocab id of \"", token, "\" is not in [0, vocab size)"));
      }
      tok.id_to_token_[static_cast<size_t>(id)] = token;
      tok.vocab_[token] = static_cast<int32_t>(id);
    }

    if (const Value* norm = Field(*root, "normalizer");
        norm != nullptr && norm->has_struct_value()) {
      const Struct& n = norm->struct_value();
      const Value* ntype = Field(n, "type");
      if (ntype == nullptr || ntype->string_value() != "BertNormalizer") {
        return absl::InvalidArgumentError(
            absl::StrCat(file, ": normalizer.type must be \"BertNormalizer\""));
      }
      BoolField(n, "clean_text", &tok.options_.clean_text);
      BoolField(n, "handle_chinese_chars", &tok.options_.handle_chinese_chars);
      BoolField(n, "lowercase", &tok.options_.lowercase);
      bool strip;
      tok.options_.strip_accents =
          BoolField(n, "strip_accents", &strip) ? strip : tok.options_.lowercase;
    }
    if (const Value* pre = Field(*root, "pre_tokenizer");
        pre != nullptr && pre->has_struct_value()) {
      const Value* ptype = Field(pre->struct_value(), "type");
      if (ptype == nullptr || ptype->string_value() != "BertPreTokenizer") {
        return absl::InvalidArgumentError(
            absl::StrCat(file, ": pre_tokenizer.type must be \"BertPreTokenizer\""));
      }
    }
    if (const Value* added = Field(*root, "added_tokens"); added != nullptr) {
      for (const Value& a : added->list_value().values()) {
        const Struct& s = a.struct_value();
        std::string content;
        if (!TokenText(Field(s, "content"), &content) || content.empty()) continue;
        bool flag = false;
        for (const char* key : {"single_word", "lstrip", "rstrip", "normalized"}) {
          bool b = false;
          if (BoolField(s, key, &b) && b) flag = true;
        }
        if (flag) {
          return absl::InvalidArgumentError(
              absl::StrCat(file, ": added token \"", content,
                           "\" uses single_word/lstrip/rstrip/normalized, which is not supported"));
        }
        tok.added_tokens_.push_back(content);
        bool special = false;
        if (BoolField(s, "special", &special) && special) tok.special_tokens_.push_back(content);
      }
    }
    if (const Value* decoder = Field(*root, "decoder"); decoder != nullptr) {
      if (decoder->has_null_value()) {
        tok.options_.wordpiece_decoder = false;
      } else {
        const Value* dtype =
            decoder->has_struct_value() ? Field(decoder->struct_value(), "type") : nullptr;
        if (dtype == nullptr || dtype->string_value() != "WordPiece") {
          return absl::InvalidArgumentError(
              absl::StrCat(file, ": decoder.type must be \"WordPiece\" (or the decoder null)"));
        }
        TokenText(Field(decoder->struct_value(), "prefix"), &tok.options_.decoder_prefix);
        BoolField(decoder->struct_value(), "cleanup", &tok.options_.decoder_cleanup);
      }
    }
    special_texts.clear();
  } else {
    const fs::path vocab_path = dir / "vocab.txt";
    file = vocab_path.string();
    absl::StatusOr<std::string> text = ReadFile(vocab_path);
    if (!text.ok()) {
      return absl::NotFoundError(
          absl::StrCat(model_dir, ": neither tokenizer.json nor vocab.txt can be read (",
                       text.status().message(), ")"));
    }
    std::string_view rest(*text);
    while (!rest.empty()) {
      size_t nl = rest.find('\n');
      std::string_view line = rest.substr(0, nl);
      rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      const auto id = static_cast<int32_t>(tok.id_to_token_.size());
      tok.id_to_token_.emplace_back(line);
      tok.vocab_[std::string(line)] = id;  // a repeated line takes the later id, as in HF
    }
    tok.options_.strip_accents = tok.options_.lowercase;
    const fs::path map_path = dir / "special_tokens_map.json";
    if (fs::exists(map_path)) {
      absl::StatusOr<Struct> map = ReadJson(map_path);
      if (!map.ok()) return map.status();
      TokenText(Field(*map, "unk_token"), &tok.unk_token_);
      TokenText(Field(*map, "cls_token"), &tok.cls_token_);
      TokenText(Field(*map, "sep_token"), &tok.sep_token_);
      TokenText(Field(*map, "pad_token"), &tok.pad_token_);
      std::string mask;
      if (TokenText(Field(*map, "mask_token"), &mask)) special_texts.push_back(mask);
    }
    for (const std::string* t :
         {&tok.unk_token_, &tok.cls_token_, &tok.sep_token_, &tok.pad_token_}) {
      special_texts.push_back(*t);
    }
    for (const std::string& t : special_texts) {
      if (!t.empty() && tok.vocab_.contains(t) &&
          std::find(tok.added_tokens_.begin(), tok.added_tokens_.end(), t) ==
              tok.added_tokens_.end()) {
        tok.added_tokens_.push_back(t);
        tok.special_tokens_.push_back(t);
      }
    }
  }

  if (cfg_lower) {
    tok.options_.lowercase = *cfg_lower;
    tok.options_.strip_accents = *cfg_lower;
  }
  if (cfg_strip) tok.options_.strip_accents = *cfg_strip;
  if (cfg_chinese) tok.options_.handle_chinese_chars = *cfg_chinese;

  if (absl::Status s = tok.Finish(file); !s.ok()) return s;
  return tok;
}

absl::Status Tokenizer::Finish(const std::string& file) {
  if (id_to_token_.empty())
    return absl::InvalidArgumentError(absl::StrCat(file, ": empty vocabulary"));
  struct Special {
    const std::string* text;
    int32_t* id;
  };
  for (auto [text, id] : {Special{&unk_token_, &unk_id_}, Special{&cls_token_, &cls_id_},
                          Special{&sep_token_, &sep_id_}, Special{&pad_token_, &pad_id_}}) {
    *id = TokenToId(*text);
    if (*id < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(file, ": special token \"", *text, "\" is not in the vocabulary"));
    }
  }
  // Longest first, so a scan that takes the first match finds the leftmost-longest one.
  std::sort(added_tokens_.begin(), added_tokens_.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  added_token_ids_.clear();
  added_first_byte_.fill(false);
  for (const std::string& t : added_tokens_) {
    added_first_byte_[static_cast<unsigned char>(t[0])] = true;
    const int32_t id = TokenToId(t);
    if (id < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(file, ": added token \"", t, "\" is not in the vocabulary"));
    }
    added_token_ids_.push_back(id);
  }
  special_.assign(id_to_token_.size(), false);
  for (const std::string& t : special_tokens_) {
    if (const int32_t id = TokenToId(t); id >= 0) special_[static_cast<size_t>(id)] = true;
  }
  return absl::OkStatus();
}

int32_t Tokenizer::TokenToId(std::string_view token) const {
  auto it = vocab_.find(AsAbsl(token));
  return it == vocab_.end() ? -1 : it->second;
}

std::vector<std::string> Tokenizer::IdsToTokens(const std::vector<int32_t>& ids) const {
  std::vector<std::string> out;
  out.reserve(ids.size());
  for (int32_t id : ids) {
    if (id >= 0 && static_cast<size_t>(id) < id_to_token_.size()) {
      out.push_back(id_to_token_[static_cast<size_t>(id)]);
    } else {
      out.push_back(unk_token_);
    }
  }
  return out;
}

Tokenizer::Encoding Tokenizer::Encode(std::string_view text, size_t max_length,
                                      bool add_special_tokens, Truncation truncation) const {
  const size_t specials = add_special_tokens ? 2 : 0;
  size_t budget = SIZE_MAX;
  // Cutting from the left needs every token; from the right, tokenising stops past the budget.
  if (max_length > 0 && truncation == Truncation::kRight) {
    budget = max_length > specials ? max_length - specials : 0;
  }
  std::vector<int32_t> body;

  // Added tokens split the raw text; the pieces between them are normalised and tokenised.
  size_t seg_start = 0;
  size_t i = 0;
  while (i < text.size() && body.size() <= budget) {
    if (!added_first_byte_[static_cast<unsigned char>(text[i])]) {
      ++i;
      continue;
    }
    size_t match = SIZE_MAX;
    for (size_t k = 0; k < added_tokens_.size(); ++k) {
      const std::string& t = added_tokens_[k];
      if (text.compare(i, t.size(), t) == 0) {
        match = k;
        break;
      }
    }
    if (match == SIZE_MAX) {
      ++i;
      continue;
    }
    EncodeSegment(text.substr(seg_start, i - seg_start), budget, body);
    body.push_back(added_token_ids_[match]);
    i += added_tokens_[match].size();
    seg_start = i;
  }
  if (body.size() <= budget && seg_start < text.size()) {
    EncodeSegment(text.substr(seg_start), budget, body);
  }
  return PostProcess(body, max_length, add_special_tokens, truncation);
}

std::vector<Tokenizer::Token> Tokenizer::EncodeWithOffsets(std::string_view text,
                                                           bool add_special_tokens) const {
  std::vector<int32_t> ids;
  Spans spans;
  size_t seg_start = 0;
  size_t i = 0;
  while (i < text.size()) {
    size_t match = SIZE_MAX;
    if (added_first_byte_[static_cast<unsigned char>(text[i])]) {
      for (size_t k = 0; k < added_tokens_.size(); ++k) {
        if (text.compare(i, added_tokens_[k].size(), added_tokens_[k]) == 0) {
          match = k;
          break;
        }
      }
    }
    if (match == SIZE_MAX) {
      ++i;
      continue;
    }
    EncodeSegment(text.substr(seg_start, i - seg_start), SIZE_MAX, ids, &spans, seg_start);
    ids.push_back(added_token_ids_[match]);
    spans.emplace_back(i, i + added_tokens_[match].size());
    i += added_tokens_[match].size();
    seg_start = i;
  }
  if (seg_start < text.size()) {
    EncodeSegment(text.substr(seg_start), SIZE_MAX, ids, &spans, seg_start);
  }
  std::vector<Token> out;
  out.reserve(ids.size() + 2);
  if (add_special_tokens) out.push_back({.id = cls_id_, .special = true});
  for (size_t k = 0; k < ids.size(); ++k) {
    out.push_back({.id = ids[k], .start = spans[k].first, .end = spans[k].second});
  }
  if (add_special_tokens) out.push_back({.id = sep_id_, .special = true});
  return out;
}

Tokenizer::Encoding Tokenizer::PostProcess(std::span<const int32_t> ids, size_t max_length,
                                           bool add_special_tokens, Truncation truncation) const {
  Encoding enc;
  const size_t specials = add_special_tokens ? 2 : 0;
  size_t budget = ids.size();
  if (max_length > 0) budget = std::min(budget, max_length > specials ? max_length - specials : 0);
  enc.truncated = budget < ids.size();
  const std::span<const int32_t> kept =
      truncation == Truncation::kLeft ? ids.subspan(ids.size() - budget) : ids.first(budget);
  enc.ids.reserve(budget + specials);
  if (add_special_tokens) enc.ids.push_back(cls_id_);
  enc.ids.insert(enc.ids.end(), kept.begin(), kept.end());
  if (add_special_tokens) enc.ids.push_back(sep_id_);
  enc.special_tokens = specials;
  return enc;
}

void Tokenizer::EncodeSegment(std::string_view text, size_t limit, std::vector<int32_t>& out,
                              Spans* spans, size_t base) const {
  // The current word in UTF-8 with the byte offset of each char; reused across words. With
  // `spans`, also each char's source bytes in `text` (a char normalisation made from another
  // stands for all of that one's bytes).
  std::string word;
  std::vector<size_t> offsets;
  std::string scratch;
  Spans sources;
  Spans pieces;
  size_t source_begin = 0;  // Bytes of the input char being normalised.
  size_t source_end = 0;
  auto flush = [&] {
    if (!word.empty()) {
      offsets.push_back(word.size());
      if (spans == nullptr) {
        EncodeWord(word, offsets, scratch, out);
      } else {
        pieces.clear();
        EncodeWord(word, offsets, scratch, out, &pieces);
        for (const auto& [first, end] : pieces) {
          spans->emplace_back(base + sources[first].first, base + sources[end - 1].second);
        }
        sources.clear();
      }
      word.clear();
      offsets.clear();
    }
  };
  auto push = [&](char32_t c) {
    offsets.push_back(word.size());
    AppendUtf8(c, word);
    if (spans != nullptr) sources.emplace_back(source_begin, source_end);
  };
  // Normalised code points go straight into the pre-tokenizer: whitespace ends a word and
  // punctuation is a word of its own.
  auto emit = [&](char32_t c) {
    if (IsWhitespace(c)) {
      flush();
    } else if (IsPunctuation(c)) {
      flush();
      push(c);
      flush();
    } else {
      push(c);
    }
  };
  // Every step of BertNormalizer maps one code point to a sequence without looking at its
  // neighbours, so the text can be normalised one code point at a time.
  auto accent_and_case = [&](char32_t c) {
    utf8proc_int32_t decomposed[16];
    utf8proc_ssize_t n = 1;
    decomposed[0] = static_cast<utf8proc_int32_t>(c);
    if (options_.strip_accents && c >= 0xC0) {
      int boundclass = UTF8PROC_BOUNDCLASS_START;
      n = utf8proc_decompose_char(static_cast<utf8proc_int32_t>(c), decomposed, 16,
                                  UTF8PROC_DECOMPOSE, &boundclass);
      if (n < 0 || n > 16) {
        n = 1;
        decomposed[0] = static_cast<utf8proc_int32_t>(c);
      }
    }
    for (utf8proc_ssize_t k = 0; k < n; ++k) {
      auto d = static_cast<char32_t>(decomposed[k]);
      if (options_.strip_accents && IsNonspacingMark(d)) continue;
      if (options_.lowercase) {
        if (d == 0x130) {  // the one unconditional multi-char lowercase mapping
          emit(U'i');
          emit(0x307);
          continue;
        }
        d = d < 0x80 ? static_cast<char32_t>((d >= 'A' && d <= 'Z') ? d + 32 : d)
                     : static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(d)));
      }
      emit(d);
    }
  };

  size_t pos = 0;
  while (pos < text.size() && out.size() <= limit) {
    source_begin = pos;
    const int32_t decoded = DecodeUtf8(text, &pos);
    source_end = pos;
    if (decoded < 0) continue;  // HF would see U+FFFD here, which clean_text removes
    auto c = static_cast<char32_t>(decoded);
    if (options_.clean_text) {
      if (c == 0 || c == 0xFFFD || IsControl(c)) continue;
      if (IsWhitespace(c)) c = U' ';
    }
    if (options_.handle_chinese_chars && IsChineseChar(c)) {
      emit(U' ');
      accent_and_case(c);
      emit(U' ');
    } else {
      accent_and_case(c);
    }
  }
  flush();
}

void Tokenizer::EncodeWord(std::string_view utf8, const std::vector<size_t>& offsets,
                           std::string& piece, std::vector<int32_t>& out, Spans* pieces) const {
  const size_t chars = offsets.size() - 1;
  if (chars > options_.max_input_chars_per_word) {
    out.push_back(unk_id_);
    if (pieces != nullptr) pieces->emplace_back(0, chars);
    return;
  }
  const size_t first = out.size();
  const size_t first_piece = pieces != nullptr ? pieces->size() : 0;
  const std::string& prefix = options_.continuing_subword_prefix;
  size_t start = 0;
  while (start < chars) {
    size_t end = chars;
    int32_t id = -1;
    while (start < end) {
      const std::string_view sub = utf8.substr(offsets[start], offsets[end] - offsets[start]);
      if (start == 0) {
        id = TokenToId(sub);
      } else {
        piece.assign(prefix);
        piece.append(sub);
        id = TokenToId(piece);
      }
      if (id >= 0) break;
      --end;
    }
    if (id < 0) {
      out.resize(first);
      out.push_back(unk_id_);
      if (pieces != nullptr) {
        pieces->resize(first_piece);
        pieces->emplace_back(0, chars);
      }
      return;
    }
    out.push_back(id);
    if (pieces != nullptr) pieces->emplace_back(start, end);
    start = end;
  }
}

bool Tokenizer::IsSpecial(int32_t id) const {
  return id >= 0 && static_cast<size_t>(id) < special_.size() && special_[static_cast<size_t>(id)];
}

namespace {

// HF's WordPiece decoder cleanup, on one token (with the space the decoder put before it).
std::string CleanUp(std::string token) {
  static constexpr std::pair<std::string_view, std::string_view> kReplacements[] = {
      {" .", "."},   {" ?", "?"},     {" !", "!"},    {" ,", ","},
      {" ' ", "'"},  {" n't", "n't"}, {" 'm", "'m"},  {" do not", " don't"},
      {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  for (const auto& [from, to] : kReplacements) {
    if (token.find(from) == std::string::npos) continue;
    std::string replaced;
    size_t at = 0;
    for (size_t hit; (hit = token.find(from, at)) != std::string::npos; at = hit + from.size()) {
      replaced.append(token, at, hit - at);
      replaced.append(to);
    }
    replaced.append(token, at);
    token = std::move(replaced);
  }
  return token;
}

}  // namespace

std::string Tokenizer::Decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  std::string out;
  bool first = true;
  for (int32_t id : ids) {
    // Ids the vocabulary does not have are dropped, as HF's id_to_token filter drops them.
    if (id < 0 || static_cast<size_t>(id) >= id_to_token_.size()) continue;
    if (skip_special_tokens && special_[static_cast<size_t>(id)]) continue;
    const std::string& token = id_to_token_[static_cast<size_t>(id)];
    if (!options_.wordpiece_decoder) {
      if (!first) out.push_back(' ');
      out.append(token);
      first = false;
      continue;
    }
    std::string piece;
    const std::string& prefix = options_.decoder_prefix;
    if (first) {
      piece = token;
    } else if (token.compare(0, prefix.size(), prefix) == 0) {
      piece = token.substr(prefix.size());
    } else {
      piece = " " + token;
    }
    first = false;
    out.append(options_.decoder_cleanup ? CleanUp(std::move(piece)) : piece);
  }
  return out;
}

}  // namespace tipperary::model
