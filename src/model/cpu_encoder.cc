#include "tipperary/model/cpu_encoder.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <functional>
#include <mutex>
#include <thread>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "aligned_vector.h"
#include "amx_attention.h"
#include "bf16_rows.h"
#include "blas.h"
#include "cpu_math.h"
#include "onednn_gemm.h"
#include "onednn_int8_gemm.h"
#include "thread_team.h"
#include "tipperary/common/check.h"
#include "tipperary/common/thread_priority.h"

namespace tipperary::model {
namespace {

using internal::ThreadTeam;

// Batches of fewer tokens run on one thread (see Encode).
constexpr int kMinTokensForTeam = 96;

// Rows per feed-forward chunk: 256 x 1536 floats = 1.5 MiB, within a core's L2.
constexpr int kFfnChunkRows = 256;

// How the dense layers' GEMMs run (options.dtype).
enum class GemmKind { kFloat32, kBfloat16, kInt8 };

// One weight matrix packed for oneDNN: bf16 or int8, whichever the encoder's GemmKind uses.
struct Packed {
  std::unique_ptr<internal::Bf16Linear> bf16;
  std::unique_ptr<internal::Int8Linear> int8;
};

struct Layer {
  std::vector<float> wqkv, bqkv;  // fused [3H x H], [3H]: one GEMM instead of three
  std::vector<float> wo, bo, ln1_g, ln1_b;
  std::vector<float> w1, b1, w2, b2, ln2_g, ln2_b;
  // bfloat16 / int8: the four weight matrices as oneDNN matmuls (the fp32 copies above are then
  // freed).
  Packed pqkv, po, p1, p2;
};

// Grows `v` to at least n elements; never shrinks, so steady-state calls do not allocate.
template <typename T>
void Grow(internal::AlignedVector<T>& v, size_t n) {
  if (v.size() < n) v.resize(n);
}

// y[rows x out] = x[rows x in] * w^T, w being a PyTorch Linear weight [out x in].
void Linear(const internal::Blas& blas, const float* x, int rows, int in, const float* w, int out,
            float* y) {
  if (rows <= 0) return;
  blas.Sgemm(false, true, rows, out, in, 1.0f, x, in, w, in, 0.0f, y, out);
}

}  // namespace

// What every encoder of a model reads and none writes: the embeddings and the layers' weights,
// converted and packed once. Encoders made from the same CpuEncoderWeights share them (each has
// its own threads and scratch), so a model's second instance costs its scratch, not a second
// copy of the weights (the default model in bfloat16: ~68 MiB, of which 47 the fp32 word
// embeddings). oneDNN primitives may run on several threads at once (each call brings its own
// scratchpad and memory objects: Bf16Scratch, Int8Scratch).
struct CpuEncoderWeights {
  std::shared_ptr<const ModelBundle> bundle;
  ModelConfig config;
  GemmKind gemm = GemmKind::kFloat32;
  bool bf16_attention = false;  // the layers' GEMMs were packed for the bf16 attention
  std::vector<float> word, pos_type, emb_ln_g, emb_ln_b;
  std::vector<Layer> layers;
};

namespace {

// bfloat16 only: the attention kernel this CPU runs in bf16 (amx_attention.h), or null (fp32).
using AttentionKernel = void (*)(const uint16_t*, size_t, int, int, int, int, float, uint16_t*, int,
                                 internal::AmxAttentionScratch*);
AttentionKernel PickAttention(GemmKind gemm, const ModelConfig& config) {
  if (gemm != GemmKind::kBfloat16 || !internal::AmxAttentionSupports(config.head_dim())) {
    return nullptr;
  }
  if (internal::AmxAttentionAvailable()) return internal::AmxAttention;
  if (internal::Avx512Bf16AttentionAvailable()) return internal::Avx512Bf16Attention;
  return nullptr;
}

absl::Status LoadWeights(CpuEncoderWeights& d) {
  const ModelConfig& config = d.config;
  auto get = [&d](const std::string& name, std::vector<float>* out) -> absl::Status {
    absl::StatusOr<std::vector<float>> t = d.bundle->TensorFloat32(name);
    if (!t.ok()) return t.status();
    *out = *std::move(t);
    return absl::OkStatus();
  };
  const int h = config.hidden_size;
  std::vector<float> pos, type;
  for (auto [name, out] : {std::pair{"embeddings.word_embeddings.weight", &d.word},
                           std::pair{"embeddings.position_embeddings.weight", &pos},
                           std::pair{"embeddings.token_type_embeddings.weight", &type},
                           std::pair{"embeddings.LayerNorm.weight", &d.emb_ln_g},
                           std::pair{"embeddings.LayerNorm.bias", &d.emb_ln_b}}) {
    if (absl::Status s = get(name, out); !s.ok()) return s;
  }
  // Every sequence is a single segment (token type 0): fold that row into the positions.
  d.pos_type.resize(static_cast<size_t>(config.max_seq_length) * h);
  for (int p = 0; p < config.max_seq_length; ++p) {
    for (int i = 0; i < h; ++i) d.pos_type[p * h + i] = pos[p * h + i] + type[i];
  }
  d.layers.resize(config.num_hidden_layers);
  for (int l = 0; l < config.num_hidden_layers; ++l) {
    Layer& L = d.layers[l];
    const std::string p = absl::StrCat("encoder.layer.", l, ".");
    for (const char* qkv : {"query", "key", "value"}) {
      std::vector<float> w, b;
      if (absl::Status s = get(absl::StrCat(p, "attention.self.", qkv, ".weight"), &w); !s.ok()) {
        return s;
      }
      if (absl::Status s = get(absl::StrCat(p, "attention.self.", qkv, ".bias"), &b); !s.ok()) {
        return s;
      }
      L.wqkv.insert(L.wqkv.end(), w.begin(), w.end());
      L.bqkv.insert(L.bqkv.end(), b.begin(), b.end());
    }
    for (auto [name, out] :
         {std::pair{"attention.output.dense.weight", &L.wo},
          std::pair{"attention.output.dense.bias", &L.bo},
          std::pair{"attention.output.LayerNorm.weight", &L.ln1_g},
          std::pair{"attention.output.LayerNorm.bias", &L.ln1_b},
          std::pair{"intermediate.dense.weight", &L.w1},
          std::pair{"intermediate.dense.bias", &L.b1}, std::pair{"output.dense.weight", &L.w2},
          std::pair{"output.dense.bias", &L.b2}, std::pair{"output.LayerNorm.weight", &L.ln2_g},
          std::pair{"output.LayerNorm.bias", &L.ln2_b}}) {
      if (absl::Status s = get(p + name, out); !s.ok()) return s;
    }
    if (d.gemm != GemmKind::kFloat32) {
      const int inter = config.intermediate_size;
      for (auto [w, out, in, to] :
           {std::tuple{&L.wqkv, 3 * h, h, &L.pqkv}, std::tuple{&L.wo, h, h, &L.po},
            std::tuple{&L.w1, inter, h, &L.p1}, std::tuple{&L.w2, h, inter, &L.p2}}) {
        if (d.gemm == GemmKind::kInt8) {
          absl::StatusOr<std::unique_ptr<internal::Int8Linear>> linear =
              internal::Int8Linear::Create(w->data(), out, in);
          if (!linear.ok()) return linear.status();
          to->int8 = *std::move(linear);
          continue;
        }
        internal::Bf16LinearOptions options;
        if (d.bf16_attention) {
          // With the bf16 attention the layer stays in bf16 between GEMMs: the QKV GEMM adds
          // its bias and writes the bf16 rows the attention packs per head
          // (amx_attention.h); the two GEMMs before a LayerNorm add their bias and the
          // residual stream into x inside the kernel (a sum post-op), and the LayerNorm writes
          // the bf16 copy of x the next GEMM reads. GELU is a pass of our own over the first
          // feed-forward GEMM's bf16 output (GeluBf16InPlace): oneDNN 2.6's erf post-op cost
          // 13 % of a 32 x 128 batch; with this pass the batch ran 2-8 % faster (interleaved
          // runs). Its input is rounded to bf16 once more than the post-op's was; the fixture
          // cosine moved by 2e-6.
          if (to == &L.pqkv) options = {.bias = L.bqkv.data(), .bf16_output = true};
          if (to == &L.po) options = {.bias = L.bo.data(), .accumulate = true};
          if (to == &L.p1) options = {.bias = L.b1.data(), .bf16_output = true};
          if (to == &L.p2) options = {.bias = L.b2.data(), .accumulate = true};
        } else if (to == &L.p1) {
          // The feed-forward's first GEMM adds its bias, applies GELU and writes bf16 inside
          // oneDNN's kernel: the second GEMM reads that directly (no passes over rows x 1536).
          options = {.bias = L.b1.data(), .gelu = true, .bf16_output = true};
        }
        absl::StatusOr<std::unique_ptr<internal::Bf16Linear>> linear =
            internal::Bf16Linear::Create(w->data(), out, in, options);
        if (!linear.ok()) return linear.status();
        to->bf16 = *std::move(linear);
      }
      for (auto* w : {&L.wqkv, &L.wo, &L.w1, &L.w2}) std::vector<float>().swap(*w);
    }
  }
  return absl::OkStatus();
}

class CpuEncoder final : public Encoder {
 public:
  CpuEncoder(const internal::Blas* blas, std::shared_ptr<const CpuEncoderWeights> weights,
             int threads, bool idle_priority)
      : blas_(blas),
        weights_(std::move(weights)),
        config_(weights_->config),
        gemm_(weights_->gemm),
        attention_(PickAttention(gemm_, config_)),
        amx_attention_(attention_ != nullptr),
        word_(weights_->word),
        pos_type_(weights_->pos_type),
        emb_ln_g_(weights_->emb_ln_g),
        emb_ln_b_(weights_->emb_ln_b),
        layers_(weights_->layers),
        team_(threads, idle_priority) {
    // Same CPU, same dtype, same config: the layers were packed for this attention.
    TIPPERARY_DCHECK(amx_attention_ == weights_->bf16_attention);
    scores_.resize(team_.size());
    bf16_scratch_.resize(team_.size());
    int8_scratch_.resize(team_.size());
    attention_scratch_.resize(team_.size());
    next_item_.reset(new std::atomic<int>[config_.num_hidden_layers]);
  }

