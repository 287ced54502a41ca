#include "tipperary/model/model_card.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace tipperary::model {
namespace {

namespace fs = std::filesystem;

class ModelCardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("model_card_test_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
            "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  void WriteCard(const fs::path& dir, const std::string& text) {
    fs::create_directories(dir);
    std::ofstream(dir / "README.md") << text;
  }

  fs::path dir_;
};

TEST_F(ModelCardTest, SentenceTransformersModelCard) {
  WriteCard(dir_,
            "# all-MiniLM-L6-v2\n```python\nfrom sentence_transformers import "
            "SentenceTransformer\nmodel = SentenceTransformer('sentence-transformers/"
            "all-MiniLM-L6-v2')\n```\n");
  EXPECT_EQ(HuggingFaceId(dir_.string()), "sentence-transformers/all-MiniLM-L6-v2");
  // Newer cards use double quotes; the first call naming an ORG/NAME id wins.
  WriteCard(dir_,
            "SentenceTransformer(model_name)\nSentenceTransformer( \"BAAI/bge-small-en\")\n"
            "SentenceTransformer('other/model')\n");
  EXPECT_EQ(HuggingFaceId(dir_.string()), "BAAI/bge-small-en");
}

TEST_F(ModelCardTest, HuggingFaceCachePathWinsOverTheCard) {
  fs::path snapshot = dir_ / "hub" / "models--intfloat--e5-small-v2" / "snapshots" / "abc123";
  WriteCard(snapshot, "SentenceTransformer('someone/else')\n");
  EXPECT_EQ(HuggingFaceId(snapshot.string()), "intfloat/e5-small-v2");
}

TEST_F(ModelCardTest, NothingToSayIsNullopt) {
  EXPECT_EQ(HuggingFaceId(dir_.string()), std::nullopt);  // No card.
  WriteCard(dir_,
            "SentenceTransformer('no-slash')\nSentenceTransformer('a/b/c')\n"
            "SentenceTransformer('bad name/x')\nSentenceTransformer('unterminated/x\n");
  EXPECT_EQ(HuggingFaceId(dir_.string()), std::nullopt);
  EXPECT_EQ(HuggingFaceId((dir_ / "missing").string()), std::nullopt);
}

TEST(ModelCard, ShortNameAndIdShape) {
  EXPECT_EQ(ShortName("sentence-transformers/all-MiniLM-L6-v2"), "all-MiniLM-L6-v2");
  EXPECT_EQ(ShortName("plain"), "plain");
  EXPECT_TRUE(IsHuggingFaceId("BAAI/bge-small-en-v1.5"));
  EXPECT_FALSE(IsHuggingFaceId("no-slash"));
  EXPECT_FALSE(IsHuggingFaceId("../x"));
  EXPECT_FALSE(IsHuggingFaceId("a/"));
}

TEST(ModelCard, TheDefaultModelNamesItself) {
#ifdef TIPPERARY_MODEL_DIR
  if (std::string(TIPPERARY_MODEL_DIR).empty()) GTEST_SKIP() << "no model directory";
  EXPECT_EQ(HuggingFaceId(TIPPERARY_MODEL_DIR), "sentence-transformers/all-MiniLM-L6-v2");
#else
  GTEST_SKIP() << "no model directory";
#endif
}

}  // namespace
}  // namespace tipperary::model
