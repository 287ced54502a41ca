#include "tipperary/model/tokenizer.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "google/protobuf/struct.pb.h"
#include "tokenizer_fixtures.h"

namespace tipperary::model {
namespace {

namespace fs = std::filesystem;

using testing::FixtureDir;
using testing::ModelDir;
using testing::ReadJsonLines;

struct Fixture {
  std::string text;
  std::vector<int32_t> ids;
  bool truncated = false;
};

std::vector<Fixture> LoadFixtures() {
  std::vector<google::protobuf::Struct> corpus = ReadJsonLines(FixtureDir() / "corpus.jsonl");
  std::vector<google::protobuf::Struct> tokens = ReadJsonLines(FixtureDir() / "tokens.jsonl");
  EXPECT_EQ(corpus.size(), tokens.size());
  std::vector<Fixture> out(std::min(corpus.size(), tokens.size()));
  for (size_t i = 0; i < out.size(); ++i) {
    out[i].text = corpus[i].fields().at("text").string_value();
    for (const auto& v : tokens[i].fields().at("ids").list_value().values()) {
      out[i].ids.push_back(static_cast<int32_t>(v.number_value()));
    }
    out[i].truncated = tokens[i].fields().at("truncated").bool_value();
  }
  return out;
}

std::string Escaped(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7F) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  return out.size() > 300 ? out.substr(0, 300) + "..." : out;
}

class TokenizerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (ModelDir().empty()) return;
    absl::StatusOr<Tokenizer> tok = Tokenizer::Load(ModelDir());
    ASSERT_TRUE(tok.ok()) << tok.status();
    tokenizer_ = new Tokenizer(*std::move(tok));
  }
  static void TearDownTestSuite() {
    delete tokenizer_;
    tokenizer_ = nullptr;
  }
  void SetUp() override {
    if (ModelDir().empty()) GTEST_SKIP() << "TIPPERARY_MODEL_DIR not set";
    ASSERT_NE(tokenizer_, nullptr);
  }

  const Tokenizer& tok() const { return *tokenizer_; }
  std::vector<int32_t> Ids(std::string_view text, size_t max_length = 256) const {
    return tok().Encode(text, max_length).ids;
  }
  std::string Tokens(std::string_view text, size_t max_length = 256) const {
    return absl::StrJoin(tok().IdsToTokens(Ids(text, max_length)), " ");
  }

  static Tokenizer* tokenizer_;
};

Tokenizer* TokenizerTest::tokenizer_ = nullptr;

void ExpectMatchesFixtures(const Tokenizer& tok) {
  const std::vector<Fixture> fixtures = LoadFixtures();
  ASSERT_GE(fixtures.size(), 300u);
  int mismatches = 0;
  for (size_t i = 0; i < fixtures.size(); ++i) {
    const Fixture& f = fixtures[i];
    Tokenizer::Encoding enc = tok.Encode(f.text, 256);
    if (enc.ids != f.ids || enc.truncated != f.truncated) {
      ++mismatches;
      ADD_FAILURE() << "fixture " << i << " text: \"" << Escaped(f.text) << "\"\n  want "
                    << absl::StrJoin(tok.IdsToTokens(f.ids), " ") << " (truncated " << f.truncated
                    << ")\n  got  " << absl::StrJoin(tok.IdsToTokens(enc.ids), " ")
                    << " (truncated " << enc.truncated << ")";
    }
  }
  EXPECT_EQ(mismatches, 0) << "of " << fixtures.size();
}

TEST_F(TokenizerTest, MatchesHuggingFaceOnEveryFixture) { ExpectMatchesFixtures(tok()); }

TEST_F(TokenizerTest, VocabTxtWithoutTokenizerJsonGivesTheSameIds) {
  const fs::path dir = fs::path(::testing::TempDir()) / "tipperary_tokenizer_vocab_only";
  fs::remove_all(dir);
  fs::create_directories(dir);
  for (const char* name : {"vocab.txt", "tokenizer_config.json", "special_tokens_map.json"}) {
    fs::copy_file(fs::path(ModelDir()) / name, dir / name);
  }
  absl::StatusOr<Tokenizer> vocab_only = Tokenizer::Load(dir.string());
  ASSERT_TRUE(vocab_only.ok()) << vocab_only.status();
  EXPECT_EQ(vocab_only->vocab_size(), tok().vocab_size());
  ExpectMatchesFixtures(*vocab_only);
  fs::remove_all(dir);
}

