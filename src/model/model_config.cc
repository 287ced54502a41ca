#include "tipperary/model/model_config.h"

#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "json_object.h"

namespace tipperary::model {
namespace {

using google::protobuf::Struct;
using google::protobuf::Value;

absl::StatusOr<Struct> LoadJson(const std::string& path) {
  absl::StatusOr<std::string> text = internal::ReadFileToString(path);
  if (!text.ok()) return text.status();
  return internal::ParseJsonObject(*text, path);
}

// Reads a positive integer field; `required` fields must be present.
absl::Status ReadInt(const Struct& s, const std::string& path, const char* key, bool required,
                     int min_value, int* out) {
  auto it = s.fields().find(key);
  if (it == s.fields().end()) {
    if (required) return absl::InvalidArgumentError(absl::StrCat(path, ": missing \"", key, "\""));
    return absl::OkStatus();
  }
  absl::StatusOr<int64_t> v =
      internal::JsonToInt(it->second, absl::StrCat(path, ": \"", key, "\""));
  if (!v.ok()) return v.status();
  if (*v < min_value || *v > (1 << 24)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": \"", key, "\" = ", *v, " is out of range"));
  }
  *out = static_cast<int>(*v);
  return absl::OkStatus();
}

absl::StatusOr<bool> ReadBool(const Struct& s, const std::string& path, const char* key) {
  auto it = s.fields().find(key);
  if (it == s.fields().end()) return false;
  if (it->second.kind_case() != Value::kBoolValue) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": \"", key, "\" must be a boolean"));
  }
  return it->second.bool_value();
}

}  // namespace

