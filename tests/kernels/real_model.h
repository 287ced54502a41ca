// The default model and the fixture corpus for the CPU tests of the kernels component: the
// weights through the product's own loader (tipperary::model::LoadModel, which reads F32, F16 and
// BF16 safetensors), bound as BertWeightsHost the way the worker binds them for the GPU, and
// tests/fixtures' token ids with sentence-transformers' embeddings of them.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "host_model.h"
#include "tipperary/model/model_bundle.h"
#include "tipperary/model/model_config.h"

namespace tipperary::kernels::testing {

// The model directory (env TIPPERARY_MODEL_DIR, else the configured default), "" if none.
inline std::string RealModelDir() {
  if (const char* env = std::getenv("TIPPERARY_MODEL_DIR"); env != nullptr && *env) return env;
  return TIPPERARY_MODEL_DIR;
}

// Loads the model into `m` (tensors converted to float32 by the product's reader).
inline absl::Status LoadRealModel(const std::string& dir, HostModel* m) {
  absl::StatusOr<std::shared_ptr<const model::ModelBundle>> bundle = model::LoadModel(dir);
  if (!bundle.ok()) return bundle.status();
  const model::ModelConfig& mc = (*bundle)->config();
  std::vector<std::string> names = {"embeddings.word_embeddings.weight",
                                    "embeddings.position_embeddings.weight",
                                    "embeddings.token_type_embeddings.weight",
                                    "embeddings.LayerNorm.weight", "embeddings.LayerNorm.bias"};
  for (int i = 0; i < mc.num_hidden_layers; ++i) {
    for (const char* n :
         {"attention.self.query.weight", "attention.self.query.bias", "attention.self.key.weight",
          "attention.self.key.bias", "attention.self.value.weight", "attention.self.value.bias",
          "attention.output.dense.weight", "attention.output.dense.bias",
          "attention.output.LayerNorm.weight", "attention.output.LayerNorm.bias",
          "intermediate.dense.weight", "intermediate.dense.bias", "output.dense.weight",
          "output.dense.bias", "output.LayerNorm.weight", "output.LayerNorm.bias"}) {
      names.push_back(absl::StrCat("encoder.layer.", i, ".", n));
    }
  }
  for (const std::string& name : names) {
    absl::StatusOr<std::vector<float>> t = (*bundle)->TensorFloat32(name);
    if (!t.ok()) return t.status();
    m->tensors[name] = std::move(*t);
  }
  m->view.layers = mc.num_hidden_layers;
  m->view.hidden = mc.hidden_size;
  m->view.heads = mc.num_attention_heads;
  m->view.intermediate = mc.intermediate_size;
  m->view.vocab = mc.vocab_size;
  m->view.max_position = mc.max_position_embeddings;
  m->view.type_vocab = mc.type_vocab_size;
  m->view.ln_eps = mc.layer_norm_eps;
  m->view.cls_pooling = mc.pooling == model::PoolingMode::kCls;
  m->Bind("");
  return absl::OkStatus();
}

// tests/fixtures: token ids of every corpus text and sentence-transformers' pooled fp32
// embeddings of them ([texts, hidden], not normalised).
struct Fixtures {
  std::vector<std::vector<int32_t>> tokens;
  std::vector<float> embeddings;
};

inline absl::Status ReadFixtures(int hidden, Fixtures* f) {
  const std::string dir = std::string(TIPPERARY_SOURCE_DIR) + "/tests/fixtures/";
  std::ifstream in(dir + "tokens.jsonl");
  if (!in) return absl::NotFoundError("cannot open " + dir + "tokens.jsonl");
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const size_t open = line.find("\"ids\"");
    const size_t begin = line.find('[', open);
    const size_t end = line.find(']', begin);
    if (open == std::string::npos || begin == std::string::npos || end == std::string::npos) {
      return absl::DataLossError("bad line in tokens.jsonl: " + line);
    }
    std::stringstream ss(line.substr(begin + 1, end - begin - 1));
    std::vector<int32_t> ids;
    std::string item;
    while (std::getline(ss, item, ',')) ids.push_back(std::stoi(item));
    f->tokens.push_back(std::move(ids));
  }
  std::ifstream emb(dir + "embeddings.f32", std::ios::binary);
  f->embeddings.resize(f->tokens.size() * hidden);
  emb.read(reinterpret_cast<char*>(f->embeddings.data()),
           static_cast<std::streamsize>(f->embeddings.size() * sizeof(float)));
  if (emb.gcount() != static_cast<std::streamsize>(f->embeddings.size() * sizeof(float))) {
    return absl::DataLossError(
        absl::StrCat("embeddings.f32 does not hold ", f->tokens.size(), " x ", hidden, " floats"));
  }
  return absl::OkStatus();
}

// A fixed sample of the corpus that keeps the slow references quick: every 16th text, plus the
// longest (256 tokens: several attention rows of the full padded width).
inline std::vector<size_t> FixtureSample(const Fixtures& f) {
  std::vector<size_t> pick;
  size_t longest = 0;
  for (size_t i = 0; i < f.tokens.size(); ++i) {
    if (i % 16 == 5) pick.push_back(i);
    if (f.tokens[i].size() > f.tokens[longest].size()) longest = i;
  }
  if (pick.empty() || pick.back() != longest) pick.push_back(longest);
  return pick;
}

}  // namespace tipperary::kernels::testing
