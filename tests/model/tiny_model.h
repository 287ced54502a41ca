// Test helpers: write safetensors files and a tiny random BERT model directory, and a naive
// double-precision reference forward pass to check encoders against.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace tipperary::model::testing {

struct RawTensor {
  std::string dtype = "F32";
  std::vector<int64_t> shape;
  std::string bytes;
};

inline RawTensor F32Tensor(std::vector<int64_t> shape, const std::vector<float>& values) {
  RawTensor t;
  t.shape = std::move(shape);
  t.bytes.assign(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
  return t;
}

inline std::string WithHeader(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header + data;
}

// Serialises tensors (data laid out in name order) with an optional header override.
inline std::string SafetensorsBytes(const std::map<std::string, RawTensor>& tensors) {
  std::string header = "{\"__metadata__\":{\"format\":\"pt\"}";
  std::string data;
  for (const auto& [name, t] : tensors) {
    absl::StrAppend(&header, ",\"", name, "\":{\"dtype\":\"", t.dtype, "\",\"shape\":[",
                    absl::StrJoin(t.shape, ","), "],\"data_offsets\":[", data.size(), ",",
                    data.size() + t.bytes.size(), "]}");
    data += t.bytes;
  }
  header += "}";
  return WithHeader(header, data);
}

inline void WriteFile(const std::filesystem::path& path, const std::string& bytes) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << bytes;
}

struct TinyConfig {
  int hidden = 8;
  int heads = 2;
  int layers = 2;
  int inter = 16;
  int vocab = 30;
  int max_pos = 24;
  int max_seq = 20;
  bool cls = false;
  float eps = 1e-12f;
};

// Random weights keyed by HF name (float32), filled deterministically.
using Weights = std::map<std::string, std::vector<float>>;

inline Weights TinyWeights(const TinyConfig& c, uint32_t seed = 7) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 0.5f);
  Weights w;
  auto fill = [&](const std::string& name, size_t n, float offset = 0) {
    std::vector<float> v(n);
    for (float& x : v) x = offset + normal(rng);
    w[name] = std::move(v);
  };
  const size_t h = c.hidden, i = c.inter;
  fill("embeddings.word_embeddings.weight", c.vocab * h);
  fill("embeddings.position_embeddings.weight", c.max_pos * h);
  fill("embeddings.token_type_embeddings.weight", 2 * h);
  fill("embeddings.LayerNorm.weight", h, 1.0f);
  fill("embeddings.LayerNorm.bias", h);
  for (int l = 0; l < c.layers; ++l) {
    const std::string p = absl::StrCat("encoder.layer.", l, ".");
    for (const char* qkv : {"query", "key", "value"}) {
      fill(absl::StrCat(p, "attention.self.", qkv, ".weight"), h * h);
      fill(absl::StrCat(p, "attention.self.", qkv, ".bias"), h);
    }
    fill(p + "attention.output.dense.weight", h * h);
    fill(p + "attention.output.dense.bias", h);
    fill(p + "attention.output.LayerNorm.weight", h, 1.0f);
    fill(p + "attention.output.LayerNorm.bias", h);
    fill(p + "intermediate.dense.weight", i * h);
    fill(p + "intermediate.dense.bias", i);
    fill(p + "output.dense.weight", h * i);
    fill(p + "output.dense.bias", h);
    fill(p + "output.LayerNorm.weight", h, 1.0f);
    fill(p + "output.LayerNorm.bias", h);
  }
  return w;
}

inline std::vector<int64_t> ShapeOf(const TinyConfig& c, const std::string& name) {
  const int64_t h = c.hidden, i = c.inter;
  if (name == "embeddings.word_embeddings.weight") return {c.vocab, h};
  if (name == "embeddings.position_embeddings.weight") return {c.max_pos, h};
  if (name == "embeddings.token_type_embeddings.weight") return {2, h};
  if (name.find("intermediate.dense.weight") != std::string::npos) return {i, h};
  if (name.find("intermediate.dense.bias") != std::string::npos) return {i};
  if (name.find("output.dense.weight") != std::string::npos &&
      name.find("attention") == std::string::npos) {
    return {h, i};
  }
  if (name.find(".weight") != std::string::npos && name.find("LayerNorm") == std::string::npos) {
    return {h, h};
  }
  return {h};
}

// Writes config.json, modules.json, 1_Pooling/config.json, sentence_bert_config.json and
// model.safetensors (with `prefix` before every tensor name) into `dir`.
inline void WriteTinyModel(const std::filesystem::path& dir, const TinyConfig& c, const Weights& w,
                           const std::string& prefix = "") {
  WriteFile(dir / "config.json",
            absl::StrCat("{\"hidden_size\":", c.hidden, ",\"num_hidden_layers\":", c.layers,
                         ",\"num_attention_heads\":", c.heads, ",\"intermediate_size\":", c.inter,
                         ",\"hidden_act\":\"gelu\",\"layer_norm_eps\":", c.eps,
                         ",\"vocab_size\":", c.vocab, ",\"max_position_embeddings\":", c.max_pos,
                         ",\"type_vocab_size\":2,\"position_embedding_type\":\"absolute\"}"));
  WriteFile(dir / "modules.json",
            R"([{"idx":0,"name":"0","path":"","type":"sentence_transformers.models.Transformer"},
{"idx":1,"name":"1","path":"1_Pooling","type":"sentence_transformers.models.Pooling"},
{"idx":2,"name":"2","path":"2_Normalize","type":"sentence_transformers.models.Normalize"}])");
  WriteFile(dir / "1_Pooling" / "config.json",
            absl::StrCat("{\"word_embedding_dimension\":", c.hidden,
                         ",\"pooling_mode_cls_token\":", c.cls ? "true" : "false",
                         ",\"pooling_mode_mean_tokens\":", c.cls ? "false" : "true", "}"));
  WriteFile(dir / "sentence_bert_config.json",
            absl::StrCat("{\"max_seq_length\":", c.max_seq, ",\"do_lower_case\":false}"));
  std::map<std::string, RawTensor> tensors;
  for (const auto& [name, v] : w) tensors[prefix + name] = F32Tensor(ShapeOf(c, name), v);
  WriteFile(dir / "model.safetensors", SafetensorsBytes(tensors));
}

