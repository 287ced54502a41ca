// The architecture and pipeline of a sentence-transformers model directory: what the encoders
// need to know beyond the weights.
//
// Read from config.json (BERT hyper-parameters), modules.json (is there a Pooling and a
// Normalize module?), <pooling dir>/config.json (mean or CLS), sentence_bert_config.json
// (max_seq_length) and config_sentence_transformers.json (prompts). Errors name the offending
// file.
//
//   absl::StatusOr<ModelConfig> config = LoadModelConfig("/models/all-MiniLM-L6-v2");
//   int dim = config->hidden_size;  // 384
#pragma once

#include <map>
#include <optional>
#include <string>

#include "absl/status/statusor.h"

namespace tipperary::model {

enum class PoolingMode { kMean, kCls };

struct ModelConfig {
  int hidden_size = 0;
  int num_hidden_layers = 0;
  int num_attention_heads = 0;
  int intermediate_size = 0;
  std::string hidden_act = "gelu";  // only erf GELU ("gelu") is supported
  float layer_norm_eps = 1e-12f;
  int vocab_size = 0;
  int max_position_embeddings = 0;
  int type_vocab_size = 0;
  int pad_token_id = 0;
  // Longest token sequence (with [CLS]/[SEP]) the model accepts: sentence_bert_config.json's
  // max_seq_length, else max_position_embeddings.
  int max_seq_length = 0;
  PoolingMode pooling = PoolingMode::kMean;
  bool normalize = false;  // modules.json has a Normalize module
  // config_sentence_transformers.json's "prompts" (name -> text put before the input, as
  // sentence-transformers' encode(prompt_name=...) does); nullopt when the file has none, as
  // TEI tells the two apart (no prompts at all, or no prompt of that name).
  std::optional<std::map<std::string, std::string>> prompts;

  int head_dim() const { return hidden_size / num_attention_heads; }
};

absl::StatusOr<ModelConfig> LoadModelConfig(const std::string& dir);

}  // namespace tipperary::model
