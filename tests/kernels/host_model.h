// Host-side models for the kernels tests, no CUDA needed: float32 BERT weights exposed as
// BertWeightsHost (random, or bound from named tensors), and CpuEncode, the plain reference
// forward pass every GPU/mirror result is compared with (tests/kernels/cpu_reference_test.cc
// checks it against the sentence-transformers fixtures).
//
//   HostModel m = RandomModel(2, 128, 4, 256, 97, 64);
//   std::vector<float> want = CpuEncode(m.view, {1, 5, 7});  // hidden floats, pooled
#pragma once

#include <cmath>
#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "tipperary/kernels/cuda_encoder.h"
#include "tipperary/kernels/math.h"

namespace tipperary::kernels::testing {

inline std::vector<float> Random(std::mt19937& rng, size_t n, float lo, float hi) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& f : v) f = dist(rng);
  return v;
}

inline double Cosine(const float* a, const float* b, int n) {
  double dot = 0, na = 0, nb = 0;
  for (int i = 0; i < n; ++i) {
    dot += double{a[i]} * b[i];
    na += double{a[i]} * a[i];
    nb += double{b[i]} * b[i];
  }
  return dot / (std::sqrt(na) * std::sqrt(nb) + 1e-30);
}

// Owns float32 weights and exposes them as BertWeightsHost.
struct HostModel {
  std::map<std::string, std::vector<float>> tensors;
  BertWeightsHost view;

  const float* Get(const std::string& name) const {
    auto it = tensors.find(name);
    return it == tensors.end() ? nullptr : it->second.data();
  }

  // Fills view's pointers from tensors named as in Hugging Face's BertModel.
  void Bind(const std::string& prefix) {
    view.word_emb = Get(prefix + "embeddings.word_embeddings.weight");
    view.pos_emb = Get(prefix + "embeddings.position_embeddings.weight");
    view.type_emb = Get(prefix + "embeddings.token_type_embeddings.weight");
    view.emb_ln_gamma = Get(prefix + "embeddings.LayerNorm.weight");
    view.emb_ln_beta = Get(prefix + "embeddings.LayerNorm.bias");
    view.layer.assign(view.layers, {});
    for (int i = 0; i < view.layers; ++i) {
      const std::string p = prefix + "encoder.layer." + std::to_string(i) + ".";
      BertLayerWeightsHost& l = view.layer[i];
      l.query_w = Get(p + "attention.self.query.weight");
      l.query_b = Get(p + "attention.self.query.bias");
      l.key_w = Get(p + "attention.self.key.weight");
      l.key_b = Get(p + "attention.self.key.bias");
      l.value_w = Get(p + "attention.self.value.weight");
      l.value_b = Get(p + "attention.self.value.bias");
      l.attn_out_w = Get(p + "attention.output.dense.weight");
      l.attn_out_b = Get(p + "attention.output.dense.bias");
      l.attn_ln_gamma = Get(p + "attention.output.LayerNorm.weight");
      l.attn_ln_beta = Get(p + "attention.output.LayerNorm.bias");
      l.ffn_in_w = Get(p + "intermediate.dense.weight");
      l.ffn_in_b = Get(p + "intermediate.dense.bias");
      l.ffn_out_w = Get(p + "output.dense.weight");
      l.ffn_out_b = Get(p + "output.dense.bias");
      l.ffn_ln_gamma = Get(p + "output.LayerNorm.weight");
      l.ffn_ln_beta = Get(p + "output.LayerNorm.bias");
    }
  }
};

inline HostModel RandomModel(int layers, int hidden, int heads, int intermediate, int vocab,
                             int max_position) {
  std::mt19937 rng(21);
  HostModel m;
  m.view.layers = layers;
  m.view.hidden = hidden;
  m.view.heads = heads;
  m.view.intermediate = intermediate;
  m.view.vocab = vocab;
  m.view.max_position = max_position;
  m.view.type_vocab = 2;
  m.view.ln_eps = 1e-12f;
  auto add = [&](const std::string& name, size_t n, float lo, float hi) {
    m.tensors[name] = Random(rng, n, lo, hi);
  };
  const float wr = 1.7f / std::sqrt(static_cast<float>(hidden));  // keeps activations O(1)
  add("embeddings.word_embeddings.weight", size_t(vocab) * hidden, -1, 1);
  add("embeddings.position_embeddings.weight", size_t(max_position) * hidden, -0.5, 0.5);
  add("embeddings.token_type_embeddings.weight", 2 * size_t(hidden), -0.1, 0.1);
  add("embeddings.LayerNorm.weight", hidden, 0.8, 1.2);
  add("embeddings.LayerNorm.bias", hidden, -0.1, 0.1);
  for (int i = 0; i < layers; ++i) {
    const std::string p = "encoder.layer." + std::to_string(i) + ".";
    for (const char* n : {"attention.self.query", "attention.self.key", "attention.self.value",
                          "attention.output.dense"}) {
      add(p + n + ".weight", size_t(hidden) * hidden, -wr, wr);
      add(p + n + ".bias", hidden, -0.1, 0.1);
    }
    add(p + "intermediate.dense.weight", size_t(intermediate) * hidden, -wr, wr);
    add(p + "intermediate.dense.bias", intermediate, -0.1, 0.1);
    const float wi = 1.7f / std::sqrt(static_cast<float>(intermediate));
    add(p + "output.dense.weight", size_t(hidden) * intermediate, -wi, wi);
    add(p + "output.dense.bias", hidden, -0.1, 0.1);
    for (const char* n : {"attention.output.LayerNorm", "output.LayerNorm"}) {
      add(p + n + ".weight", hidden, 0.8, 1.2);
      add(p + n + ".bias", hidden, -0.1, 0.1);
    }
  }
  m.Bind("");
  return m;
}