TEST_F(TokenizerTest, SpecialIdsAndVocab) {
  EXPECT_EQ(tok().vocab_size(), 30522u);
  EXPECT_EQ(tok().pad_id(), 0);
  EXPECT_EQ(tok().unk_id(), 100);
  EXPECT_EQ(tok().cls_id(), 101);
  EXPECT_EQ(tok().sep_id(), 102);
  EXPECT_EQ(tok().TokenToId("hello"), 7592);
  EXPECT_EQ(tok().TokenToId("no-such-token"), -1);
  EXPECT_EQ(tok().IdsToTokens({101, 7592, -5, 999999}),
            (std::vector<std::string>{"[CLS]", "hello", "[UNK]", "[UNK]"}));
}

TEST_F(TokenizerTest, HelloWorld) {
  EXPECT_EQ(Ids("Hello, world!"), (std::vector<int32_t>{101, 7592, 1010, 2088, 999, 102}));
  EXPECT_EQ(Ids("HELLO   world!"), Ids("hello world !"));
}

TEST_F(TokenizerTest, PostProcessWrapsAndTruncatesIdsAsEncodeDoes) {
  const std::vector<int32_t> body = {7592, 1010, 2088, 999};
  Tokenizer::Encoding enc = tok().PostProcess(body, 256);
  EXPECT_EQ(enc.ids, Ids("Hello, world!"));
  EXPECT_FALSE(enc.truncated);
  EXPECT_EQ(enc.special_tokens, 2u);
  // max_length counts [CLS]/[SEP]: 4 leaves room for two ids, as it would for the text.
  enc = tok().PostProcess(body, 4);
  Tokenizer::Encoding text = tok().Encode("Hello, world!", 4);
  EXPECT_EQ(enc.ids, text.ids);
  EXPECT_EQ(enc.ids, (std::vector<int32_t>{101, 7592, 1010, 102}));
  EXPECT_TRUE(enc.truncated && text.truncated);
  EXPECT_EQ(text.special_tokens, 2u);
  enc = tok().PostProcess(body, 0, /*add_special_tokens=*/false);
  EXPECT_EQ(enc.ids, body);
  EXPECT_EQ(enc.special_tokens, 0u);
}

TEST_F(TokenizerTest, LowercasesAndStripsAccents) {
  EXPECT_EQ(Tokens("Café NAÏVE"), Tokens("cafe naive"));
  // Decomposed (e + combining acute) and precomposed forms agree.
  EXPECT_EQ(Ids("e\xcc\x81"
                "cole"),
            Ids("\xc3\xa9"
                "cole"));
  EXPECT_EQ(Ids("\xc3\x85ngstr\xc3\xb6m"), Ids("angstrom"));
}

TEST_F(TokenizerTest, SplitsCjkIdeographsIntoSingleCharacters) {
  EXPECT_EQ(Tokens("\xe4\xb8\xad\xe6\x96\x87"
                   "abc"),
            "[CLS] 中 文 abc [SEP]");
}

TEST_F(TokenizerTest, SplitsPunctuationIntoOwnTokens) {
  EXPECT_EQ(Tokens("a.b,c!d"), "[CLS] a . b , c ! d [SEP]");
  EXPECT_EQ(Tokens("$5+3=8"), "[CLS] $ 5 + 3 = 8 [SEP]");
  EXPECT_EQ(Tokens("it's"), "[CLS] it ' s [SEP]");
}

TEST_F(TokenizerTest, WordPieceContinuations) {
  EXPECT_EQ(Tokens("unaffable"), "[CLS] una ##ffa ##ble [SEP]");
}

