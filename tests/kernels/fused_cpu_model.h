// A small random BERT and two ways through it on the CPU, shared by the fused variant's CPU
// tests: FusedForward (the fused pipeline: packed layout, fused_math.h's emulated kernels, GEMMs
// through a given function) and ReferenceEncode (one text alone, textbook, in double).
#pragma once

#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <vector>

#include "tipperary/kernels/fused_math.h"
#include "tipperary/kernels/math.h"

namespace tipperary::kernels::fused_test {

inline std::vector<float> Random(std::mt19937& rng, size_t n, float lo, float hi) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// y = x * w^T for x [rows, in], w [out, in]: how the forward pass runs its bias-free GEMMs.
using GemmFn = std::function<std::vector<float>(const std::vector<float>& x, int rows, int in,
                                                const std::vector<float>& w, int out)>;

struct TinyBert {
  int layers = 2, hidden = 64, heads = 2, inter = 128, vocab = 50, max_pos = 40;
  float eps = 1e-12f;
  std::vector<float> word, pos, type, emb_g, emb_b;
  struct Layer {
    std::vector<float> qkv_w, qkv_b, o_w, o_b, ln1_g, ln1_b, i_w, i_b, f_w, f_b, ln2_g, ln2_b;
  };
  std::vector<Layer> l;

