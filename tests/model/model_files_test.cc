// Safetensors parsing, model config and bundle loading: hostile or inconsistent files must give
// errors that name the file, never crashes.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tiny_model.h"
#include "tipperary/model/model_bundle.h"
#include "tipperary/model/model_config.h"
#include "tipperary/model/safetensors.h"

namespace tipperary::model {
namespace {

using testing::F32Tensor;
using ::testing::HasSubstr;
using testing::SafetensorsBytes;
using testing::WithHeader;

class TempDir {
 public:
  TempDir() {
    path_ = std::filesystem::temp_directory_path() /
            absl::StrCat("tipperary_model_test_", ::getpid(), "_", counter_++);
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::filesystem::path& path() const { return path_; }

 private:
  static inline int counter_ = 0;
  std::filesystem::path path_;
};

absl::Status ParseError(const std::string& bytes) {
  return SafetensorsFile::FromBuffer(bytes, "test.safetensors").status();
}

TEST(SafetensorsTest, ParsesTensorsAndMetadata) {
  std::map<std::string, testing::RawTensor> tensors;
  tensors["a"] = F32Tensor({2, 3}, {1, 2, 3, 4, 5, 6});
  testing::RawTensor half;
  half.dtype = "F16";
  half.shape = {3};
  const uint16_t h[] = {0x3c00, 0xc000, 0x0001};  // 1, -2, smallest subnormal
  half.bytes.assign(reinterpret_cast<const char*>(h), sizeof h);
  tensors["h"] = half;
  testing::RawTensor bf;
  bf.dtype = "BF16";
  bf.shape = {2};
  const uint16_t b[] = {0x3f80, 0x4049};  // 1, 3.140625
  bf.bytes.assign(reinterpret_cast<const char*>(b), sizeof b);
  tensors["b"] = bf;
  testing::RawTensor empty;
  empty.shape = {0, 5};
  tensors["empty"] = empty;

  auto file = SafetensorsFile::FromBuffer(SafetensorsBytes(tensors), "t");
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->metadata().at("format"), "pt");
  EXPECT_EQ((*file)->tensors().size(), 4u);
  EXPECT_EQ((*file)->Find("a")->ShapeString(), "[2, 3]");
  EXPECT_EQ((*file)->Find("missing"), nullptr);
  EXPECT_THAT(*(*file)->ReadFloat32("a", {2, 3}), ::testing::ElementsAre(1, 2, 3, 4, 5, 6));
  EXPECT_THAT(*(*file)->ReadFloat32("h"),
              ::testing::ElementsAre(1.0f, -2.0f, std::ldexp(1.0f, -24)));
  EXPECT_THAT(*(*file)->ReadFloat32("b"), ::testing::ElementsAre(1.0f, 3.140625f));
  EXPECT_TRUE((*file)->ReadFloat32("empty")->empty());
  EXPECT_THAT((*file)->ReadFloat32("a", {3, 2}).status().message(), HasSubstr("shape [2, 3]"));
  EXPECT_EQ((*file)->ReadFloat32("nope").status().code(), absl::StatusCode::kNotFound);
}

// Resident KiB of this process's mappings of `path` (/proc/self/smaps).
int64_t ResidentKib(const std::string& path) {
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  bool ours = false;
  int64_t kib = 0;
  while (std::getline(smaps, line)) {
    // A mapping's line starts with its address range ("7f12...-7f34... r--p ..."); its
    // fields' lines with a name and a colon ("Rss:  4 kB").
    const std::string first = line.substr(0, line.find(' '));
    if (first.find('-') != std::string::npos && first.back() != ':') {
      ours = line.size() >= path.size() &&
             line.compare(line.size() - path.size(), path.size(), path) == 0;
    } else if (ours && line.rfind("Rss:", 0) == 0) {
      kib += std::stoll(line.substr(4));
    }
  }
  return kib;
}

TEST(SafetensorsTest, ReleasePagesDropsResidencyAndKeepsTheData) {
  // 4 MiB of floats: read whole, the mapping is resident; released, it is not, and reading
  // again gives the same values (the pages come back from the page cache).
  TempDir dir;
  std::vector<float> values(1 << 20);
  for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>(i % 1000) * 0.5f;
  const std::string path = (dir.path() / "w.safetensors").string();
  std::map<std::string, testing::RawTensor> tensors;
  tensors["w"] = F32Tensor({static_cast<int64_t>(values.size())}, values);
  testing::WriteFile(path, SafetensorsBytes(tensors));
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  ASSERT_EQ(*(*file)->ReadFloat32("w"), values);
  EXPECT_GE(ResidentKib(path), 4000);
  (*file)->ReleasePages();
  EXPECT_EQ(ResidentKib(path), 0);
  EXPECT_EQ(*(*file)->ReadFloat32("w"), values);
  // A buffer has nothing to release.
  auto buffer = SafetensorsFile::FromBuffer(SafetensorsBytes(tensors), "t");
  ASSERT_TRUE(buffer.ok());
  (*buffer)->ReleasePages();
  EXPECT_EQ(*(*buffer)->ReadFloat32("w"), values);
}

TEST(SafetensorsTest, HalfConversionCoversSpecials) {
  EXPECT_EQ(HalfToFloat(0x7bff), 65504.0f);
  EXPECT_TRUE(std::isinf(HalfToFloat(0x7c00)));
  EXPECT_TRUE(std::isnan(HalfToFloat(0x7e00)));
  EXPECT_EQ(HalfToFloat(0x8000), -0.0f);
  EXPECT_EQ(HalfToFloat(0x0400), std::ldexp(1.0f, -14));
}

TEST(SafetensorsTest, RejectsTruncatedFiles) {
  EXPECT_THAT(ParseError("").message(), HasSubstr("truncated"));
  EXPECT_THAT(ParseError("\x10\0\0").message(), HasSubstr("truncated"));
  std::string full = SafetensorsBytes({{"a", F32Tensor({4}, {1, 2, 3, 4})}});
  // Header length promises more than the file holds.
  EXPECT_THAT(ParseError(full.substr(0, 12)).message(), HasSubstr("truncated"));
  // Data cut short: the tensor's offsets run past the end.
  EXPECT_THAT(ParseError(full.substr(0, full.size() - 4)).message(), HasSubstr("beyond the data"));
  std::string huge(8, '\xff');
  EXPECT_THAT(ParseError(huge).message(), HasSubstr("exceeds"));
}

TEST(SafetensorsTest, RejectsBadHeaderJson) {
  EXPECT_THAT(ParseError(WithHeader("{not json", "")).message(), HasSubstr("invalid JSON"));
  EXPECT_THAT(ParseError(WithHeader("[1,2]", "")).message(), HasSubstr("JSON object"));
  EXPECT_THAT(ParseError(WithHeader(R"({"a": 3})", "")).message(), HasSubstr("must be an object"));
  EXPECT_THAT(ParseError(WithHeader(R"({"a": {"dtype": "F32", "shape": [1]}})", "")).message(),
              HasSubstr("data_offsets"));
  EXPECT_THAT(
      ParseError(WithHeader(R"({"a": {"dtype": "F32", "shape": "x", "data_offsets": [0, 4]}})",
                            std::string(4, '\0')))
          .message(),
      HasSubstr("shape must be an array"));
  EXPECT_THAT(
      ParseError(WithHeader(R"({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})",
                            std::string(4, '\0')))
          .message(),
      HasSubstr("non-negative integer"));
  EXPECT_THAT(
      ParseError(WithHeader(R"({"a": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 4]}})",
                            std::string(4, '\0')))
          .message(),
      HasSubstr("non-negative integer"));
  EXPECT_THAT(ParseError(WithHeader(R"({"__metadata__": {"k": 1}})", "")).message(),
              HasSubstr("__metadata__.k"));
  // Nesting bombs and garbage bytes must not crash.
  EXPECT_FALSE(ParseError(WithHeader(std::string(100000, '['), "")).ok());
  EXPECT_FALSE(ParseError(WithHeader(std::string("{\"a\":\xff\xfe}"), "")).ok());
}

TEST(SafetensorsTest, RejectsOffsetsOutOfRange) {
  const std::string data(16, '\0');
  auto with = [&](const std::string& entry) {
    return std::string(
        ParseError(WithHeader(absl::StrCat(R"({"a": )", entry, "}"), data)).message());
  };
  EXPECT_THAT(std::string(with(R"({"dtype": "F32", "shape": [4], "data_offsets": [4, 20]})")),
              HasSubstr("beyond the data"));
  EXPECT_THAT(std::string(with(R"({"dtype": "F32", "shape": [1], "data_offsets": [8, 4]})")),
              HasSubstr("begin 8 > end 4"));
  EXPECT_THAT(std::string(with(R"({"dtype": "F32", "shape": [2], "data_offsets": [0, 12]})")),
              HasSubstr("needs 8"));
  EXPECT_THAT(std::string(with(R"({"dtype": "F32", "shape": [1], "data_offsets": [0, 1e300]})")),
              HasSubstr("below 2^53"));
  EXPECT_THAT(
      std::string(
          with(R"({"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 0]})")),
      HasSubstr("overflows"));
  EXPECT_THAT(std::string(with(R"({"dtype": "F32", "shape": [1], "data_offsets": [0]})")),
              HasSubstr("[begin, end]"));
}

TEST(SafetensorsTest, RejectsUnknownAndWrongDtypes) {
  EXPECT_THAT(
      ParseError(WithHeader(R"({"a": {"dtype": "F8_E9", "shape": [1], "data_offsets": [0, 1]}})",
                            std::string(1, '\0')))
          .message(),
      HasSubstr("unknown dtype 'F8_E9'"));
  testing::RawTensor ints;
  ints.dtype = "I64";
  ints.shape = {2};
  ints.bytes = std::string(16, '\0');
  auto file = SafetensorsFile::FromBuffer(SafetensorsBytes({{"ids", ints}}), "t");
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_THAT((*file)->ReadFloat32("ids").status().message(), HasSubstr("dtype I64"));
}

TEST(SafetensorsTest, OpenMapsFilesAndNamesMissingOnes) {
  TempDir dir;
  testing::WriteFile(dir.path() / "w.safetensors",
                     SafetensorsBytes({{"a", F32Tensor({2}, {0.5f, -1})}}));
  auto file = SafetensorsFile::Open((dir.path() / "w.safetensors").string());
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_THAT(*(*file)->ReadFloat32("a"), ::testing::ElementsAre(0.5f, -1.0f));
  auto missing = SafetensorsFile::Open((dir.path() / "nope.safetensors").string());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("nope.safetensors"));
}