absl::StatusOr<ModelConfig> LoadModelConfig(const std::string& dir) {
  namespace fs = std::filesystem;
  ModelConfig c;

  const std::string config_path = (fs::path(dir) / "config.json").string();
  absl::StatusOr<Struct> config = LoadJson(config_path);
  if (!config.ok()) return config.status();
  for (auto [key, out, min] :
       {std::tuple{"hidden_size", &c.hidden_size, 1},
        std::tuple{"num_hidden_layers", &c.num_hidden_layers, 1},
        std::tuple{"num_attention_heads", &c.num_attention_heads, 1},
        std::tuple{"intermediate_size", &c.intermediate_size, 1},
        std::tuple{"vocab_size", &c.vocab_size, 1},
        std::tuple{"max_position_embeddings", &c.max_position_embeddings, 1}}) {
    if (absl::Status s = ReadInt(*config, config_path, key, true, min, out); !s.ok()) return s;
  }
  c.type_vocab_size = 2;
  if (absl::Status s =
          ReadInt(*config, config_path, "type_vocab_size", false, 1, &c.type_vocab_size);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = ReadInt(*config, config_path, "pad_token_id", false, 0, &c.pad_token_id);
      !s.ok()) {
    return s;
  }
  if (auto it = config->fields().find("hidden_act"); it != config->fields().end()) {
    if (it->second.kind_case() != Value::kStringValue) {
      return absl::InvalidArgumentError(
          absl::StrCat(config_path, ": \"hidden_act\" must be a string"));
    }
    c.hidden_act = it->second.string_value();
  }
  if (c.hidden_act != "gelu") {
    return absl::UnimplementedError(absl::StrCat(config_path, ": hidden_act \"", c.hidden_act,
                                                 "\" is not supported (only erf \"gelu\")"));
  }
  if (auto it = config->fields().find("layer_norm_eps"); it != config->fields().end()) {
    if (it->second.kind_case() != Value::kNumberValue || !(it->second.number_value() > 0) ||
        it->second.number_value() > 1) {
      return absl::InvalidArgumentError(
          absl::StrCat(config_path, ": \"layer_norm_eps\" must be a number in (0, 1]"));
    }
    c.layer_norm_eps = static_cast<float>(it->second.number_value());
  }
  if (auto it = config->fields().find("position_embedding_type"); it != config->fields().end()) {
    if (it->second.kind_case() != Value::kStringValue || it->second.string_value() != "absolute") {
      return absl::UnimplementedError(
          absl::StrCat(config_path, ": only \"absolute\" position_embedding_type is supported"));
    }
  }
  if (c.hidden_size % c.num_attention_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat(config_path, ": hidden_size ", c.hidden_size,
                                                   " is not a multiple of num_attention_heads ",
                                                   c.num_attention_heads));
  }

  // modules.json: the sentence-transformers pipeline. Without it, plain mean pooling.
  std::string pooling_dir;
  bool has_pooling = false;
  const std::string modules_path = (fs::path(dir) / "modules.json").string();
  if (fs::exists(modules_path)) {
    absl::StatusOr<std::string> text = internal::ReadFileToString(modules_path);
    if (!text.ok()) return text.status();
    // The file is a JSON array; wrap it so the object parser takes it.
    absl::StatusOr<Struct> wrapped =
        internal::ParseJsonObject(absl::StrCat("{\"m\":", *text, "}"), modules_path);
    if (!wrapped.ok()) return wrapped.status();
    const Value& list = wrapped->fields().at("m");
    if (list.kind_case() != Value::kListValue) {
      return absl::InvalidArgumentError(absl::StrCat(modules_path, ": expected a JSON array"));
    }
    for (const Value& m : list.list_value().values()) {
      if (m.kind_case() != Value::kStructValue) {
        return absl::InvalidArgumentError(absl::StrCat(modules_path, ": entries must be objects"));
      }
      const auto& f = m.struct_value().fields();
      auto type = f.find("type");
      if (type == f.end() || type->second.kind_case() != Value::kStringValue) {
        return absl::InvalidArgumentError(absl::StrCat(modules_path, ": entry without \"type\""));
      }
      const std::string& t = type->second.string_value();
      if (absl::EndsWith(t, ".Pooling")) {
        has_pooling = true;
        auto path = f.find("path");
        if (path != f.end() && path->second.kind_case() == Value::kStringValue) {
          pooling_dir = path->second.string_value();
        }
      } else if (absl::EndsWith(t, ".Normalize")) {
        c.normalize = true;
      } else if (!absl::EndsWith(t, ".Transformer")) {
        return absl::UnimplementedError(
            absl::StrCat(modules_path, ": module type \"", t, "\" is not supported"));
      }
    }
  }
  if (has_pooling) {
    if (pooling_dir.empty() || pooling_dir.find("..") != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat(modules_path, ": Pooling module needs a relative \"path\""));
    }
    const std::string pooling_path = (fs::path(dir) / pooling_dir / "config.json").string();
    absl::StatusOr<Struct> pooling = LoadJson(pooling_path);
    if (!pooling.ok()) return pooling.status();
    absl::StatusOr<bool> mean = ReadBool(*pooling, pooling_path, "pooling_mode_mean_tokens");
    absl::StatusOr<bool> cls = ReadBool(*pooling, pooling_path, "pooling_mode_cls_token");
    absl::StatusOr<bool> max = ReadBool(*pooling, pooling_path, "pooling_mode_max_tokens");
    absl::StatusOr<bool> sqrt =
        ReadBool(*pooling, pooling_path, "pooling_mode_mean_sqrt_len_tokens");
    for (const auto* s : {&mean, &cls, &max, &sqrt}) {
      if (!s->ok()) return s->status();
    }
    if (*max || *sqrt || (*mean + *cls) != 1) {
      return absl::UnimplementedError(
          absl::StrCat(pooling_path,
                       ": exactly one of pooling_mode_mean_tokens and pooling_mode_cls_token "
                       "must be true (other modes are not supported)"));
    }
    c.pooling = *cls ? PoolingMode::kCls : PoolingMode::kMean;
    int dim = c.hidden_size;
    if (absl::Status s =
            ReadInt(*pooling, pooling_path, "word_embedding_dimension", false, 1, &dim);
        !s.ok()) {
      return s;
    }
    if (dim != c.hidden_size) {
      return absl::InvalidArgumentError(absl::StrCat(pooling_path, ": word_embedding_dimension ",
                                                     dim, " != hidden_size ", c.hidden_size));
    }
  }

  c.max_seq_length = c.max_position_embeddings;
  const std::string sbert_path = (fs::path(dir) / "sentence_bert_config.json").string();
  if (fs::exists(sbert_path)) {
    absl::StatusOr<Struct> sbert = LoadJson(sbert_path);
    if (!sbert.ok()) return sbert.status();
    if (absl::Status s = ReadInt(*sbert, sbert_path, "max_seq_length", false, 2, &c.max_seq_length);
        !s.ok()) {
      return s;
    }
    if (c.max_seq_length > c.max_position_embeddings) {
      return absl::InvalidArgumentError(
          absl::StrCat(sbert_path, ": max_seq_length ", c.max_seq_length,
                       " exceeds max_position_embeddings ", c.max_position_embeddings));
    }
  }

  const std::string st_path = (fs::path(dir) / "config_sentence_transformers.json").string();
  if (fs::exists(st_path)) {
    absl::StatusOr<Struct> st = LoadJson(st_path);
    if (!st.ok()) return st.status();
    if (auto it = st->fields().find("prompts");
        it != st->fields().end() && it->second.kind_case() != Value::kNullValue) {
      if (it->second.kind_case() != Value::kStructValue) {
        return absl::InvalidArgumentError(
            absl::StrCat(st_path, ": \"prompts\" must be an object of strings"));
      }
      c.prompts.emplace();
      for (const auto& [name, text] : it->second.struct_value().fields()) {
        if (text.kind_case() != Value::kStringValue) {
          return absl::InvalidArgumentError(
              absl::StrCat(st_path, ": prompt \"", name, "\" must be a string"));
        }
        (*c.prompts)[name] = text.string_value();
      }
    }
  }
  return c;
}

}  // namespace tipperary::model