  explicit TinyBert(uint32_t seed) {
    std::mt19937 rng(seed);
    const float wr = 1.7f / std::sqrt(float(hidden));
    const float wi = 1.7f / std::sqrt(float(inter));
    word = Random(rng, size_t(vocab) * hidden, -1, 1);
    pos = Random(rng, size_t(max_pos) * hidden, -0.5, 0.5);
    type = Random(rng, hidden, -0.1, 0.1);
    emb_g = Random(rng, hidden, 0.8, 1.2);
    emb_b = Random(rng, hidden, -0.1, 0.1);
    for (int i = 0; i < layers; ++i) {
      Layer y;
      y.qkv_w = Random(rng, size_t(3) * hidden * hidden, -wr, wr);  // [3h, h]: q | k | v rows
      y.qkv_b = Random(rng, size_t(3) * hidden, -0.1, 0.1);
      y.o_w = Random(rng, size_t(hidden) * hidden, -wr, wr);
      y.o_b = Random(rng, hidden, -0.1, 0.1);
      y.ln1_g = Random(rng, hidden, 0.8, 1.2);
      y.ln1_b = Random(rng, hidden, -0.1, 0.1);
      y.i_w = Random(rng, size_t(inter) * hidden, -wr, wr);
      y.i_b = Random(rng, inter, -0.1, 0.1);
      y.f_w = Random(rng, size_t(hidden) * inter, -wi, wi);
      y.f_b = Random(rng, hidden, -0.1, 0.1);
      y.ln2_g = Random(rng, hidden, 0.8, 1.2);
      y.ln2_b = Random(rng, hidden, -0.1, 0.1);
      l.push_back(std::move(y));
    }
  }
};

// y[t, o] = x[t, :] . w[o, :] (w in Linear layout [out, in]), double accumulation.
inline std::vector<float> DoubleGemm(const std::vector<float>& x, int rows, int in,
                                     const std::vector<float>& w, int out) {
  std::vector<float> y(size_t(rows) * out);
  for (int t = 0; t < rows; ++t) {
    for (int o = 0; o < out; ++o) {
      double acc = 0.0;
      for (int i = 0; i < in; ++i) acc += double{x[size_t(t) * in + i]} * w[size_t(o) * in + i];
      y[size_t(t) * out + o] = static_cast<float>(acc);
    }
  }
  return y;
}

// The fused variant's pipeline on the CPU: packed embedding + warp LayerNorm, QKV GEMM without
// bias, varlen attention adding it, output GEMM, bias + residual + warp LayerNorm, bias + GELU,
// FFN out, bias + residual + warp LayerNorm, pooling over each sequence's rows.
inline std::vector<float> FusedForward(const TinyBert& m,
                                       const std::vector<std::vector<int32_t>>& seqs,
                                       bool tanh_gelu, const GemmFn& gemm = DoubleGemm) {
  std::vector<int> lengths;
  for (const auto& s : seqs) lengths.push_back(static_cast<int>(s.size()));
  const PackedLayout p = BuildPackedLayout(lengths, kAttentionQueryTile);
  const int n = p.tokens(), h = m.hidden;
  std::vector<float> x(size_t(n) * h);
  std::vector<int32_t> ids;
  for (const auto& s : seqs) ids.insert(ids.end(), s.begin(), s.end());
  for (int t = 0; t < n; ++t) {
    float* row = &x[size_t(t) * h];
    for (int i = 0; i < h; ++i) {
      row[i] = m.word[size_t(ids[t]) * h + i] + m.pos[size_t(p.positions[t]) * h + i] + m.type[i];
    }
    WarpLayerNormRowEmulated(row, m.emb_g.data(), m.emb_b.data(), h, m.eps, row);
  }
  for (const TinyBert::Layer& y : m.l) {
    const auto qkv = gemm(x, n, h, y.qkv_w, 3 * h);
    std::vector<float> ctx(size_t(n) * h);
    VarlenAttentionEmulated<32>(qkv.data(), y.qkv_b.data(), p, m.heads, ctx.data());
    auto attn = gemm(ctx, n, h, y.o_w, h);
    for (int t = 0; t < n; ++t) {
      float* row = &attn[size_t(t) * h];
      for (int i = 0; i < h; ++i) row[i] += y.o_b[i] + x[size_t(t) * h + i];
      WarpLayerNormRowEmulated(row, y.ln1_g.data(), y.ln1_b.data(), h, m.eps, &x[size_t(t) * h]);
    }
    auto inter = gemm(x, n, h, y.i_w, m.inter);
    for (int t = 0; t < n; ++t) {
      for (int i = 0; i < m.inter; ++i) {
        float& v = inter[size_t(t) * m.inter + i];
        v = tanh_gelu ? GeluTanh(v + y.i_b[i]) : Gelu(v + y.i_b[i]);
      }
    }
    auto out = gemm(inter, n, m.inter, y.f_w, h);
    for (int t = 0; t < n; ++t) {
      float* row = &out[size_t(t) * h];
      for (int i = 0; i < h; ++i) row[i] += y.f_b[i] + x[size_t(t) * h + i];
      WarpLayerNormRowEmulated(row, y.ln2_g.data(), y.ln2_b.data(), h, m.eps, &x[size_t(t) * h]);
    }
  }
  std::vector<float> pooled(seqs.size() * h, 0.0f);
  for (size_t b = 0; b < seqs.size(); ++b) {
    for (int t = p.cu_seqlens[b]; t < p.cu_seqlens[b + 1]; ++t) {
      MeanPoolAccumulate(&pooled[b * h], &x[size_t(t) * h], h);
    }
    MeanPoolFinish(&pooled[b * h], h, lengths[b]);
  }
  return pooled;
}

// One sequence alone, in double, the textbook way (separate Q/K/V, full score matrix).
inline std::vector<float> ReferenceEncode(const TinyBert& m, const std::vector<int32_t>& ids) {
  const int n = static_cast<int>(ids.size()), h = m.hidden, dh = h / m.heads;
  auto ln = [&](std::vector<double>& row, const std::vector<float>& g,
                const std::vector<float>& b) {
    double mean = 0, var = 0;
    for (double v : row) mean += v;
    mean /= h;
    for (double v : row) var += (v - mean) * (v - mean);
    var /= h;
    for (int i = 0; i < h; ++i) row[i] = (row[i] - mean) / std::sqrt(var + m.eps) * g[i] + b[i];
  };
  std::vector<std::vector<double>> x(n, std::vector<double>(h));
  for (int t = 0; t < n; ++t) {
    for (int i = 0; i < h; ++i) {
      x[t][i] = double{m.word[size_t(ids[t]) * h + i]} + m.pos[size_t(t) * h + i] + m.type[i];
    }
    ln(x[t], m.emb_g, m.emb_b);
  }
  auto lin = [](const std::vector<double>& in, const float* w, const float* b, int out_dim) {
    std::vector<double> y(out_dim);
    for (int o = 0; o < out_dim; ++o) {
      double acc = b[o];
      for (size_t i = 0; i < in.size(); ++i) acc += in[i] * w[o * in.size() + i];
      y[o] = acc;
    }
    return y;
  };
  for (const TinyBert::Layer& y : m.l) {
    std::vector<std::vector<double>> q(n), k(n), v(n), ctx(n, std::vector<double>(h, 0.0));
    for (int t = 0; t < n; ++t) {
      q[t] = lin(x[t], y.qkv_w.data(), y.qkv_b.data(), h);
      k[t] = lin(x[t], y.qkv_w.data() + size_t(h) * h, y.qkv_b.data() + h, h);
      v[t] = lin(x[t], y.qkv_w.data() + size_t(2) * h * h, y.qkv_b.data() + 2 * h, h);
    }
    for (int hd = 0; hd < m.heads; ++hd) {
      for (int i = 0; i < n; ++i) {
        std::vector<double> s(n);
        double mx = -1e300, sum = 0;
        for (int j = 0; j < n; ++j) {
          double dot = 0;
          for (int d = 0; d < dh; ++d) dot += q[i][hd * dh + d] * k[j][hd * dh + d];
          s[j] = dot / std::sqrt(double(dh));
          mx = std::max(mx, s[j]);
        }
        for (double& e : s) sum += (e = std::exp(e - mx));
        for (int d = 0; d < dh; ++d) {
          for (int j = 0; j < n; ++j) ctx[i][hd * dh + d] += s[j] / sum * v[j][hd * dh + d];
        }
      }
    }
    for (int t = 0; t < n; ++t) {
      std::vector<double> a = lin(ctx[t], y.o_w.data(), y.o_b.data(), h);
      for (int i = 0; i < h; ++i) a[i] += x[t][i];
      ln(a, y.ln1_g, y.ln1_b);
      x[t] = a;
      std::vector<double> in = lin(x[t], y.i_w.data(), y.i_b.data(), m.inter);
      for (double& e : in) e = 0.5 * e * (1.0 + std::erf(e / std::sqrt(2.0)));
      std::vector<double> f = lin(in, y.f_w.data(), y.f_b.data(), h);
      for (int i = 0; i < h; ++i) f[i] += x[t][i];
      ln(f, y.ln2_g, y.ln2_b);
      x[t] = f;
    }
  }
  std::vector<float> pooled(h);
  for (int i = 0; i < h; ++i) {
    double acc = 0;
    for (int t = 0; t < n; ++t) acc += x[t][i];
    pooled[i] = static_cast<float>(acc / n);
  }
  return pooled;
}

}  // namespace tipperary::kernels::fused_test