TEST(ModelConfigTest, ReadsTheTinyModel) {
  TempDir dir;
  testing::TinyConfig c;
  c.cls = true;
  testing::WriteTinyModel(dir.path(), c, testing::TinyWeights(c));
  auto config = LoadModelConfig(dir.path().string());
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->hidden_size, 8);
  EXPECT_EQ(config->num_attention_heads, 2);
  EXPECT_EQ(config->head_dim(), 4);
  EXPECT_EQ(config->max_seq_length, 20);
  EXPECT_EQ(config->pooling, PoolingMode::kCls);
  EXPECT_TRUE(config->normalize);
  EXPECT_FALSE(config->prompts.has_value());
}

TEST(ModelConfigTest, ReadsSentenceTransformersPrompts) {
  TempDir dir;
  testing::TinyConfig c;
  testing::WriteTinyModel(dir.path(), c, testing::TinyWeights(c));
  const auto root = dir.path();
  // The file without prompts (what all-MiniLM-L6-v2 ships) is no prompts at all.
  testing::WriteFile(root / "config_sentence_transformers.json",
                     R"({"__version__": {"sentence_transformers": "2.0.0"}})");
  EXPECT_FALSE(LoadModelConfig(root.string())->prompts.has_value());
  testing::WriteFile(root / "config_sentence_transformers.json",
                     R"({"prompts": {}, "default_prompt_name": null})");
  ASSERT_TRUE(LoadModelConfig(root.string())->prompts.has_value());
  EXPECT_TRUE(LoadModelConfig(root.string())->prompts->empty());
  testing::WriteFile(root / "config_sentence_transformers.json",
                     R"({"prompts": {"query": "query: ", "passage": "passage: "}})");
  auto config = LoadModelConfig(root.string());
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(*config->prompts,
            (std::map<std::string, std::string>{{"passage", "passage: "}, {"query", "query: "}}));
  testing::WriteFile(root / "config_sentence_transformers.json", R"({"prompts": {"q": 1}})");
  EXPECT_THAT(std::string(LoadModelConfig(root.string()).status().message()),
              HasSubstr("config_sentence_transformers.json: prompt \"q\" must be a string"));
  testing::WriteFile(root / "config_sentence_transformers.json", R"({"prompts": ["q"]})");
  EXPECT_THAT(std::string(LoadModelConfig(root.string()).status().message()),
              HasSubstr("config_sentence_transformers.json: \"prompts\" must be an object"));
}

