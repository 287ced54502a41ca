// BERT WordPiece tokenizer: text in, token ids out, exactly as Hugging Face `tokenizers`
// (BertNormalizer + BertPreTokenizer + WordPiece + [CLS]/[SEP] template) produces them, so the
// C++ worker feeds the model the same ids sentence-transformers would.
//
//   absl::StatusOr<Tokenizer> tok = Tokenizer::Load(model_dir);   // reads tokenizer.json or
//   vocab.txt Tokenizer::Encoding enc = tok->Encode("Hello, world!", /*max_length=*/256);
//   // enc.ids == {101, 7592, 1010, 2088, 999, 102}, enc.truncated == false
//
// Pipeline (per HF): special tokens written in the text ("[SEP]", ...) are matched first, on the
// raw text; the rest is cleaned (control/format/private-use chars, NUL and U+FFFD dropped,
// whitespace -> ' '), CJK ideographs get spaces around them, accents are stripped (NFD, drop Mn)
// and the text lowercased; it is split on whitespace and punctuation, and each word is split by
// greedy longest-match WordPiece ("##" continuations; words over 100 chars or with no match become
// [UNK]).
//
// Invalid UTF-8 never fails: each invalid byte sequence is dropped, which is what HF does with
// the U+FFFD a lossy decode would put there (BertNormalizer removes U+FFFD).
// Unicode tables come from utf8proc, so characters assigned after HF's tables (Rust
// unicode_categories) may be classified differently; the fixture test pins the common cases.
//
// Decode turns ids back into text as HF `tokenizers`' Tokenizer::decode does with BERT's WordPiece
// decoder (what TEI's /decode answers): unknown ids are dropped, special tokens optionally
// skipped, "##" continuations joined to the token before, every other token after the first
// preceded by a space, and each token cleaned up (" ." -> ".", " n't" -> "n't", ...; the
// decoder's `cleanup`). transformers' tokenizer.decode also applies clean_up_tokenization_spaces
// to the whole string, which can differ where a token is " '" (transformers joins "don ' t").
//
// Thread-safe after Load (Encode is const and keeps no state).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"

namespace tipperary::model {

class Tokenizer {
 public:
  struct Encoding {
    std::vector<int32_t> ids;
    bool truncated = false;     // the text had more tokens than max_length allowed
    size_t special_tokens = 0;  // of ids, those the template added ([CLS], [SEP])
  };

  // Which end of an over-long input truncation cuts: kRight keeps the first tokens (HF's
  // default), kLeft the last ones. Either way [CLS] and [SEP] stay.
  enum class Truncation { kRight, kLeft };

  // One token of EncodeWithOffsets: its id, where it came from in the text (byte offsets,
  // [start, end), as HF `tokenizers` reports them in Rust) and whether the template added it
  // ([CLS]/[SEP]: no offsets).
  struct Token {
    int32_t id = 0;
    size_t start = 0;
    size_t end = 0;
    bool special = false;
  };

  // Reads `model_dir`/tokenizer.json when present (vocab, normaliser flags, WordPiece settings,
  // added tokens), else `model_dir`/vocab.txt with tokenizer_config.json and
  // special_tokens_map.json when present. Errors name the file at fault.
  static absl::StatusOr<Tokenizer> Load(const std::string& model_dir);

  // max_length counts the special tokens: with add_special_tokens the result is
  // [CLS] + the first (kLeft: the last) max_length-2 tokens + [SEP]. max_length 0 means no
  // limit.
  Encoding Encode(std::string_view text, size_t max_length, bool add_special_tokens = true,
                  Truncation truncation = Truncation::kRight) const;

  // The post-processing step alone, for ids already tokenised (OpenAI-style token-id input):
  // the first (kLeft: last) max_length-2 of `ids` between [CLS] and [SEP] (with
  // add_special_tokens), truncated as Encode truncates a text. The ids are not checked against
  // the vocabulary.
  Encoding PostProcess(std::span<const int32_t> ids, size_t max_length,
                       bool add_special_tokens = true,
                       Truncation truncation = Truncation::kRight) const;