TEST_F(TokenizerTest, UnknownWords) {
  // Over max_input_chars_per_word (100) characters: one [UNK], not pieces.
  EXPECT_EQ(Ids(std::string(101, 'a')), (std::vector<int32_t>{101, 100, 102}));
  EXPECT_NE(Ids(std::string(100, 'a')).size(), 3u);
  // A character the vocabulary lacks makes its whole word [UNK].
  EXPECT_EQ(Tokens("abc\xe2\x98\x83"
                   "def ok"),
            Tokens("[UNK] ok"));
}

TEST_F(TokenizerTest, SpecialTokensInTextAreMatchedVerbatim) {
  EXPECT_EQ(Ids("a [SEP] b"), (std::vector<int32_t>{101, 1037, 102, 1038, 102}));
  EXPECT_EQ(Tokens("x[MASK]y"), "[CLS] x [MASK] y [SEP]");
  // Lowercase forms are ordinary text.
  EXPECT_EQ(Tokens("[sep]"), "[CLS] [ sep ] [SEP]");
}

TEST_F(TokenizerTest, CleansControlAndWhitespaceCharacters) {
  EXPECT_EQ(Ids("a\tb\r\nc\xc2\xa0"
                "d"),
            Ids("a b c d"));
  // NUL, U+FFFD, zero-width space (Cf) and a control char vanish without splitting.
  EXPECT_EQ(Ids(std::string("ab\0cd", 5)), Ids("abcd"));
  EXPECT_EQ(Ids("ab\xef\xbf\xbd"
                "cd"),
            Ids("abcd"));
  EXPECT_EQ(Ids("ab\xe2\x80\x8b"
                "cd"),
            Ids("abcd"));
  EXPECT_EQ(Ids("ab\x01"
                "cd"),
            Ids("abcd"));
}

TEST_F(TokenizerTest, EmptyAndBlankText) {
  EXPECT_EQ(Ids(""), (std::vector<int32_t>{101, 102}));
  EXPECT_EQ(Ids(" \t\n "), (std::vector<int32_t>{101, 102}));
  EXPECT_TRUE(tok().Encode("", 256, /*add_special_tokens=*/false).ids.empty());
}

TEST_F(TokenizerTest, TruncationKeepsClsAndSep) {
  std::string text;
  for (int i = 0; i < 300; ++i) text += "word ";
  Tokenizer::Encoding enc = tok().Encode(text, 256);
  ASSERT_EQ(enc.ids.size(), 256u);
  EXPECT_TRUE(enc.truncated);
  EXPECT_EQ(enc.ids.front(), 101);
  EXPECT_EQ(enc.ids.back(), 102);
  EXPECT_EQ(enc.ids[254], tok().TokenToId("word"));

  enc = tok().Encode(text, 10);
  EXPECT_EQ(enc.ids.size(), 10u);
  EXPECT_TRUE(enc.truncated);

  // Exactly at the limit is not truncation.
  enc = tok().Encode("a b c", 5);
  EXPECT_EQ(enc.ids.size(), 5u);
  EXPECT_FALSE(enc.truncated);
  enc = tok().Encode("a b c d", 5);
  EXPECT_EQ(enc.ids, (std::vector<int32_t>{101, 1037, 1038, 1039, 102}));
  EXPECT_TRUE(enc.truncated);

  // 0 means no limit; without specials the whole budget is text.
  EXPECT_EQ(tok().Encode(text, 0).ids.size(), 302u);
  enc = tok().Encode(text, 7, /*add_special_tokens=*/false);
  EXPECT_EQ(enc.ids.size(), 7u);
  EXPECT_EQ(enc.ids.front(), tok().TokenToId("word"));

  // A limit below the two specials still gives a well-formed [CLS] [SEP].
  enc = tok().Encode("hello", 1);
  EXPECT_EQ(enc.ids, (std::vector<int32_t>{101, 102}));
  EXPECT_TRUE(enc.truncated);
}