TEST(ModelConfigTest, ErrorsNameTheFile) {
  TempDir dir;
  testing::TinyConfig c;
  testing::WriteTinyModel(dir.path(), c, testing::TinyWeights(c));
  const auto root = dir.path();
  auto error = [&] { return std::string(LoadModelConfig(root.string()).status().message()); };

  testing::WriteFile(root / "1_Pooling" / "config.json",
                     R"({"pooling_mode_mean_tokens": true, "pooling_mode_max_tokens": true})");
  EXPECT_THAT(error(), HasSubstr("1_Pooling/config.json"));
  testing::WriteFile(root / "1_Pooling" / "config.json", R"({"pooling_mode_mean_tokens": "yes"})");
  EXPECT_THAT(error(), HasSubstr("must be a boolean"));
  testing::WriteFile(root / "1_Pooling" / "config.json", R"({"pooling_mode_mean_tokens": true})");
  ASSERT_TRUE(LoadModelConfig(root.string()).ok());

  testing::WriteFile(root / "sentence_bert_config.json", R"({"max_seq_length": 1000})");
  EXPECT_THAT(error(), HasSubstr("sentence_bert_config.json: max_seq_length 1000 exceeds"));
  std::filesystem::remove(root / "sentence_bert_config.json");
  EXPECT_EQ(LoadModelConfig(root.string())->max_seq_length, 24);

  testing::WriteFile(root / "modules.json", R"({"not": "an array"})");
  EXPECT_THAT(error(), HasSubstr("modules.json: expected a JSON array"));
  std::filesystem::remove(root / "modules.json");
  EXPECT_FALSE(LoadModelConfig(root.string())->normalize);

  testing::WriteFile(root / "config.json", R"({"hidden_size": 8})");
  EXPECT_THAT(error(), HasSubstr("config.json: missing \"num_hidden_layers\""));
  testing::WriteFile(root / "config.json",
                     R"({"hidden_size": 10, "num_hidden_layers": 1, "num_attention_heads": 3,
                         "intermediate_size": 4, "vocab_size": 5, "max_position_embeddings": 8})");
  EXPECT_THAT(error(), HasSubstr("not a multiple"));
  testing::WriteFile(root / "config.json",
                     R"({"hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2,
                         "intermediate_size": 4, "vocab_size": 5, "max_position_embeddings": 8,
                         "hidden_act": "relu"})");
  EXPECT_THAT(error(), HasSubstr("hidden_act \"relu\" is not supported"));
  testing::WriteFile(root / "config.json", "{\"hidden_size\": 8,");
  EXPECT_THAT(error(), HasSubstr("config.json: invalid JSON"));
  std::filesystem::remove(root / "config.json");
  EXPECT_THAT(error(), HasSubstr("config.json: cannot open"));
}

