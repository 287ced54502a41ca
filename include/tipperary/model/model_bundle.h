// A loaded model: its configuration plus its memory-mapped weights, shared read-only by every
// encoder built from it (CPU or CUDA).
//
// LoadModel checks that every tensor a BERT encoder needs is present with the shape the config
// implies and a floating-point dtype, so encoders may rely on Tensor() succeeding.
// Tensor names are the Hugging Face BertModel ones ("encoder.layer.0.output.dense.weight");
// files saved from BertForXxx carry a "bert." prefix, which Tensor() resolves transparently.
//
//   absl::StatusOr<std::shared_ptr<const ModelBundle>> bundle = LoadModel(model_dir);
//   const ModelConfig& config = (*bundle)->config();
//   absl::StatusOr<std::vector<float>> w =
//       (*bundle)->TensorFloat32("embeddings.word_embeddings.weight");
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "tipperary/model/model_config.h"
#include "tipperary/model/safetensors.h"

namespace tipperary::model {

class ModelBundle {
 public:
  ModelBundle(std::string dir, ModelConfig config, std::unique_ptr<SafetensorsFile> weights,
              std::string prefix);

  const std::string& dir() const { return dir_; }
  const ModelConfig& config() const { return config_; }
  const SafetensorsFile& weights() const { return *weights_; }

  // The tensor `name` (without any "bert." prefix), or nullptr.
  const SafetensorsTensor* Tensor(const std::string& name) const;
  // The tensor converted to float32 (from F32, F16 or BF16).
  absl::StatusOr<std::vector<float>> TensorFloat32(const std::string& name) const;
  // "float32", "float16" or "bfloat16": the dtype of the word embeddings.
  std::string weights_dtype() const;

  // Every tensor name an encoder reads, with the shape the config requires.
  static std::vector<std::pair<std::string, std::vector<int64_t>>> RequiredTensors(
      const ModelConfig& config);

 private:
  std::string dir_;
  ModelConfig config_;
  std::unique_ptr<SafetensorsFile> weights_;
  std::string prefix_;  // "" or "bert."
};

// Loads `dir`/config.json & co. and `dir`/model.safetensors.
absl::StatusOr<std::shared_ptr<const ModelBundle>> LoadModel(const std::string& dir);

}  // namespace tipperary::model
