#include "tipperary/model/model_bundle.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace tipperary::model {

ModelBundle::ModelBundle(std::string dir, ModelConfig config,
                         std::unique_ptr<SafetensorsFile> weights, std::string prefix)
    : dir_(std::move(dir)),
      config_(std::move(config)),
      weights_(std::move(weights)),
      prefix_(std::move(prefix)) {}

const SafetensorsTensor* ModelBundle::Tensor(const std::string& name) const {
  return weights_->Find(prefix_ + name);
}

absl::StatusOr<std::vector<float>> ModelBundle::TensorFloat32(const std::string& name) const {
  return weights_->ReadFloat32(prefix_ + name);
}

std::string ModelBundle::weights_dtype() const {
  const SafetensorsTensor* t = Tensor("embeddings.word_embeddings.weight");
  if (t == nullptr) return "float32";
  switch (t->dtype) {
    case SafetensorsDType::kF16:
      return "float16";
    case SafetensorsDType::kBF16:
      return "bfloat16";
    default:
      return "float32";
  }
}

namespace {

using TensorShapes = std::vector<std::pair<std::string, std::vector<int64_t>>>;

TensorShapes EmbeddingTensors(const ModelConfig& c) {
  const int64_t h = c.hidden_size;
  return {
      {"embeddings.word_embeddings.weight", {c.vocab_size, h}},
      {"embeddings.position_embeddings.weight", {c.max_position_embeddings, h}},
      {"embeddings.token_type_embeddings.weight", {c.type_vocab_size, h}},
      {"embeddings.LayerNorm.weight", {h}},
      {"embeddings.LayerNorm.bias", {h}},
  };
}

TensorShapes LayerTensors(const ModelConfig& c, int l) {
  const int64_t h = c.hidden_size;
  const int64_t i = c.intermediate_size;
  const std::string p = absl::StrCat("encoder.layer.", l, ".");
  TensorShapes out;
  for (const char* qkv : {"query", "key", "value"}) {
    out.push_back({absl::StrCat(p, "attention.self.", qkv, ".weight"), {h, h}});
    out.push_back({absl::StrCat(p, "attention.self.", qkv, ".bias"), {h}});
  }
  out.push_back({p + "attention.output.dense.weight", {h, h}});
  out.push_back({p + "attention.output.dense.bias", {h}});
  out.push_back({p + "attention.output.LayerNorm.weight", {h}});
  out.push_back({p + "attention.output.LayerNorm.bias", {h}});
  out.push_back({p + "intermediate.dense.weight", {i, h}});
  out.push_back({p + "intermediate.dense.bias", {i}});
  out.push_back({p + "output.dense.weight", {h, i}});
  out.push_back({p + "output.dense.bias", {h}});
  out.push_back({p + "output.LayerNorm.weight", {h}});
  out.push_back({p + "output.LayerNorm.bias", {h}});
  return out;
}

}  // namespace

std::vector<std::pair<std::string, std::vector<int64_t>>> ModelBundle::RequiredTensors(
    const ModelConfig& c) {
  TensorShapes out = EmbeddingTensors(c);
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    for (auto& tensor : LayerTensors(c, l)) out.push_back(std::move(tensor));
  }
  return out;
}

absl::StatusOr<std::shared_ptr<const ModelBundle>> LoadModel(const std::string& dir) {
  absl::StatusOr<ModelConfig> config = LoadModelConfig(dir);
  if (!config.ok()) return config.status();
  const std::string weights_path = (std::filesystem::path(dir) / "model.safetensors").string();
  absl::StatusOr<std::unique_ptr<SafetensorsFile>> weights = SafetensorsFile::Open(weights_path);
  if (!weights.ok()) return weights.status();

  std::string prefix;
  if ((*weights)->Find("embeddings.word_embeddings.weight") == nullptr &&
      (*weights)->Find("bert.embeddings.word_embeddings.weight") != nullptr) {
    prefix = "bert.";
  }
  auto check = [&](const std::string& name, const std::vector<int64_t>& shape) -> absl::Status {
    const SafetensorsTensor* t = (*weights)->Find(prefix + name);
    if (t == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat(weights_path, ": missing tensor '", prefix + name, "'"));
    }
    if (t->dtype != SafetensorsDType::kF32 && t->dtype != SafetensorsDType::kF16 &&
        t->dtype != SafetensorsDType::kBF16) {
      return absl::InvalidArgumentError(absl::StrCat(weights_path, ": tensor '", t->name,
                                                     "' has dtype ", SafetensorsDTypeName(t->dtype),
                                                     ", expected F32, F16 or BF16"));
    }
    if (t->shape != shape) {
      return absl::InvalidArgumentError(
          absl::StrCat(weights_path, ": tensor '", t->name, "' has shape ", t->ShapeString(),
                       " but config.json implies [", absl::StrJoin(shape, ", "), "]"));
    }
    return absl::OkStatus();
  };
  // Layer by layer rather than RequiredTensors' whole list: config.json may claim up to 2^24
  // layers, whose tensor names alone took several GiB before the first missing one was noticed.
  for (const auto& [name, shape] : EmbeddingTensors(*config)) {
    if (absl::Status s = check(name, shape); !s.ok()) return s;
  }
  for (int l = 0; l < config->num_hidden_layers; ++l) {
    for (const auto& [name, shape] : LayerTensors(*config, l)) {
      if (absl::Status s = check(name, shape); !s.ok()) return s;
    }
  }
  return std::make_shared<const ModelBundle>(dir, *std::move(config), *std::move(weights), prefix);
}

}  // namespace tipperary::model
