#include "tipperary/kernels/cuda_encoder.h"

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "tipperary/kernels/fused_kernels.h"
#include "tipperary/kernels/fused_math.h"
#include "tipperary/kernels/kernels.h"
#include "tipperary/kernels/math.h"

namespace tipperary::kernels {
namespace {

#define TIPPERARY_CUDA_RETURN(expr)                                                             \
  do {                                                                                          \
    const cudaError_t tipperary_err = (expr);                                                   \
    if (tipperary_err != cudaSuccess) {                                                         \
      return absl::InternalError(absl::StrCat(#expr, ": ", cudaGetErrorString(tipperary_err))); \
    }                                                                                           \
  } while (0)

#define TIPPERARY_CUBLAS_RETURN(expr)                                                             \
  do {                                                                                            \
    const cublasStatus_t tipperary_st = (expr);                                                   \
    if (tipperary_st != CUBLAS_STATUS_SUCCESS) {                                                  \
      return absl::InternalError(absl::StrCat(#expr, ": ", cublasGetStatusString(tipperary_st))); \
    }                                                                                             \
  } while (0)

constexpr int kSeqAlign = 8;  // tensor-core friendly leading dimensions
constexpr size_t kCublasWorkspaceBytes = size_t{32} << 20;

int RoundUp(int v, int m) { return (v + m - 1) / m * m; }

struct DeviceFree {
  void operator()(void* p) const { cudaFree(p); }
};
using DevicePtr = std::unique_ptr<void, DeviceFree>;

struct PinnedFree {
  void operator()(void* p) const { cudaFreeHost(p); }
};
using PinnedPtr = std::unique_ptr<void, PinnedFree>;

struct LayerDevice {
  void* qkv_w;  // [3*hidden, hidden]
  float* qkv_b;
  void* attn_out_w;
  float* attn_out_b;
  float* attn_ln_gamma;
  float* attn_ln_beta;
  void* ffn_in_w;
  float* ffn_in_b;
  void* ffn_out_w;
  float* ffn_out_b;
  float* ffn_ln_gamma;
  float* ffn_ln_beta;
};

class CudaEncoder final : public model::Encoder {
 public:
  CudaEncoder(const CudaEncoderOptions& options, const BertWeightsHost& w, DType dtype, bool fused)
      : options_(options),
        dtype_(dtype),
        fused_(fused),
        layers_(w.layers),
        hidden_(w.hidden),
        heads_(w.heads),
        head_dim_(w.hidden / w.heads),
        intermediate_(w.intermediate),
        vocab_(w.vocab),
        eps_(w.ln_eps),
        cls_pooling_(w.cls_pooling) {}

  ~CudaEncoder() override {
    cudaSetDevice(options_.device);
    if (stream_ != nullptr) cudaStreamSynchronize(stream_);
    for (cudaEvent_t& e : input_free_) {
      if (e != nullptr) cudaEventDestroy(e);
    }
    for (cudaEvent_t& e : output_ready_) {
      if (e != nullptr) cudaEventDestroy(e);
    }
    if (cublas_ != nullptr) cublasDestroy(cublas_);
    allocations_.clear();
    pinned_.clear();
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
  }

  absl::Status Init(const BertWeightsHost& w) {
    TIPPERARY_CUDA_RETURN(cudaSetDevice(options_.device));
    TIPPERARY_CUDA_RETURN(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    for (int i = 0; i < 2; ++i) {
      TIPPERARY_CUDA_RETURN(cudaEventCreateWithFlags(&input_free_[i], cudaEventDisableTiming));
      TIPPERARY_CUDA_RETURN(cudaEventCreateWithFlags(&output_ready_[i], cudaEventDisableTiming));
    }
    TIPPERARY_CUBLAS_RETURN(cublasCreate(&cublas_));
    TIPPERARY_CUBLAS_RETURN(cublasSetStream(cublas_, stream_));

    max_seq_ = RoundUp(std::min(options_.max_seq_len, w.max_position), kSeqAlign);
    max_seq_real_ = std::min(options_.max_seq_len, w.max_position);
    max_tokens_ = std::max(options_.max_batch_tokens, max_seq_);
    max_batch_ = options_.max_batch_size;
    const int64_t per_sequence_scores = int64_t{heads_} * max_seq_ * max_seq_ * 4;
    const int64_t scores_bytes = std::max(per_sequence_scores, options_.attention_workspace_bytes);

    const size_t t = static_cast<size_t>(max_tokens_);
    const size_t h = static_cast<size_t>(hidden_);
    void* workspace = nullptr;
    TIPPERARY_CUDA_RETURN(Alloc(kCublasWorkspaceBytes, &workspace));
    TIPPERARY_CUBLAS_RETURN(cublasSetWorkspace(cublas_, workspace, kCublasWorkspaceBytes));
    TIPPERARY_CUDA_RETURN(Alloc(t * h * 2, &x_));
    TIPPERARY_CUDA_RETURN(Alloc(t * 3 * h * 2, &qkv_));
    TIPPERARY_CUDA_RETURN(Alloc(t * h * 2, &ctx_));
    TIPPERARY_CUDA_RETURN(Alloc(t * h * 2, &tmp_));
    TIPPERARY_CUDA_RETURN(Alloc(t * static_cast<size_t>(intermediate_) * 2, &inter_));
    if (!fused_) {  // the fused path has no split Q/K/V planes and no score matrix
      TIPPERARY_CUDA_RETURN(Alloc(t * 3 * h * 2, &qkv_split_));
      TIPPERARY_CUDA_RETURN(Alloc(t * h * 2, &ctx_heads_));
      void* scores = nullptr;
      TIPPERARY_CUDA_RETURN(Alloc(static_cast<size_t>(scores_bytes), &scores));
      scores_ = static_cast<float*>(scores);
      scores_capacity_floats_ = scores_bytes / 4;
    }
    // Reference: ids [batch*seq], lengths [batch]. Fused: ids, positions [tokens],
    // cu_seqlens [batch + 1], tiles [2 * MaxPackedTiles].
    const size_t in_ints = fused_ ? 2 * t + max_batch_ + 1 +
                                        2 * static_cast<size_t>(MaxPackedTiles(
                                                max_tokens_, max_batch_, kAttentionQueryTile))
                                  : t + max_batch_;
    void* in = nullptr;
    TIPPERARY_CUDA_RETURN(Alloc(in_ints * sizeof(int32_t), &in));
    d_ids_ = static_cast<int32_t*>(in);
    void* out = nullptr;
    TIPPERARY_CUDA_RETURN(Alloc(static_cast<size_t>(max_batch_) * h * sizeof(float), &out));
    d_out_ = static_cast<float*>(out);
    for (int i = 0; i < 2; ++i) {
      void* p = nullptr;
      TIPPERARY_CUDA_RETURN(AllocPinned(in_ints * sizeof(int32_t), &p));
      h_in_[i] = static_cast<int32_t*>(p);
      TIPPERARY_CUDA_RETURN(AllocPinned(static_cast<size_t>(max_batch_) * h * sizeof(float), &p));
      h_out_[i] = static_cast<float*>(p);
    }

    // Weights: matrices in the activation dtype, vectors in fp32.
    TIPPERARY_CUDA_RETURN(UploadMatrix({w.word_emb}, size_t(w.vocab) * h, &word_emb_));
    TIPPERARY_CUDA_RETURN(UploadMatrix({w.pos_emb}, size_t(w.max_position) * h, &pos_emb_));
    TIPPERARY_CUDA_RETURN(UploadMatrix({w.type_emb}, size_t(w.type_vocab) * h, &type_emb_));
    TIPPERARY_CUDA_RETURN(UploadVector({w.emb_ln_gamma}, h, &emb_ln_gamma_));
    TIPPERARY_CUDA_RETURN(UploadVector({w.emb_ln_beta}, h, &emb_ln_beta_));
    const size_t hi = h * static_cast<size_t>(intermediate_);
    for (const BertLayerWeightsHost& l : w.layer) {
      LayerDevice d{};
      TIPPERARY_CUDA_RETURN(UploadMatrix({l.query_w, l.key_w, l.value_w}, h * h, &d.qkv_w));
      TIPPERARY_CUDA_RETURN(UploadVector({l.query_b, l.key_b, l.value_b}, h, &d.qkv_b));
      TIPPERARY_CUDA_RETURN(UploadMatrix({l.attn_out_w}, h * h, &d.attn_out_w));
      TIPPERARY_CUDA_RETURN(UploadVector({l.attn_out_b}, h, &d.attn_out_b));
      TIPPERARY_CUDA_RETURN(UploadVector({l.attn_ln_gamma}, h, &d.attn_ln_gamma));
      TIPPERARY_CUDA_RETURN(UploadVector({l.attn_ln_beta}, h, &d.attn_ln_beta));
      TIPPERARY_CUDA_RETURN(UploadMatrix({l.ffn_in_w}, hi, &d.ffn_in_w));
      TIPPERARY_CUDA_RETURN(UploadVector({l.ffn_in_b}, intermediate_, &d.ffn_in_b));
      TIPPERARY_CUDA_RETURN(UploadMatrix({l.ffn_out_w}, hi, &d.ffn_out_w));
      TIPPERARY_CUDA_RETURN(UploadVector({l.ffn_out_b}, h, &d.ffn_out_b));
      TIPPERARY_CUDA_RETURN(UploadVector({l.ffn_ln_gamma}, h, &d.ffn_ln_gamma));
      TIPPERARY_CUDA_RETURN(UploadVector({l.ffn_ln_beta}, h, &d.ffn_ln_beta));
      layer_.push_back(d);
    }
    TIPPERARY_CUDA_RETURN(cudaDeviceSynchronize());
    return absl::OkStatus();
  }

  absl::Status Encode(const std::vector<std::vector<int32_t>>& token_ids,
                      std::vector<float>* out) override {
    const size_t n = token_ids.size();
    out->assign(n * hidden_, 0.0f);
    for (size_t i = 0; i < n; ++i) {
      const auto& row = token_ids[i];
      if (row.empty()) return absl::InvalidArgumentError(absl::StrCat("sequence ", i, " is empty"));
      if (row.size() > static_cast<size_t>(max_seq_real_)) {
        return absl::InvalidArgumentError(absl::StrCat("sequence ", i, " has ", row.size(),
                                                       " tokens; the limit is ", max_seq_real_));
      }
      for (int32_t id : row) {
        if (id < 0 || id >= vocab_) {
          return absl::InvalidArgumentError(
              absl::StrCat("sequence ", i, " has token id ", id, " outside [0, ", vocab_, ")"));
        }
      }
    }
    if (n == 0) return absl::OkStatus();
    TIPPERARY_CUDA_RETURN(cudaSetDevice(options_.device));

    // Greedy passes in request order; two staging slots so that packing pass k+1 and unpacking
    // pass k-1 on the host overlap the GPU's work on pass k.
    struct Pass {
      size_t begin = 0;
      size_t count = 0;
    };
    Pass pending[2];
    bool has_pending[2] = {false, false};
    size_t next = 0;
    int slot = 0;
    while (next < n) {
      Pass pass{next, 0};
      if (fused_) {
        // Packed: as many sequences as fit in max_batch_tokens real tokens (no padding).
        int64_t tokens = 0;
        while (next < n && pass.count < static_cast<size_t>(max_batch_) &&
               tokens + static_cast<int64_t>(token_ids[next].size()) <= max_tokens_) {
          tokens += static_cast<int64_t>(token_ids[next].size());
          ++pass.count;
          ++next;
        }
        TIPPERARY_CUDA_RETURN(cudaEventSynchronize(input_free_[slot]));
        if (has_pending[slot]) {
          TIPPERARY_CUDA_RETURN(Collect(slot, pending[slot], out));
          has_pending[slot] = false;
        }
        if (absl::Status s = EnqueuePacked(token_ids, pass.begin, pass.count, slot); !s.ok()) {
          cudaStreamSynchronize(stream_);
          return s;
        }
        pending[slot] = pass;
        has_pending[slot] = true;
        slot ^= 1;
        continue;
      }
      int seq = 0;
      while (next < n && pass.count < static_cast<size_t>(max_batch_)) {
        const int s = RoundUp(static_cast<int>(token_ids[next].size()), kSeqAlign);
        const int new_seq = std::max(seq, s);
        if (static_cast<int64_t>(new_seq) * static_cast<int64_t>(pass.count + 1) > max_tokens_) {
          break;
        }
        seq = new_seq;
        ++pass.count;
        ++next;
      }
      // The slot's previous input copy must be done before its pinned buffer is rewritten.
      TIPPERARY_CUDA_RETURN(cudaEventSynchronize(input_free_[slot]));
      if (has_pending[slot]) {
        TIPPERARY_CUDA_RETURN(Collect(slot, pending[slot], out));
        has_pending[slot] = false;
      }
      const int batch = static_cast<int>(pass.count);
      int32_t* ids = h_in_[slot];
      int32_t* lengths = ids + static_cast<size_t>(batch) * seq;
      for (int b = 0; b < batch; ++b) {
        const auto& row = token_ids[pass.begin + b];
        std::memcpy(ids + static_cast<size_t>(b) * seq, row.data(), row.size() * sizeof(int32_t));
        std::fill(ids + static_cast<size_t>(b) * seq + row.size(),
                  ids + static_cast<size_t>(b + 1) * seq, 0);
        lengths[b] = static_cast<int32_t>(row.size());
      }
      const size_t in_count = static_cast<size_t>(batch) * seq + batch;
      TIPPERARY_CUDA_RETURN(cudaMemcpyAsync(d_ids_, ids, in_count * sizeof(int32_t),
                                            cudaMemcpyHostToDevice, stream_));
      TIPPERARY_CUDA_RETURN(cudaEventRecord(input_free_[slot], stream_));
      if (absl::Status s = Forward(batch, seq, d_ids_ + static_cast<size_t>(batch) * seq);
          !s.ok()) {
        cudaStreamSynchronize(stream_);
        return s;
      }
      TIPPERARY_CUDA_RETURN(cudaMemcpyAsync(h_out_[slot], d_out_,
                                            static_cast<size_t>(batch) * hidden_ * sizeof(float),
                                            cudaMemcpyDeviceToHost, stream_));
      TIPPERARY_CUDA_RETURN(cudaEventRecord(output_ready_[slot], stream_));
      pending[slot] = pass;
      has_pending[slot] = true;
      slot ^= 1;
    }
    for (int s = 0; s < 2; ++s) {
      if (has_pending[s]) TIPPERARY_CUDA_RETURN(Collect(s, pending[s], out));
    }
    return absl::OkStatus();
  }

  int hidden_size() const override { return hidden_; }
  std::string backend_name() const override { return "cuda"; }
  std::string dtype() const override { return dtype_ == DType::kFloat16 ? "float16" : "bfloat16"; }

 private:
  template <typename PassT>
  cudaError_t Collect(int slot, const PassT& pass, std::vector<float>* out) {
    const cudaError_t err = cudaEventSynchronize(output_ready_[slot]);
    if (err != cudaSuccess) return err;
    std::memcpy(out->data() + pass.begin * hidden_, h_out_[slot],
                pass.count * hidden_ * sizeof(float));
    return cudaSuccess;
  }

  cudaDataType_t CudaType() const { return dtype_ == DType::kFloat16 ? CUDA_R_16F : CUDA_R_16BF; }

  // y[rows, out] = x[rows, in] * w^T with w in Linear layout [out, in] (cuBLAS is column-major:
  // this is y^T = w * x^T with w read transposed).
  absl::Status Linear(const void* x, const void* w, int rows, int in, int out_dim, void* y) {
    const float one = 1.0f;
    const float zero = 0.0f;
    TIPPERARY_CUBLAS_RETURN(cublasGemmEx(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, out_dim, rows, in, &one,
                                         w, CudaType(), in, x, CudaType(), in, &zero, y, CudaType(),
                                         out_dim, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    return absl::OkStatus();
  }

  void* At(void* base, size_t elements) const { return static_cast<char*>(base) + elements * 2; }

  absl::Status Attention(int batch, int seq, const int32_t* lengths) {
    const size_t head_elems = static_cast<size_t>(seq) * head_dim_;  // one (b, h) of q/k/v
    const size_t plane = static_cast<size_t>(batch) * heads_ * head_elems;
    void* q = qkv_split_;
    void* k = At(qkv_split_, plane);
    void* v = At(qkv_split_, 2 * plane);
    const int64_t per_sequence = int64_t{heads_} * seq * seq;
    // The softmax grid's y dimension (batch x heads) is limited to 65535.
    const int64_t fit = std::min<int64_t>(scores_capacity_floats_ / per_sequence, 65535 / heads_);
    const int chunk = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(batch, fit)));
    const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim_));
    const float one = 1.0f;
    const float zero = 0.0f;
    for (int b0 = 0; b0 < batch; b0 += chunk) {
      const int bc = std::min(chunk, batch - b0);
      const size_t offset = static_cast<size_t>(b0) * heads_ * head_elems;
      // scores[bh][i][j] = q_i . k_j : column-major C[j, i] = K[j, :] . Q[i, :].
      TIPPERARY_CUBLAS_RETURN(cublasGemmStridedBatchedEx(
          cublas_, CUBLAS_OP_T, CUBLAS_OP_N, seq, seq, head_dim_, &one, At(k, offset), CudaType(),
          head_dim_, static_cast<long long>(head_elems), At(q, offset), CudaType(), head_dim_,
          static_cast<long long>(head_elems), &zero, scores_, CUDA_R_32F, seq,
          static_cast<long long>(seq) * seq, bc * heads_, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
      TIPPERARY_CUDA_RETURN(
          LaunchMaskedSoftmax(dtype_, scores_, lengths + b0, bc, heads_, seq, scale, stream_));
      // ctx[bh][i][:] = sum_j P[i][j] v_j, P being the in-place dtype matrix (ld 2*seq).
      TIPPERARY_CUBLAS_RETURN(cublasGemmStridedBatchedEx(
          cublas_, CUBLAS_OP_N, CUBLAS_OP_N, head_dim_, seq, seq, &one, At(v, offset), CudaType(),
          head_dim_, static_cast<long long>(head_elems), scores_, CudaType(), 2 * seq,
          2LL * seq * seq, &zero, At(ctx_heads_, offset), CudaType(), head_dim_,
          static_cast<long long>(head_elems), bc * heads_, CUBLAS_COMPUTE_32F,
          CUBLAS_GEMM_DEFAULT));
    }
    return absl::OkStatus();
  }

  // Packs sequences [begin, begin + count) into staging slot `slot`, copies them up, runs the
  // fused forward pass and queues the copy back; Collect reads the result.
  absl::Status EnqueuePacked(const std::vector<std::vector<int32_t>>& token_ids, size_t begin,
                             size_t count, int slot) {
    const int batch = static_cast<int>(count);
    int32_t* ids = h_in_[slot];
    int tokens = 0;
    std::vector<int32_t>& lengths = pack_lengths_;
    lengths.resize(count);
    for (int b = 0; b < batch; ++b) {
      const auto& row = token_ids[begin + b];
      std::memcpy(ids + tokens, row.data(), row.size() * sizeof(int32_t));
      lengths[b] = static_cast<int32_t>(row.size());
      tokens += lengths[b];
    }
    int32_t* positions = ids + tokens;
    int32_t* cu_seqlens = positions + tokens;
    int32_t* tiles = cu_seqlens + batch + 1;
    const int tile_count =
        WritePackedLayout(lengths.data(), batch, kAttentionQueryTile, cu_seqlens, positions, tiles);
    const size_t in_count = static_cast<size_t>(tiles + 2 * tile_count - ids);
    TIPPERARY_CUDA_RETURN(
        cudaMemcpyAsync(d_ids_, ids, in_count * sizeof(int32_t), cudaMemcpyHostToDevice, stream_));
    TIPPERARY_CUDA_RETURN(cudaEventRecord(input_free_[slot], stream_));
    const int32_t* d_positions = d_ids_ + tokens;
    const int32_t* d_cu = d_positions + tokens;
    const int32_t* d_tiles = d_cu + batch + 1;
    if (absl::Status s = ForwardFused(batch, tokens, tile_count, d_positions, d_cu, d_tiles);
        !s.ok()) {
      return s;
    }
    TIPPERARY_CUDA_RETURN(cudaMemcpyAsync(h_out_[slot], d_out_,
                                          static_cast<size_t>(batch) * hidden_ * sizeof(float),
                                          cudaMemcpyDeviceToHost, stream_));
    TIPPERARY_CUDA_RETURN(cudaEventRecord(output_ready_[slot], stream_));
    return absl::OkStatus();
  }

  // The fused variant: rows are real tokens only; Q/K/V are read by the attention kernel from
  // the QKV GEMM's output (bias added there), and every bias is fused into the next kernel.
  absl::Status ForwardFused(int batch, int tokens, int tile_count, const int32_t* d_positions,
                            const int32_t* d_cu, const int32_t* d_tiles) {
    TIPPERARY_CUDA_RETURN(LaunchPackedEmbeddingLayerNorm(
        dtype_, d_ids_, d_positions, tokens, word_emb_, pos_emb_, type_emb_, emb_ln_gamma_,
        emb_ln_beta_, hidden_, eps_, x_, stream_));
    for (const LayerDevice& l : layer_) {
      if (auto s = Linear(x_, l.qkv_w, tokens, hidden_, 3 * hidden_, qkv_); !s.ok()) return s;
      TIPPERARY_CUDA_RETURN(LaunchVarlenAttention(dtype_, qkv_, l.qkv_b, d_cu, d_tiles, tile_count,
                                                  heads_, head_dim_, ctx_, stream_));
      if (auto s = Linear(ctx_, l.attn_out_w, tokens, hidden_, hidden_, tmp_); !s.ok()) return s;
      TIPPERARY_CUDA_RETURN(LaunchWarpBiasResidualLayerNorm(dtype_, tmp_, l.attn_out_b, x_,
                                                            l.attn_ln_gamma, l.attn_ln_beta, tokens,
                                                            hidden_, eps_, x_, stream_));
      if (auto s = Linear(x_, l.ffn_in_w, tokens, hidden_, intermediate_, inter_); !s.ok()) {
        return s;
      }
      TIPPERARY_CUDA_RETURN(
          LaunchBiasGeluVec(dtype_, inter_, l.ffn_in_b, tokens, intermediate_, stream_));
      if (auto s = Linear(inter_, l.ffn_out_w, tokens, intermediate_, hidden_, tmp_); !s.ok()) {
        return s;
      }
      TIPPERARY_CUDA_RETURN(LaunchWarpBiasResidualLayerNorm(dtype_, tmp_, l.ffn_out_b, x_,
                                                            l.ffn_ln_gamma, l.ffn_ln_beta, tokens,
                                                            hidden_, eps_, x_, stream_));
    }
    TIPPERARY_CUDA_RETURN(LaunchPackedMeanPool(dtype_, x_, d_cu, batch, hidden_, cls_pooling_,
                                               options_.normalize, d_out_, stream_));
    return absl::OkStatus();
  }

  absl::Status Forward(int batch, int seq, const int32_t* d_lengths) {
    const int tokens = batch * seq;
    const size_t plane = static_cast<size_t>(tokens) * hidden_;
    TIPPERARY_CUDA_RETURN(LaunchEmbeddingLayerNorm(dtype_, d_ids_, nullptr, tokens, seq, word_emb_,
                                                   pos_emb_, type_emb_, emb_ln_gamma_, emb_ln_beta_,
                                                   hidden_, eps_, x_, stream_));
    for (const LayerDevice& l : layer_) {
      if (auto s = Linear(x_, l.qkv_w, tokens, hidden_, 3 * hidden_, qkv_); !s.ok()) return s;
      TIPPERARY_CUDA_RETURN(LaunchSplitQkvBias(dtype_, qkv_, l.qkv_b, batch, seq, heads_, head_dim_,
                                               qkv_split_, At(qkv_split_, plane),
                                               At(qkv_split_, 2 * plane), stream_));
      if (auto s = Attention(batch, seq, d_lengths); !s.ok()) return s;
      TIPPERARY_CUDA_RETURN(
          LaunchMergeHeads(dtype_, ctx_heads_, batch, seq, heads_, head_dim_, ctx_, stream_));
      if (auto s = Linear(ctx_, l.attn_out_w, tokens, hidden_, hidden_, tmp_); !s.ok()) return s;
      TIPPERARY_CUDA_RETURN(LaunchBiasResidualLayerNorm(dtype_, tmp_, l.attn_out_b, x_,
                                                        l.attn_ln_gamma, l.attn_ln_beta, tokens,
                                                        hidden_, eps_, x_, stream_));
      if (auto s = Linear(x_, l.ffn_in_w, tokens, hidden_, intermediate_, inter_); !s.ok()) {
        return s;
      }
      TIPPERARY_CUDA_RETURN(
          LaunchBiasGelu(dtype_, inter_, l.ffn_in_b, tokens, intermediate_, stream_));
      if (auto s = Linear(inter_, l.ffn_out_w, tokens, intermediate_, hidden_, tmp_); !s.ok()) {
        return s;
      }
      TIPPERARY_CUDA_RETURN(LaunchBiasResidualLayerNorm(dtype_, tmp_, l.ffn_out_b, x_,
                                                        l.ffn_ln_gamma, l.ffn_ln_beta, tokens,
                                                        hidden_, eps_, x_, stream_));
    }
    TIPPERARY_CUDA_RETURN(LaunchMaskedMeanPool(dtype_, x_, d_lengths, batch, seq, hidden_,
                                               cls_pooling_, options_.normalize, d_out_, stream_));
    return absl::OkStatus();
  }

  cudaError_t Alloc(size_t bytes, void** p) {
    const cudaError_t err = cudaMalloc(p, bytes);
    if (err == cudaSuccess) allocations_.emplace_back(*p);
    return err;
  }

  cudaError_t AllocPinned(size_t bytes, void** p) {
    const cudaError_t err = cudaMallocHost(p, bytes);
    if (err == cudaSuccess) pinned_.emplace_back(*p);
    return err;
  }

  // Concatenates the parts (each `elements` long), converts to the dtype and uploads.
  cudaError_t UploadMatrix(std::initializer_list<const float*> parts, size_t elements, void** dst) {
    std::vector<uint16_t> host;
    host.reserve(parts.size() * elements);
    for (const float* p : parts) {
      for (size_t i = 0; i < elements; ++i) {
        host.push_back(dtype_ == DType::kFloat16 ? FloatToHalfBits(p[i]) : FloatToBf16Bits(p[i]));
      }
    }
    cudaError_t err = Alloc(host.size() * 2, dst);
    if (err != cudaSuccess) return err;
    return cudaMemcpy(*dst, host.data(), host.size() * 2, cudaMemcpyHostToDevice);
  }

  cudaError_t UploadVector(std::initializer_list<const float*> parts, size_t elements,
                           float** dst) {
    std::vector<float> host;
    host.reserve(parts.size() * elements);
    for (const float* p : parts) host.insert(host.end(), p, p + elements);
    void* d = nullptr;
    cudaError_t err = Alloc(host.size() * sizeof(float), &d);
    if (err != cudaSuccess) return err;
    *dst = static_cast<float*>(d);
    return cudaMemcpy(d, host.data(), host.size() * sizeof(float), cudaMemcpyHostToDevice);
  }

  const CudaEncoderOptions options_;
  const DType dtype_;
  const bool fused_;
  const int layers_;
  const int hidden_;
  const int heads_;
  const int head_dim_;
  const int intermediate_;
  const int vocab_;
  const float eps_;
  const bool cls_pooling_;

  int max_seq_ = 0;       // padded capacity
  int max_seq_real_ = 0;  // longest accepted sequence
  int max_tokens_ = 0;
  int max_batch_ = 0;

  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  cudaEvent_t input_free_[2] = {nullptr, nullptr};
  cudaEvent_t output_ready_[2] = {nullptr, nullptr};
  std::vector<DevicePtr> allocations_;
  std::vector<PinnedPtr> pinned_;

  void* word_emb_ = nullptr;
  void* pos_emb_ = nullptr;
  void* type_emb_ = nullptr;
  float* emb_ln_gamma_ = nullptr;
  float* emb_ln_beta_ = nullptr;
  std::vector<LayerDevice> layer_;

  void* x_ = nullptr;          // [tokens, hidden] layer input/output
  void* qkv_ = nullptr;        // [tokens, 3*hidden]
  void* qkv_split_ = nullptr;  // q, k, v planes, each [batch, heads, seq, head_dim]
  void* ctx_heads_ = nullptr;  // [batch, heads, seq, head_dim]
  void* ctx_ = nullptr;        // [tokens, hidden]
  void* tmp_ = nullptr;        // [tokens, hidden] GEMM output before bias+residual+LN
  void* inter_ = nullptr;      // [tokens, intermediate]
  float* scores_ = nullptr;
  int64_t scores_capacity_floats_ = 0;
  int32_t* d_ids_ = nullptr;           // see in_ints in Init
  std::vector<int32_t> pack_lengths_;  // EnqueuePacked's scratch, kept to avoid reallocating
  float* d_out_ = nullptr;
  int32_t* h_in_[2] = {nullptr, nullptr};
  float* h_out_[2] = {nullptr, nullptr};
};

absl::Status ValidateWeights(const BertWeightsHost& w) {
  if (w.layers <= 0 || w.hidden <= 0 || w.heads <= 0 || w.intermediate <= 0 || w.vocab <= 0 ||
      w.max_position <= 0 || w.type_vocab <= 0) {
    return absl::InvalidArgumentError("model dimensions must be positive");
  }
  if (w.hidden % w.heads != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("hidden ", w.hidden, " is not a multiple of heads ", w.heads));
  }
  if (w.hidden > 8192) return absl::InvalidArgumentError("hidden > 8192 is not supported");
  if (static_cast<int>(w.layer.size()) != w.layers) {
    return absl::InvalidArgumentError(
        absl::StrCat("layers = ", w.layers, " but ", w.layer.size(), " layer weight sets given"));
  }
  if (!w.word_emb || !w.pos_emb || !w.type_emb || !w.emb_ln_gamma || !w.emb_ln_beta) {
    return absl::InvalidArgumentError("missing embedding weights");
  }
  for (size_t i = 0; i < w.layer.size(); ++i) {
    const BertLayerWeightsHost& l = w.layer[i];
    for (const float* p : {l.query_w, l.query_b, l.key_w, l.key_b, l.value_w, l.value_b,
                           l.attn_out_w, l.attn_out_b, l.attn_ln_gamma, l.attn_ln_beta, l.ffn_in_w,
                           l.ffn_in_b, l.ffn_out_w, l.ffn_out_b, l.ffn_ln_gamma, l.ffn_ln_beta}) {
      if (p == nullptr)
        return absl::InvalidArgumentError(absl::StrCat("layer ", i, ": missing weights"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<model::Encoder>> CreateCudaEncoder(const CudaEncoderOptions& options,
                                                                  const BertWeightsHost& weights) {
  DType dtype;
  if (options.dtype == "float16") {
    dtype = DType::kFloat16;
  } else if (options.dtype == "bfloat16") {
    dtype = DType::kBFloat16;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("CUDA dtype must be float16 or bfloat16, not \"", options.dtype, "\""));
  }
  if (options.max_batch_size <= 0 || options.max_batch_tokens <= 0 || options.max_seq_len <= 0) {
    return absl::InvalidArgumentError("max_batch_size, max_batch_tokens, max_seq_len must be > 0");
  }
  if (options.variant != "reference" && options.variant != "fused") {
    return absl::InvalidArgumentError(
        absl::StrCat("CUDA variant must be reference or fused, not \"", options.variant, "\""));
  }
  const bool fused = options.variant == "fused";
  if (absl::Status s = ValidateWeights(weights); !s.ok()) return s;
  if (fused && !FusedShapeSupported(weights.hidden, weights.heads, weights.intermediate)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "CUDA variant fused needs hidden % 8 == 0, hidden <= 1024, head_dim 32 or 64 and "
        "intermediate % 8 == 0; this model has hidden ",
        weights.hidden, ", ", weights.heads, " heads, intermediate ", weights.intermediate,
        " (use variant reference)"));
  }
  if (!CudaDeviceAvailable()) return absl::UnavailableError("no CUDA device");
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || options.device < 0 || options.device >= count) {
    return absl::InvalidArgumentError(
        absl::StrCat("CUDA device ", options.device, " does not exist (", count, " present)"));
  }
  auto encoder = std::make_unique<CudaEncoder>(options, weights, dtype, fused);
  if (absl::Status s = encoder->Init(weights); !s.ok()) {
    cudaGetLastError();  // do not leave a sticky launch error for the next user
    return s;
  }
  return std::unique_ptr<model::Encoder>(std::move(encoder));
}

}  // namespace tipperary::kernels