  absl::Status Encode(const std::vector<std::vector<int32_t>>& token_ids,
                      std::vector<float>* out) override {
    const int h = config_.hidden_size;
    const int batch = static_cast<int>(token_ids.size());
    out->assign(static_cast<size_t>(batch) * h, 0.0f);
    if (batch == 0) return absl::OkStatus();

    offsets_.resize(batch + 1);
    offsets_[0] = 0;
    int max_len = 0;
    for (int b = 0; b < batch; ++b) {
      const auto& ids = token_ids[b];
      const int len = static_cast<int>(ids.size());
      if (len == 0 || len > config_.max_seq_length) {
        return absl::InvalidArgumentError(absl::StrCat(
            "sequence ", b, " has ", ids.size(), " tokens; expected 1..", config_.max_seq_length));
      }
      for (int32_t id : ids) {
        if (id < 0 || id >= config_.vocab_size) {
          return absl::InvalidArgumentError(absl::StrCat("sequence ", b, " has token id ", id,
                                                         " outside the vocabulary [0, ",
                                                         config_.vocab_size, ")"));
        }
      }
      offsets_[b + 1] = offsets_[b] + len;
      max_len = std::max(max_len, len);
    }
    const int tokens = offsets_[batch];
    const size_t t = static_cast<size_t>(tokens);
    Grow(x_, t * h);
    // Q, K, V and the attention's output of all rows: bf16 (and x's bf16 copy) for the bf16
    // attention, fp32 for the fp32 one, which also needs a GEMM output chunk per member.
    if (amx_attention_) {
      Grow(qkv16_, t * 3 * h);
      Grow(x16_, t * h);
      Grow(ctx16_, t * h);
    } else {
      Grow(qkv_, t * 3 * h);
      Grow(ctx_, t * h);
      Grow(tmp_, static_cast<size_t>(team_.size()) * kFfnChunkRows * h);
    }
    const size_t inter_chunks =
        static_cast<size_t>(team_.size()) * kFfnChunkRows * config_.intermediate_size;
    if (gemm_ == GemmKind::kBfloat16) {
      Grow(inter16_, inter_chunks);
    } else {
      Grow(inter_, inter_chunks);
    }
    if (!amx_attention_) {
      for (auto& s : scores_) Grow(s, static_cast<size_t>(max_len) * max_len);
    }
    token_ids_ = &token_ids;
    for (int l = 0; l < config_.num_hidden_layers; ++l) next_item_[l].store(0);
    error_ = absl::OkStatus();

    // A small batch runs on the calling thread alone: its work is shorter than what waking the
    // team and meeting at 13 barriers costs (batch 1 x 16 tokens: 1.5 ms alone, 2.5-4 ms on two
    // threads of this shared machine).
    if (tokens < kMinTokensForTeam || team_.size() == 1) {
      // On member 0, which is the calling thread unless the team runs at idle priority.
      auto forward = [&](int member) { Forward(member, 1, batch, tokens, out->data()); };
      team_.Run(forward, 1);
    } else {
      auto forward = [&](int member) { Forward(member, team_.size(), batch, tokens, out->data()); };
      team_.Run(forward);
    }
    token_ids_ = nullptr;
    return error_;
  }