// Straightforward double-precision BERT forward + pooling for one sequence.
inline std::vector<double> ReferenceEncode(const TinyConfig& c, const Weights& w,
                                           const std::vector<int32_t>& ids) {
  const int n = static_cast<int>(ids.size()), h = c.hidden, d = h / c.heads;
  auto at = [&](const std::string& name) -> const std::vector<float>& { return w.at(name); };
  using Mat = std::vector<std::vector<double>>;
  auto layer_norm = [&](std::vector<double>& row, const std::vector<float>& g,
                        const std::vector<float>& b) {
    double mean = 0, var = 0;
    for (double v : row) mean += v;
    mean /= row.size();
    for (double v : row) var += (v - mean) * (v - mean);
    var /= row.size();
    for (size_t i = 0; i < row.size(); ++i) {
      row[i] = (row[i] - mean) / std::sqrt(var + c.eps) * g[i] + b[i];
    }
  };
  auto linear = [&](const Mat& x, const std::string& p, int out) {
    const auto& W = at(p + ".weight");
    const auto& B = at(p + ".bias");
    const int in = static_cast<int>(x[0].size());
    Mat y(x.size(), std::vector<double>(out));
    for (size_t r = 0; r < x.size(); ++r) {
      for (int o = 0; o < out; ++o) {
        double s = B[o];
        for (int k = 0; k < in; ++k) s += x[r][k] * W[o * in + k];
        y[r][o] = s;
      }
    }
    return y;
  };
  Mat x(n, std::vector<double>(h));
  for (int t = 0; t < n; ++t) {
    for (int i = 0; i < h; ++i) {
      x[t][i] = at("embeddings.word_embeddings.weight")[ids[t] * h + i] +
                at("embeddings.position_embeddings.weight")[t * h + i] +
                at("embeddings.token_type_embeddings.weight")[i];
    }
    layer_norm(x[t], at("embeddings.LayerNorm.weight"), at("embeddings.LayerNorm.bias"));
  }
  for (int l = 0; l < c.layers; ++l) {
    const std::string p = absl::StrCat("encoder.layer.", l, ".");
    Mat q = linear(x, p + "attention.self.query", h);
    Mat k = linear(x, p + "attention.self.key", h);
    Mat v = linear(x, p + "attention.self.value", h);
    Mat ctx(n, std::vector<double>(h, 0.0));
    for (int hd = 0; hd < c.heads; ++hd) {
      for (int i = 0; i < n; ++i) {
        std::vector<double> s(n);
        double mx = -1e300, sum = 0;
        for (int j = 0; j < n; ++j) {
          double dot = 0;
          for (int e = 0; e < d; ++e) dot += q[i][hd * d + e] * k[j][hd * d + e];
          s[j] = dot / std::sqrt(static_cast<double>(d));
          mx = std::max(mx, s[j]);
        }
        for (int j = 0; j < n; ++j) sum += (s[j] = std::exp(s[j] - mx));
        for (int j = 0; j < n; ++j) {
          for (int e = 0; e < d; ++e) ctx[i][hd * d + e] += s[j] / sum * v[j][hd * d + e];
        }
      }
    }
    Mat a = linear(ctx, p + "attention.output.dense", h);
    for (int t = 0; t < n; ++t) {
      for (int i = 0; i < h; ++i) x[t][i] += a[t][i];
      layer_norm(x[t], at(p + "attention.output.LayerNorm.weight"),
                 at(p + "attention.output.LayerNorm.bias"));
    }
    Mat mid = linear(x, p + "intermediate.dense", c.inter);
    for (auto& row : mid) {
      for (double& e : row) e = 0.5 * e * (1.0 + std::erf(e / std::sqrt(2.0)));
    }
    Mat o = linear(mid, p + "output.dense", h);
    for (int t = 0; t < n; ++t) {
      for (int i = 0; i < h; ++i) x[t][i] += o[t][i];
      layer_norm(x[t], at(p + "output.LayerNorm.weight"), at(p + "output.LayerNorm.bias"));
    }
  }
  if (c.cls) return x[0];
  std::vector<double> mean(h, 0.0);
  for (int t = 0; t < n; ++t) {
    for (int i = 0; i < h; ++i) mean[i] += x[t][i] / n;
  }
  return mean;
}

}  // namespace tipperary::model::testing