  // Every token of `text` (no truncation) with the bytes of `text` it stands for: the ids are
  // Encode's. A token's span runs from its first character's first byte to its last
  // character's last byte, so characters normalisation dropped inside it are covered (HF's
  // alignments); an added token written in the text ("[SEP]") is not `special` (only the
  // template's are, as in HF's special_tokens_mask).
  std::vector<Token> EncodeWithOffsets(std::string_view text, bool add_special_tokens = true) const;

  // The text of `ids`, as HF tokenizers decode it (above). skip_special_tokens drops the
  // special tokens ([CLS], [SEP], [PAD], [UNK], [MASK]; from tokenizer.json those marked
  // "special").
  std::string Decode(std::span<const int32_t> ids, bool skip_special_tokens) const;
  bool IsSpecial(int32_t id) const;

  // Unknown ids map to "[UNK]"'s text.
  std::vector<std::string> IdsToTokens(const std::vector<int32_t>& ids) const;

  // Vocabulary id of `token`, or -1.
  int32_t TokenToId(std::string_view token) const;

  int32_t cls_id() const { return cls_id_; }
  int32_t sep_id() const { return sep_id_; }
  int32_t pad_id() const { return pad_id_; }
  int32_t unk_id() const { return unk_id_; }
  size_t vocab_size() const { return id_to_token_.size(); }

  struct Options {
    bool clean_text = true;
    bool handle_chinese_chars = true;
    bool strip_accents = true;
    bool lowercase = true;
    std::string continuing_subword_prefix = "##";
    size_t max_input_chars_per_word = 100;
    // tokenizer.json's WordPiece decoder ("decoder": {"prefix", "cleanup"}); without one,
    // HF's defaults.
    // "decoder": null joins the tokens with spaces instead (HF without a decoder).
    bool wordpiece_decoder = true;
    std::string decoder_prefix = "##";
    bool decoder_cleanup = true;
  };
  const Options& options() const { return options_; }

 private:
  Tokenizer() = default;

  // Byte spans in the original text, one per id (EncodeWithOffsets).
  using Spans = std::vector<std::pair<size_t, size_t>>;

  // Appends the ids of text that holds no added tokens; may stop early once `out` holds more
  // than `limit` ids (the caller truncates anyway). With `spans`, also appends each id's bytes
  // in the whole text, of which `text` starts at byte `base`.
  void EncodeSegment(std::string_view text, size_t limit, std::vector<int32_t>& out,
                     Spans* spans = nullptr, size_t base = 0) const;
  // Appends the WordPiece ids of one normalised, pre-tokenised word: its UTF-8 and the byte
  // offset of each char plus the end offset. `piece` is scratch space. With `pieces`, appends
  // each id's [first char, end char) of the word.
  void EncodeWord(std::string_view utf8, const std::vector<size_t>& offsets, std::string& piece,
                  std::vector<int32_t>& out, Spans* pieces = nullptr) const;
  absl::Status Finish(const std::string& file);

  Options options_;
  absl::flat_hash_map<std::string, int32_t> vocab_;
  std::vector<std::string> id_to_token_;
  std::vector<std::string> added_tokens_;  // matched verbatim in raw text, before normalising
  std::vector<int32_t> added_token_ids_;
  std::vector<std::string> special_tokens_;   // texts, from Load; resolved to ids by Finish
  std::vector<bool> special_;                 // by id: Decode's skip_special_tokens drops it
  std::array<bool, 256> added_first_byte_{};  // skips most bytes without comparing
  std::string unk_token_ = "[UNK]";
  std::string cls_token_ = "[CLS]";
  std::string sep_token_ = "[SEP]";
  std::string pad_token_ = "[PAD]";
  int32_t cls_id_ = -1;
  int32_t sep_id_ = -1;
  int32_t pad_id_ = -1;
  int32_t unk_id_ = -1;
};

}  // namespace tipperary::model