  int hidden_size() const override { return config_.hidden_size; }
  std::string backend_name() const override { return "cpu"; }
  bool idle_priority() const override { return team_.idle_priority(); }
  std::string dtype() const override {
    switch (gemm_) {
      case GemmKind::kBfloat16:
        return "bfloat16";
      case GemmKind::kInt8:
        return "int8";
      case GemmKind::kFloat32:
        break;
    }
    return "float32";
  }

 private:
  // y[rows x out] = x[rows x in] * w^T on this member's thread: oneDNN bf16 on AMX, oneDNN int8
  // (AMX-INT8/VNNI) or fp32 sgemm.
  void Dense(int member, const float* x, int rows, int in, const std::vector<float>& w,
             const Packed& packed, int out, float* y) {
    if (gemm_ == GemmKind::kFloat32) {
      Linear(*blas_, x, rows, in, w.data(), out, y);
      return;
    }
    Check(gemm_ == GemmKind::kInt8 ? packed.int8->Run(x, rows, y, &int8_scratch_[member])
                                   : packed.bf16->Run(x, rows, y, &bf16_scratch_[member]));
  }

  // A failure must not leave the team's barriers: record it, finish the pass, report it.
  void Check(absl::Status s) {
    if (s.ok()) return;
    std::lock_guard<std::mutex> lock(error_mu_);
    if (error_.ok()) error_ = std::move(s);
  }