TEST_F(TokenizerTest, InvalidUtf8IsDroppedNotFatal) {
  // Invalid bytes are dropped like the U+FFFD a lossy decode would give (clean_text removes it).
  EXPECT_EQ(Ids("ab\xff"
                "cd"),
            Ids("abcd"));
  EXPECT_EQ(Ids("caf\xc3"), Ids("caf"));  // truncated sequence
  EXPECT_EQ(Ids("a\xc0\xaf"
                "b"),
            Ids("ab"));  // overlong '/'
  EXPECT_EQ(Ids("a\xed\xa0\x80"
                "b"),
            Ids("ab"));  // UTF-16 surrogate
  EXPECT_EQ(Ids("a\xf4\x90\x80\x80"
                "b"),
            Ids("ab"));  // > U+10FFFF
  EXPECT_EQ(Ids("\xe4\xb8"
                "a"),
            Ids("a"));  // truncated, then ASCII survives

  std::mt19937 rng(12345);
  for (int round = 0; round < 2000; ++round) {
    std::string bytes(rng() % 64, '\0');
    for (char& c : bytes) c = static_cast<char>(rng() & 0xFF);
    const size_t max_length = 1 + rng() % 40;
    Tokenizer::Encoding enc = tok().Encode(bytes, max_length);
    ASSERT_GE(enc.ids.size(), 2u);
    ASSERT_LE(enc.ids.size(), std::max<size_t>(max_length, 2));
    for (int32_t id : enc.ids) {
      ASSERT_GE(id, 0);
      ASSERT_LT(static_cast<size_t>(id), tok().vocab_size());
    }
  }
}

TEST(TokenizerLoadTest, MissingDirectoryNamesThePath) {
  absl::StatusOr<Tokenizer> tok = Tokenizer::Load("/nonexistent/model-dir");
  ASSERT_FALSE(tok.ok());
  EXPECT_NE(tok.status().message().find("/nonexistent/model-dir"), absl::string_view::npos)
      << tok.status();
}

TEST(TokenizerLoadTest, BadTokenizerJsonNamesTheFile) {
  const fs::path dir = fs::path(::testing::TempDir()) / "tipperary_tokenizer_bad";
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::ofstream(dir / "tokenizer.json") << "{\"model\": {\"type\": \"BPE\", \"vocab\": {}}}";
  absl::StatusOr<Tokenizer> tok = Tokenizer::Load(dir.string());
  ASSERT_FALSE(tok.ok());
  EXPECT_EQ(tok.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(tok.status().message().find("tokenizer.json"), absl::string_view::npos) << tok.status();

  std::ofstream(dir / "tokenizer.json") << "{not json";
  tok = Tokenizer::Load(dir.string());
  ASSERT_FALSE(tok.ok());
  EXPECT_NE(tok.status().message().find("tokenizer.json"), absl::string_view::npos) << tok.status();

  // max_input_chars_per_word is a double in the file; a negative, fractional or huge one was
  // cast to size_t (undefined behaviour, found by tests/fuzz/model_files).
  for (const char* bad : {"-5", "1.5", "1e300"}) {
    std::ofstream(dir / "tokenizer.json")
        << R"({"model": {"type": "WordPiece", "max_input_chars_per_word": )" << bad
        << R"(, "vocab": {"[UNK]": 0, "[CLS]": 1, "[SEP]": 2, "[PAD]": 3}}})";
    tok = Tokenizer::Load(dir.string());
    ASSERT_FALSE(tok.ok()) << bad;
    EXPECT_NE(tok.status().message().find("max_input_chars_per_word"), absl::string_view::npos)
        << tok.status();
  }
  std::ofstream(dir / "tokenizer.json")
      << R"({"model": {"type": "WordPiece", "max_input_chars_per_word": 0,)"
      << R"( "vocab": {"[UNK]": 0, "[CLS]": 1, "[SEP]": 2, "[PAD]": 3}}})";
  tok = Tokenizer::Load(dir.string());
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ(tok->options().max_input_chars_per_word, 0u);

  fs::remove(dir / "tokenizer.json");
  std::ofstream(dir / "vocab.txt") << "hello\nworld\n";  // lacks [UNK], [CLS], ...
  tok = Tokenizer::Load(dir.string());
  ASSERT_FALSE(tok.ok());
  EXPECT_NE(tok.status().message().find("vocab.txt"), absl::string_view::npos) << tok.status();
  fs::remove_all(dir);
}

}  // namespace
}  // namespace tipperary::model
