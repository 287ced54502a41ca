// The tokenizer pieces TEI's API needs, against Hugging Face `tokenizers` (what TEI runs): the
// byte offsets /tokenize reports, left truncation (/embed's truncation_direction) and Decode
// (/decode). References: tests/fixtures/tei_tokens.jsonl and tei_decode.jsonl, made by
// tests/fixtures/generate_tei_references.py from the default model's tokenizer.json.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "tipperary/model/tokenizer.h"
#include "tokenizer_fixtures.h"

namespace tipperary::model {
namespace {

using testing::FixtureDir;
using testing::ModelDir;
using testing::ReadJsonLines;

std::vector<int32_t> Ints(const google::protobuf::Value& list) {
  std::vector<int32_t> out;
  for (const auto& v : list.list_value().values()) {
    // Ids past int32 (4294967295 in a fixture) are outside every vocabulary anyway.
    const double d = v.number_value();
    out.push_back(d > 2147483647.0 ? -1 : static_cast<int32_t>(d));
  }
  return out;
}

std::string Show(const std::vector<Tokenizer::Token>& tokens) {
  std::vector<std::string> parts;
  for (const Tokenizer::Token& t : tokens) {
    parts.push_back(absl::StrCat(t.id, t.special ? "*" : "", "[", t.start, ",", t.end, ")"));
  }
  return absl::StrJoin(parts, " ");
}

class TokenizerTeiTest : public ::testing::Test {
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