  // One member's share of the forward pass. Dense layers work on a contiguous slice of the packed
  // tokens (no synchronisation needed between them); attention needs every token of a sequence,
  // so it sits between two barriers and is shared out per (sequence, head).
  // `n` members take part: all of the team, or only member 0 on the caller's thread (no barriers).
  void Forward(int member, int n, int batch, int tokens, float* out) {
    const int h = config_.hidden_size;
    const int inter = config_.intermediate_size;
    const int heads = config_.num_attention_heads;
    const int d = config_.head_dim();
    const float eps = config_.layer_norm_eps;
    auto sync = [&] {
      if (n > 1) team_.Sync();
    };
    // Slices in multiples of 8 rows keep GEMM panels whole.
    const int chunk = ((tokens + n - 1) / n + 7) / 8 * 8;
    const int r0 = std::min(tokens, member * chunk);
    const int r1 = std::min(tokens, r0 + chunk);
    const int rows = r1 - r0;

    // Embeddings of this slice.
    for (int b = 0; b < batch; ++b) {
      const int lo = std::max(r0, offsets_[b]);
      const int hi = std::min(r1, offsets_[b + 1]);
      for (int r = lo; r < hi; ++r) {
        const int pos = r - offsets_[b];
        const float* word = word_.data() + static_cast<size_t>((*token_ids_)[b][pos]) * h;
        const float* pos_type = pos_type_.data() + static_cast<size_t>(pos) * h;
        float* x = x_.data() + static_cast<size_t>(r) * h;
        if (amx_attention_) {  // normalised below, with the layers' bf16 LayerNorm
          std::transform(word, word + h, pos_type, x, std::plus<float>());
          continue;
        }
        std::fill(x, x + h, 0.0f);
        internal::BiasResidualLayerNormRows(x, word, pos_type, emb_ln_g_.data(), emb_ln_b_.data(),
                                            eps, 1, h);
      }
    }
    if (amx_attention_) {
      internal::LayerNormRowsBf16(x_.data() + static_cast<size_t>(r0) * h, emb_ln_g_.data(),
                                  emb_ln_b_.data(), eps, rows, h,
                                  x16_.data() + static_cast<size_t>(r0) * h);
    }

    const float scale = 1.0f / std::sqrt(static_cast<float>(d));
    float* scores = scores_[member].data();
    for (int l = 0; l < config_.num_hidden_layers; ++l) {
      const Layer& L = layers_[l];
      // A team at SCHED_IDLE goes in chunks, so that it can hand its core back between them
      // (IdleYieldPoint: a no-op on other threads); others in one call (~1 % faster at 32 x 128).
      const int qkv_chunk = team_.idle_priority() ? kFfnChunkRows : rows;
      for (int c0 = r0; c0 < r1; c0 += qkv_chunk) {
        const int crows = std::min(qkv_chunk, r1 - c0);
        common::IdleYieldPoint();
        if (amx_attention_) {
          // Bias and bf16 rounding inside the GEMM (LoadWeights); each attention item packs its
          // own head from these rows.
          Check(L.pqkv.bf16->Run(x16_.data() + static_cast<size_t>(c0) * h, crows,
                                 qkv16_.data() + static_cast<size_t>(c0) * 3 * h,
                                 &bf16_scratch_[member]));
        } else {
          float* qkv = qkv_.data() + static_cast<size_t>(c0) * 3 * h;
          Dense(member, x_.data() + static_cast<size_t>(c0) * h, crows, h, L.wqkv, L.pqkv, 3 * h,
                qkv);
          internal::BiasRows(qkv, L.bqkv.data(), crows, 3 * h);
        }
      }
      sync();

      const int items = batch * heads;
      for (int item = next_item_[l].fetch_add(1); item < items; item = next_item_[l].fetch_add(1)) {
        const int b = item / heads;
        const int head = item % heads;
        const int len = offsets_[b + 1] - offsets_[b];
        common::IdleYieldPoint();
        if (amx_attention_) {
          attention_(qkv16_.data() + static_cast<size_t>(offsets_[b]) * 3 * h, 3 * h, len, heads, d,
                     head, scale, ctx16_.data() + static_cast<size_t>(offsets_[b]) * h + head * d,
                     h, &attention_scratch_[member]);
          continue;
        }
        float* ctx = ctx_.data() + static_cast<size_t>(offsets_[b]) * h + head * d;
        const float* q = qkv_.data() + static_cast<size_t>(offsets_[b]) * 3 * h + head * d;
        const float* k = q + h;
        const float* v = q + 2 * h;
        blas_->Sgemm(false, true, len, len, d, scale, q, 3 * h, k, 3 * h, 0.0f, scores, len);
        internal::SoftmaxRows(scores, len, len);
        blas_->Sgemm(false, false, len, d, len, 1.0f, scores, len, v, 3 * h, 0.0f, ctx, h);
      }
      sync();

      // The output projection and the feed-forward block go chunk by chunk so that each chunk's
      // intermediate activations (rows x 1536) stay in L2 between GEMM, GELU and GEMM.
      if (amx_attention_) {
        // bf16 between the GEMMs; bias and residual added inside them (LoadWeights).
        for (int c0 = r0; c0 < r1; c0 += kFfnChunkRows) {
          const int crows = std::min(kFfnChunkRows, r1 - c0);
          float* xc = x_.data() + static_cast<size_t>(c0) * h;
          uint16_t* x16 = x16_.data() + static_cast<size_t>(c0) * h;
          uint16_t* mid16 = inter16_.data() + static_cast<size_t>(member) * kFfnChunkRows * inter;
          internal::Bf16Scratch* scratch = &bf16_scratch_[member];
          common::IdleYieldPoint();
          Check(L.po.bf16->Run(ctx16_.data() + static_cast<size_t>(c0) * h, crows, xc, scratch));
          internal::LayerNormRowsBf16(xc, L.ln1_g.data(), L.ln1_b.data(), eps, crows, h, x16);
          Check(L.p1.bf16->Run(x16, crows, mid16, scratch));
          internal::GeluBf16InPlace(mid16, static_cast<size_t>(crows) * inter);
          common::IdleYieldPoint();
          Check(L.p2.bf16->Run(mid16, crows, xc, scratch));
          internal::LayerNormRowsBf16(xc, L.ln2_g.data(), L.ln2_b.data(), eps, crows, h, x16);
        }
        continue;
      }
      for (int c0 = r0; c0 < r1; c0 += kFfnChunkRows) {
        const int crows = std::min(kFfnChunkRows, r1 - c0);
        float* xc = x_.data() + static_cast<size_t>(c0) * h;
        float* ctx = ctx_.data() + static_cast<size_t>(c0) * h;
        // One chunk per member, like the intermediate one: the GEMM outputs stay in L2 for the
        // LayerNorm pass.
        float* tmp = tmp_.data() + static_cast<size_t>(member) * kFfnChunkRows * h;
        common::IdleYieldPoint();
        Dense(member, ctx, crows, h, L.wo, L.po, h, tmp);
        internal::BiasResidualLayerNormRows(xc, tmp, L.bo.data(), L.ln1_g.data(), L.ln1_b.data(),
                                            eps, crows, h);
        if (gemm_ == GemmKind::kBfloat16) {
          // Bias + GELU + bf16 inside the first GEMM (LoadWeights); the second reads bf16.
          uint16_t* mid16 = inter16_.data() + static_cast<size_t>(member) * kFfnChunkRows * inter;
          Check(L.p1.bf16->Run(xc, crows, mid16, &bf16_scratch_[member]));
          common::IdleYieldPoint();
          Check(L.p2.bf16->Run(mid16, crows, tmp, &bf16_scratch_[member]));
        } else {
          float* mid = inter_.data() + static_cast<size_t>(member) * kFfnChunkRows * inter;
          Dense(member, xc, crows, h, L.w1, L.p1, inter, mid);
          internal::BiasGeluRows(mid, L.b1.data(), crows, inter);
          common::IdleYieldPoint();
          Dense(member, mid, crows, inter, L.w2, L.p2, h, tmp);
        }
        internal::BiasResidualLayerNormRows(xc, tmp, L.b2.data(), L.ln2_g.data(), L.ln2_b.data(),
                                            eps, crows, h);
      }
    }
    sync();

    for (int b = member; b < batch; b += n) {
      float* dst = out + static_cast<size_t>(b) * h;
      const float* first = x_.data() + static_cast<size_t>(offsets_[b]) * h;
      if (config_.pooling == PoolingMode::kCls) {
        std::copy(first, first + h, dst);
        continue;
      }
      internal::MeanRows(first, offsets_[b + 1] - offsets_[b], h, dst);
    }
  }