// y[t, out] = x[t, in] * w^T + b, in double accumulation.
inline std::vector<float> CpuLinear(const std::vector<float>& x, int tokens, int in, const float* w,
                                    const float* b, int out) {
  std::vector<float> y(size_t(tokens) * out);
  for (int t = 0; t < tokens; ++t) {
    for (int o = 0; o < out; ++o) {
      double acc = b[o];
      for (int i = 0; i < in; ++i) acc += double{x[size_t(t) * in + i]} * w[size_t(o) * in + i];
      y[size_t(t) * out + o] = static_cast<float>(acc);
    }
  }
  return y;
}

// The reference: one unpadded sequence through the BERT encoder, fp32 activations with every
// dot product (the linear layers, QK^T and PV) accumulated in double, then pooling.
inline std::vector<float> CpuEncode(const BertWeightsHost& w, const std::vector<int32_t>& ids) {
  const int n = static_cast<int>(ids.size());
  const int h = w.hidden;
  const int dh = h / w.heads;
  std::vector<float> x(size_t(n) * h);
  for (int t = 0; t < n; ++t) {
    float* row = &x[size_t(t) * h];
    for (int i = 0; i < h; ++i) {
      row[i] = w.word_emb[size_t(ids[t]) * h + i] + w.pos_emb[size_t(t) * h + i] + w.type_emb[i];
    }
    LayerNormRow(row, w.emb_ln_gamma, w.emb_ln_beta, h, w.ln_eps, row);
  }
  const std::vector<int32_t> mask(n, 1);
  for (const BertLayerWeightsHost& l : w.layer) {
    const auto q = CpuLinear(x, n, h, l.query_w, l.query_b, h);
    const auto k = CpuLinear(x, n, h, l.key_w, l.key_b, h);
    const auto v = CpuLinear(x, n, h, l.value_w, l.value_b, h);
    std::vector<float> ctx(size_t(n) * h, 0.0f), scores(n);
    for (int head = 0; head < w.heads; ++head) {
      for (int i = 0; i < n; ++i) {
        for (int j = 0; j < n; ++j) {
          double dot = 0;
          for (int d = 0; d < dh; ++d) {
            dot += double{q[size_t(i) * h + head * dh + d]} * k[size_t(j) * h + head * dh + d];
          }
          scores[j] = static_cast<float>(dot);
        }
        MaskedSoftmaxRow(scores.data(), mask.data(), n, 1.0f / std::sqrt(float(dh)));
        for (int d = 0; d < dh; ++d) {
          double acc = 0;
          for (int j = 0; j < n; ++j) acc += double{scores[j]} * v[size_t(j) * h + head * dh + d];
          ctx[size_t(i) * h + head * dh + d] = static_cast<float>(acc);
        }
      }
    }
    auto attn = CpuLinear(ctx, n, h, l.attn_out_w, l.attn_out_b, h);
    for (int t = 0; t < n; ++t) {
      float* row = &attn[size_t(t) * h];
      for (int i = 0; i < h; ++i) row[i] += x[size_t(t) * h + i];
      LayerNormRow(row, l.attn_ln_gamma, l.attn_ln_beta, h, w.ln_eps, &x[size_t(t) * h]);
    }
    auto inter = CpuLinear(x, n, h, l.ffn_in_w, l.ffn_in_b, w.intermediate);
    for (float& f : inter) f = Gelu(f);
    auto out = CpuLinear(inter, n, w.intermediate, l.ffn_out_w, l.ffn_out_b, h);
    for (int t = 0; t < n; ++t) {
      float* row = &out[size_t(t) * h];
      for (int i = 0; i < h; ++i) row[i] += x[size_t(t) * h + i];
      LayerNormRow(row, l.ffn_ln_gamma, l.ffn_ln_beta, h, w.ln_eps, &x[size_t(t) * h]);
    }
  }
  std::vector<float> pooled(h, 0.0f);
  const int count = w.cls_pooling ? 1 : n;
  for (int t = 0; t < count; ++t) MeanPoolAccumulate(pooled.data(), &x[size_t(t) * h], h);
  MeanPoolFinish(pooled.data(), h, count);
  return pooled;
}

inline std::vector<std::vector<int32_t>> RandomSequences(std::mt19937& rng, int count, int max_len,
                                                         int vocab) {
  std::vector<std::vector<int32_t>> seqs;
  for (int i = 0; i < count; ++i) {
    std::vector<int32_t> s(1 + rng() % max_len);
    for (int32_t& id : s) id = static_cast<int32_t>(rng() % vocab);
    seqs.push_back(std::move(s));
  }
  return seqs;
}

}  // namespace tipperary::kernels::testing