  static Tokenizer* tokenizer_;
};

Tokenizer* TokenizerTeiTest::tokenizer_ = nullptr;

TEST_F(TokenizerTeiTest, OffsetsSpecialMaskAndDecodeMatchHuggingFaceOnEveryFixture) {
  const auto corpus = ReadJsonLines(FixtureDir() / "corpus.jsonl");
  const auto refs = ReadJsonLines(FixtureDir() / "tei_tokens.jsonl");
  ASSERT_EQ(corpus.size(), refs.size());
  ASSERT_GE(refs.size(), 300u);
  int mismatches = 0;
  for (size_t i = 0; i < refs.size() && mismatches < 10; ++i) {
    const std::string& text = corpus[i].fields().at("text").string_value();
    const auto& ref = refs[i].fields();
    const std::vector<int32_t> flat = Ints(ref.at("tokens"));
    std::vector<bool> special(flat.size() / 3, false);
    for (int32_t k : Ints(ref.at("special"))) special[static_cast<size_t>(k)] = true;
    std::vector<Tokenizer::Token> want;
    std::vector<int32_t> ids;
    for (size_t k = 0; k + 2 < flat.size(); k += 3) {
      const bool s = special[k / 3];
      // HF reports (0, 0) for the template's tokens; they have no place in the text.
      want.push_back({.id = flat[k],
                      .start = s ? 0 : static_cast<size_t>(flat[k + 1]),
                      .end = s ? 0 : static_cast<size_t>(flat[k + 2]),
                      .special = s});
      ids.push_back(flat[k]);
    }
    const std::vector<Tokenizer::Token> got = tok().EncodeWithOffsets(text);
    bool same = got.size() == want.size();
    for (size_t k = 0; same && k < got.size(); ++k) {
      same = got[k].id == want[k].id && got[k].special == want[k].special &&
             got[k].start == want[k].start && got[k].end == want[k].end;
    }
    if (!same) {
      ++mismatches;
      ADD_FAILURE() << "text " << i << "\n  want " << Show(want) << "\n  got  " << Show(got);
    }
    // The untruncated ids are Encode's too.
    EXPECT_EQ(tok().Encode(text, 0).ids, ids) << "text " << i;

    EXPECT_EQ(tok().Decode(ids, true), ref.at("decoded").string_value()) << "text " << i;
    EXPECT_EQ(tok().Decode(ids, false), ref.at("decoded_special").string_value()) << "text " << i;

    if (ref.contains("left_ids")) {
      Tokenizer::Encoding left = tok().Encode(text, 256, true, Tokenizer::Truncation::kLeft);
      EXPECT_EQ(left.ids, Ints(ref.at("left_ids"))) << "text " << i;
      EXPECT_TRUE(left.truncated) << "text " << i;
      // The ids-only path cuts the same way.
      std::vector<int32_t> body(ids.begin() + 1, ids.end() - 1);
      EXPECT_EQ(tok().PostProcess(body, 256, true, Tokenizer::Truncation::kLeft).ids, left.ids);
    } else {
      EXPECT_EQ(tok().Encode(text, 256, true, Tokenizer::Truncation::kLeft).ids,
                tok().Encode(text, 256).ids)
          << "text " << i;
    }
  }
  EXPECT_EQ(mismatches, 0);
  // Some texts must have been long enough for left truncation to matter.
  int truncated = 0;
  for (const auto& r : refs) truncated += r.fields().contains("left_ids") ? 1 : 0;
  EXPECT_GE(truncated, 3);
}

TEST_F(TokenizerTeiTest, DecodeMatchesHuggingFaceOnCraftedAndRandomIds) {
  const auto cases = ReadJsonLines(FixtureDir() / "tei_decode.jsonl");
  ASSERT_GE(cases.size(), 300u);
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto& c = cases[i].fields();
    const std::vector<int32_t> ids = Ints(c.at("ids"));
    EXPECT_EQ(tok().Decode(ids, c.at("skip").bool_value()), c.at("text").string_value())
        << "case " << i << " ids " << absl::StrJoin(ids, ",");
  }
}

TEST_F(TokenizerTeiTest, DecodeRules) {
  auto id = [&](const char* token) { return tok().TokenToId(token); };
  // "##" joins; every other token after the first gets a space; cleanup removes the space
  // before punctuation; the template's [CLS]/[SEP] are skipped when asked.
  const std::vector<int32_t> ids = {tok().cls_id(), id("una"), id("##ffa"), id("##ble"),
                                    id(","),        id("ok"),  id("!"),     tok().sep_id()};
  EXPECT_EQ(tok().Decode(ids, true), "unaffable, ok!");
  EXPECT_EQ(tok().Decode(ids, false), "[CLS] unaffable, ok! [SEP]");
  // A continuation first keeps its "##" (nothing to join it to).
  EXPECT_EQ(tok().Decode(std::vector<int32_t>{id("##ble"), id("ok")}, true), "##ble ok");
  // Ids outside the vocabulary vanish, as in HF; nothing left is "".
  EXPECT_EQ(tok().Decode(std::vector<int32_t>{-1, 1 << 30}, true), "");
  EXPECT_EQ(tok().Decode(std::vector<int32_t>{}, false), "");
  EXPECT_TRUE(tok().IsSpecial(tok().cls_id()));
  EXPECT_TRUE(tok().IsSpecial(tok().unk_id()));
  EXPECT_FALSE(tok().IsSpecial(id("ok")));
  EXPECT_FALSE(tok().IsSpecial(-1));
}

TEST_F(TokenizerTeiTest, OffsetsAreBytesOfTheOriginalText) {
  // "café" is 5 bytes; "中" 3; the zero-width space inside "ab" is dropped but covered.
  const std::string text = "café 中x a\u200bb";
  std::vector<Tokenizer::Token> tokens = tok().EncodeWithOffsets(text, false);
  ASSERT_EQ(tokens.size(), 4u) << Show(tokens);
  EXPECT_EQ(text.substr(tokens[0].start, tokens[0].end - tokens[0].start), "café");
  EXPECT_EQ(text.substr(tokens[1].start, tokens[1].end - tokens[1].start), "中");
  EXPECT_EQ(text.substr(tokens[2].start, tokens[2].end - tokens[2].start), "x");
  EXPECT_EQ(text.substr(tokens[3].start, tokens[3].end - tokens[3].start), "a\u200bb");
  for (const Tokenizer::Token& t : tokens) EXPECT_FALSE(t.special);
  // An added token written in the text is a token of the text, not a template one.
  tokens = tok().EncodeWithOffsets("a [SEP] b");
  ASSERT_EQ(tokens.size(), 5u) << Show(tokens);
  EXPECT_TRUE(tokens.front().special);
  EXPECT_EQ(tokens[2].id, tok().sep_id());
  EXPECT_FALSE(tokens[2].special);
  EXPECT_EQ(tokens[2].start, 2u);
  EXPECT_EQ(tokens[2].end, 7u);
  EXPECT_TRUE(tokens.back().special);
}

TEST_F(TokenizerTeiTest, LeftTruncationKeepsTheEnd) {
  Tokenizer::Encoding right = tok().Encode("one two three four", 4);
  Tokenizer::Encoding left =
      tok().Encode("one two three four", 4, true, Tokenizer::Truncation::kLeft);
  EXPECT_EQ(right.ids, (std::vector<int32_t>{tok().cls_id(), tok().TokenToId("one"),
                                             tok().TokenToId("two"), tok().sep_id()}));
  EXPECT_EQ(left.ids, (std::vector<int32_t>{tok().cls_id(), tok().TokenToId("three"),
                                            tok().TokenToId("four"), tok().sep_id()}));
  EXPECT_TRUE(left.truncated);
  Tokenizer::Encoding fits = tok().Encode("one two", 4, true, Tokenizer::Truncation::kLeft);
  EXPECT_FALSE(fits.truncated);
  EXPECT_EQ(fits.ids.size(), 4u);
}

}  // namespace
}  // namespace tipperary::model