  const internal::Blas* blas_;
  const std::shared_ptr<const CpuEncoderWeights> weights_;  // shared with the other instances
  const ModelConfig& config_;
  // Dense layers in fp32 (OpenBLAS), bf16 on AMX (fp32 accumulation) or int8 (s32 accumulation)
  // via oneDNN.
  const GemmKind gemm_;
  // bfloat16 only: attention in bf16 too (amx_attention.h), on AMX tiles or, without AMX, with
  // AVX512-BF16 dot products; else (null) fp32 OpenBLAS + softmax (int8 keeps fp32 attention: its
  // accuracy figures were measured that way).
  const AttentionKernel attention_;
  const bool amx_attention_;  // attention_ != nullptr: the QKV GEMM writes bf16 rows (qkv16_)
  // weights_'s, by their old names.
  const std::vector<float>& word_;
  const std::vector<float>& pos_type_;
  const std::vector<float>& emb_ln_g_;
  const std::vector<float>& emb_ln_b_;
  const std::vector<Layer>& layers_;
  ThreadTeam team_;

  // Per-call state and scratch (grow-only).
  const std::vector<std::vector<int32_t>>* token_ids_ = nullptr;
  std::vector<int> offsets_;
  // Activations: cache-line aligned, as AMX tile loads want (aligned_vector.h).
  internal::AlignedVector<float> x_, qkv_, ctx_, tmp_, inter_;
  internal::AlignedVector<uint16_t>
      inter16_;  // bfloat16: the feed-forward's bf16 activations, per member
  // bf16 attention only: the QKV projection of every token, bias added, rounded to bf16.
  internal::AlignedVector<uint16_t> qkv16_;
  // ... and the residual stream and the attention's output in bf16, the GEMMs' inputs.
  internal::AlignedVector<uint16_t> x16_, ctx16_;
  std::vector<internal::AlignedVector<float>> scores_;            // one len x len block per member
  std::vector<internal::Bf16Scratch> bf16_scratch_;               // one per member
  std::vector<internal::Int8Scratch> int8_scratch_;               // one per member
  std::vector<internal::AmxAttentionScratch> attention_scratch_;  // one per member
  std::mutex error_mu_;  // Guards error_ while the team runs.
  absl::Status error_;   // The first failure of this Encode, from any member.
  std::unique_ptr<std::atomic<int>[]> next_item_;
};

}  // namespace

absl::StatusOr<std::shared_ptr<const CpuEncoderWeights>> LoadCpuEncoderWeights(
    std::shared_ptr<const ModelBundle> bundle, const std::string& dtype) {
  if (bundle == nullptr) return absl::InvalidArgumentError("CreateCpuEncoder: null model bundle");
  GemmKind gemm = GemmKind::kFloat32;
  if (dtype == "bfloat16") {
    gemm = GemmKind::kBfloat16;
    if (!internal::Bf16MatmulNative()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "dtype bfloat16 on the CPU needs AVX512-BF16 (Cooper Lake, AMD Zen 4 or newer) or Intel "
          "AMX (Sapphire Rapids or newer, Linux >= 5.16); oneDNN picks: ",
          internal::Bf16MatmulInfo()));
    }
  } else if (dtype == "int8") {
    gemm = GemmKind::kInt8;
    if (!internal::Int8MatmulUsable()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "dtype int8 on the CPU needs Intel AMX-INT8 (Sapphire Rapids or newer) or AVX-512 VNNI "
          "(Cascade Lake or newer); oneDNN picks: ",
          internal::Int8MatmulInfo()));
    }
  } else if (dtype != "float32") {
    return absl::InvalidArgumentError(
        absl::StrCat("the CPU backend computes in float32, bfloat16 or int8, not \"", dtype, "\""));
  }
  auto weights = std::make_shared<CpuEncoderWeights>();
  weights->bundle = std::move(bundle);
  weights->config = weights->bundle->config();
  weights->gemm = gemm;
  weights->bf16_attention = PickAttention(gemm, weights->config) != nullptr;
  if (absl::Status s = LoadWeights(*weights); !s.ok()) return s;
  return std::shared_ptr<const CpuEncoderWeights>(std::move(weights));
}