TEST(ModelBundleTest, LoadsWithOrWithoutBertPrefix) {
  for (const std::string prefix : {"", "bert."}) {
    TempDir dir;
    testing::TinyConfig c;
    testing::WriteTinyModel(dir.path(), c, testing::TinyWeights(c), prefix);
    auto bundle = LoadModel(dir.path().string());
    ASSERT_TRUE(bundle.ok()) << bundle.status();
    EXPECT_NE((*bundle)->Tensor("encoder.layer.1.output.dense.weight"), nullptr);
    EXPECT_EQ((*bundle)->weights_dtype(), "float32");
    EXPECT_EQ((*bundle)->TensorFloat32("embeddings.LayerNorm.bias")->size(), 8u);
  }
}

TEST(ModelBundleTest, RejectsMissingOrMisshapenTensors) {
  TempDir dir;
  testing::TinyConfig c;
  testing::Weights w = testing::TinyWeights(c);
  w.erase("encoder.layer.1.output.dense.bias");
  testing::WriteTinyModel(dir.path(), c, w);
  EXPECT_THAT(LoadModel(dir.path().string()).status().message(),
              HasSubstr("missing tensor 'encoder.layer.1.output.dense.bias'"));

  // Config says 3 layers but the file has 2.
  testing::TinyConfig three = c;
  three.layers = 3;
  testing::WriteTinyModel(dir.path(), three, testing::TinyWeights(c));
  EXPECT_THAT(LoadModel(dir.path().string()).status().message(),
              HasSubstr("missing tensor 'encoder.layer.2."));

  // Config's intermediate size disagrees with the weights.
  testing::WriteTinyModel(dir.path(), c, testing::TinyWeights(c));
  testing::WriteFile(dir.path() / "config.json",
                     R"({"hidden_size": 8, "num_hidden_layers": 2, "num_attention_heads": 2,
                         "intermediate_size": 32, "vocab_size": 30, "max_position_embeddings": 24})");
  EXPECT_THAT(LoadModel(dir.path().string()).status().message(),
              HasSubstr("has shape [16, 8] but config.json implies [32, 8]"));

  // 2^24 layers (ReadInt's limit): the first missing layer is the error, without gigabytes of
  // tensor names first (found by tests/fuzz/model_files, an OOM).
  testing::WriteFile(dir.path() / "config.json",
                     R"({"hidden_size": 8, "num_hidden_layers": 16777216, "num_attention_heads": 2,
                         "intermediate_size": 16, "vocab_size": 30, "max_position_embeddings": 24})");
  EXPECT_THAT(LoadModel(dir.path().string()).status().message(),
              HasSubstr("missing tensor 'encoder.layer.2.attention.self.query.weight'"));
}

}  // namespace
}  // namespace tipperary::model