absl::StatusOr<std::unique_ptr<Encoder>> CreateCpuEncoder(
    std::shared_ptr<const CpuEncoderWeights> weights, const CpuEncoderOptions& options) {
  if (weights == nullptr) return absl::InvalidArgumentError("CreateCpuEncoder: null weights");
  int threads = options.threads;
  if (threads < 0) {
    return absl::InvalidArgumentError(absl::StrCat("threads must be >= 0, got ", threads));
  }
  if (threads == 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  absl::StatusOr<const internal::Blas*> blas = internal::LoadBlas();
  if (!blas.ok()) return blas.status();
  return std::unique_ptr<Encoder>(
      std::make_unique<CpuEncoder>(*blas, std::move(weights), threads, options.idle_priority));
}

absl::StatusOr<std::unique_ptr<Encoder>> CreateCpuEncoder(std::shared_ptr<const ModelBundle> bundle,
                                                          const CpuEncoderOptions& options) {
  absl::StatusOr<std::shared_ptr<const CpuEncoderWeights>> weights =
      LoadCpuEncoderWeights(std::move(bundle), options.dtype);
  if (!weights.ok()) return weights.status();
  return CreateCpuEncoder(*std::move(weights), options);
}

bool CpuEncoderSupportsBfloat16() { return internal::Bf16MatmulNative(); }

bool CpuEncoderSupportsInt8() { return internal::Int8MatmulUsable(); }

std::string CpuEncoderKernelInfo() {
  absl::StatusOr<const internal::Blas*> blas = internal::LoadBlas();
  if (!blas.ok()) return std::string(blas.status().message());
  return absl::StrCat("OpenBLAS ", (*blas)->core.empty() ? "?" : (*blas)->core);
}

}  // namespace tipperary::model
