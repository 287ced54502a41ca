#include "tipperary/kernels/cuda_encoder.h"

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "tipperary/kernels/cublas_gemm.h"
#include "tipperary/kernels/forward_pass.h"
#include "tipperary/kernels/fused_forward_pass.h"
#include "tipperary/kernels/fused_kernels.h"
#include "tipperary/kernels/kernels.h"
#include "tipperary/kernels/math.h"

namespace tipperary::kernels {
namespace {

#define TIPPERARY_CUDA_RETURN(expr)                                               \
  do {                                                                            \
    if (const cudaError_t tipperary_err = (expr); tipperary_err != cudaSuccess) { \
      return Fail(tipperary_err, #expr);                                          \
    }                                                                             \
  } while (0)

#define TIPPERARY_CUBLAS_RETURN(expr)                                                             \
  do {                                                                                            \
    const cublasStatus_t tipperary_st = (expr);                                                   \
    if (tipperary_st != CUBLAS_STATUS_SUCCESS) {                                                  \
      return absl::InternalError(absl::StrCat(#expr, ": ", cublasGetStatusString(tipperary_st))); \
    }                                                                                             \
  } while (0)

constexpr size_t kCublasWorkspaceBytes = size_t{32} << 20;

struct DeviceFree {
  void operator()(void* p) const { cudaFree(p); }
};
using DevicePtr = std::unique_ptr<void, DeviceFree>;

struct PinnedFree {
  void operator()(void* p) const { cudaFreeHost(p); }
};
using PinnedPtr = std::unique_ptr<void, PinnedFree>;

bool DebugFromEnvironment() {
  const char* env = std::getenv("TIPPERARY_CUDA_DEBUG");
  return env != nullptr && std::strcmp(env, "1") == 0;
}

class CudaEncoder final : public model::Encoder {
 public:
  CudaEncoder(const CudaEncoderOptions& options, const BertWeightsHost& w, DType dtype)
      : options_(options),
        dtype_(dtype),
        hidden_(w.hidden),
        vocab_(w.vocab),
        debug_(options.debug_sync || DebugFromEnvironment()),
        fused_(options.variant == "fused"),
        ops_(this) {
    // Validated by ValidateCudaEncoderInputs before construction; the bench's ablation only.
    scales_ = ParseStageScales(options.ablate).value_or(StageScales());
  }

  ~CudaEncoder() override {
    cudaSetDevice(options_.device);
    if (stream_ != nullptr) cudaStreamSynchronize(stream_);
    for (auto& [shape, exec] : graphs_) cudaGraphExecDestroy(exec);
    for (cudaEvent_t& e : input_free_) {
      if (e != nullptr) cudaEventDestroy(e);
    }
    for (cudaEvent_t& e : output_ready_) {
      if (e != nullptr) cudaEventDestroy(e);
    }
    if (cublas_lt_ != nullptr) cublasLtDestroy(cublas_lt_);
    if (cublas_ != nullptr) cublasDestroy(cublas_);
    allocations_.clear();
    pinned_.clear();
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
    cudaGetLastError();
  }

  absl::Status Init(const BertWeightsHost& w) {
    TIPPERARY_CUDA_RETURN(cudaSetDevice(options_.device));
    TIPPERARY_CUDA_RETURN(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    // Blocking-sync events: a host thread waiting for its pass sleeps instead of spinning a core,
    // so several instances per GPU (and the batcher's threads) share the CPU.
    for (int i = 0; i < 2; ++i) {
      TIPPERARY_CUDA_RETURN(cudaEventCreateWithFlags(
          &input_free_[i], cudaEventDisableTiming | cudaEventBlockingSync));
      TIPPERARY_CUDA_RETURN(cudaEventCreateWithFlags(
          &output_ready_[i], cudaEventDisableTiming | cudaEventBlockingSync));
    }
    TIPPERARY_CUBLAS_RETURN(cublasCreate(&cublas_));
    TIPPERARY_CUBLAS_RETURN(cublasSetStream(cublas_, stream_));
    TIPPERARY_CUBLAS_RETURN(cublasLtCreate(&cublas_lt_));

    limits_ =
        ComputeForwardLimits(options_.max_seq_len, w.max_position, options_.max_batch_tokens,
                             options_.max_batch_size, w.heads, options_.attention_workspace_bytes);
    const ForwardBufferSizes sz = ComputeForwardBufferSizes(limits_, w.hidden, w.intermediate);
    // A workspace set once (not allocated by cuBLAS per call) is also what graph capture needs.
    TIPPERARY_CUDA_RETURN(Alloc(kCublasWorkspaceBytes, &workspace_));
    TIPPERARY_CUBLAS_RETURN(cublasSetWorkspace(cublas_, workspace_, kCublasWorkspaceBytes));
    for (auto [dst, n] :
         {std::pair{&buffers_.x, sz.x}, std::pair{&buffers_.qkv, sz.qkv},
          std::pair{&buffers_.qkv_split, sz.qkv_split},
          std::pair{&buffers_.ctx_heads, sz.ctx_heads}, std::pair{&buffers_.ctx, sz.ctx},
          std::pair{&buffers_.tmp, sz.tmp}, std::pair{&buffers_.inter, sz.inter}}) {
      TIPPERARY_CUDA_RETURN(Alloc(n * 2, dst));
    }
    void* scores = nullptr;
    TIPPERARY_CUDA_RETURN(Alloc(sz.scores_floats * sizeof(float), &scores));
    buffers_.scores = static_cast<float*>(scores);
    buffers_.scores_capacity_floats = static_cast<int64_t>(sz.scores_floats);
    const size_t t = static_cast<size_t>(limits_.max_tokens);
    const size_t h = static_cast<size_t>(hidden_);
    const size_t max_batch = static_cast<size_t>(limits_.max_batch);
    // Reference: ids [batch*seq] then lengths [batch]. Fused: the packed input block.
    const size_t in_ints = fused_ ? PackedInputCapacity(limits_) : t + max_batch;
    void* in = nullptr;
    TIPPERARY_CUDA_RETURN(Alloc(in_ints * sizeof(int32_t), &in));
    d_ids_ = static_cast<int32_t*>(in);
    void* out = nullptr;
    TIPPERARY_CUDA_RETURN(Alloc(max_batch * h * sizeof(float), &out));
    d_out_ = static_cast<float*>(out);
    for (int i = 0; i < 2; ++i) {
      void* p = nullptr;
      TIPPERARY_CUDA_RETURN(AllocPinned(in_ints * sizeof(int32_t), &p));
      h_in_[i] = static_cast<int32_t*>(p);
      TIPPERARY_CUDA_RETURN(AllocPinned(max_batch * h * sizeof(float), &p));
      h_out_[i] = static_cast<float*>(p);
    }

    // Weights: matrices in the activation dtype, vectors in fp32 (the mirror converts the same).
    model_.dtype = StorageType();
    model_.hidden = w.hidden;
    model_.heads = w.heads;
    model_.intermediate = w.intermediate;
    model_.eps = w.ln_eps;
    model_.cls_pooling = w.cls_pooling;
    TIPPERARY_CUDA_RETURN(UploadMatrix({w.word_emb}, size_t(w.vocab) * h, &model_.word_emb));
    TIPPERARY_CUDA_RETURN(UploadMatrix({w.pos_emb}, size_t(w.max_position) * h, &model_.pos_emb));
    TIPPERARY_CUDA_RETURN(UploadMatrix({w.type_emb}, size_t(w.type_vocab) * h, &model_.type_emb));
    TIPPERARY_CUDA_RETURN(UploadVector({w.emb_ln_gamma}, h, &model_.emb_ln_gamma));
    TIPPERARY_CUDA_RETURN(UploadVector({w.emb_ln_beta}, h, &model_.emb_ln_beta));
    const size_t hi = h * static_cast<size_t>(w.intermediate);
    for (const BertLayerWeightsHost& l : w.layer) {
      ForwardLayer d;
      TIPPERARY_CUDA_RETURN(UploadMatrix({l.query_w, l.key_w, l.value_w}, h * h, &d.qkv_w));
      TIPPERARY_CUDA_RETURN(UploadVector({l.query_b, l.key_b, l.value_b}, h, &d.qkv_b));
      TIPPERARY_CUDA_RETURN(UploadMatrix({l.attn_out_w}, h * h, &d.attn_out_w));
      TIPPERARY_CUDA_RETURN(UploadVector({l.attn_out_b}, h, &d.attn_out_b));
      TIPPERARY_CUDA_RETURN(UploadVector({l.attn_ln_gamma}, h, &d.attn_ln_gamma));
      TIPPERARY_CUDA_RETURN(UploadVector({l.attn_ln_beta}, h, &d.attn_ln_beta));
      TIPPERARY_CUDA_RETURN(UploadMatrix({l.ffn_in_w}, hi, &d.ffn_in_w));
      TIPPERARY_CUDA_RETURN(UploadVector({l.ffn_in_b}, size_t(w.intermediate), &d.ffn_in_b));
      TIPPERARY_CUDA_RETURN(UploadMatrix({l.ffn_out_w}, hi, &d.ffn_out_w));
      TIPPERARY_CUDA_RETURN(UploadVector({l.ffn_out_b}, h, &d.ffn_out_b));
      TIPPERARY_CUDA_RETURN(UploadVector({l.ffn_ln_gamma}, h, &d.ffn_ln_gamma));
      TIPPERARY_CUDA_RETURN(UploadVector({l.ffn_ln_beta}, h, &d.ffn_ln_beta));
      model_.layers.push_back(d);
    }
    TIPPERARY_CUDA_RETURN(cudaDeviceSynchronize());
    return absl::OkStatus();
  }

  absl::Status Encode(const std::vector<std::vector<int32_t>>& token_ids,
                      std::vector<float>* out) override {
    if (!unusable_.ok()) return unusable_;
    if (absl::Status s = ValidateTokenIds(token_ids, limits_.max_seq_real, vocab_); !s.ok()) {
      return s;
    }
    const size_t n = token_ids.size();
    out->assign(n * hidden_, 0.0f);
    if (n == 0) return absl::OkStatus();
    TIPPERARY_CUDA_RETURN(cudaSetDevice(options_.device));
    if (fused_) return EncodePacked(token_ids, out);

    // Greedy passes in request order (PlanForwardSpans); two staging slots so that packing pass
    // k+1 and unpacking pass k-1 on the host overlap the GPU's work on pass k.
    ForwardSpan pending[2];
    bool has_pending[2] = {false, false};
    int slot = 0;
    for (const ForwardSpan& span : PlanForwardSpans(token_ids, limits_)) {
      // The slot's previous input copy must be done before its pinned buffer is rewritten.
      TIPPERARY_CUDA_RETURN(cudaEventSynchronize(input_free_[slot]));
      if (has_pending[slot]) {
        TIPPERARY_CUDA_RETURN(Collect(slot, pending[slot], out));
        has_pending[slot] = false;
      }
      const int batch = static_cast<int>(span.count);
      PackSpan(token_ids, span, h_in_[slot]);
      const size_t in_count = static_cast<size_t>(batch) * span.seq + batch;
      TIPPERARY_CUDA_RETURN(cudaMemcpyAsync(d_ids_, h_in_[slot], in_count * sizeof(int32_t),
                                            cudaMemcpyHostToDevice, stream_));
      TIPPERARY_CUDA_RETURN(cudaEventRecord(input_free_[slot], stream_));
      if (absl::Status s = RunPass(batch, span.seq); !s.ok()) {
        cudaStreamSynchronize(stream_);
        return s;
      }
      TIPPERARY_CUDA_RETURN(cudaMemcpyAsync(h_out_[slot], d_out_,
                                            static_cast<size_t>(batch) * hidden_ * sizeof(float),
                                            cudaMemcpyDeviceToHost, stream_));
      TIPPERARY_CUDA_RETURN(cudaEventRecord(output_ready_[slot], stream_));
      pending[slot] = span;
      has_pending[slot] = true;
      slot ^= 1;
    }
    for (int s = 0; s < 2; ++s) {
      if (has_pending[s]) TIPPERARY_CUDA_RETURN(Collect(s, pending[s], out));
    }
    return absl::OkStatus();
  }

  // The fused variant: packed spans (no padding), RunFusedForwardPass, the same two staging slots;
  // with graphs, each (texts, tokens, tiles) shape captured once (RunPackedPass).
  absl::Status EncodePacked(const std::vector<std::vector<int32_t>>& token_ids,
                            std::vector<float>* out) {
    ForwardSpan pending[2];
    bool has_pending[2] = {false, false};
    int slot = 0;
    for (const PackedSpan& span : PlanPackedSpans(token_ids, limits_)) {
      TIPPERARY_CUDA_RETURN(cudaEventSynchronize(input_free_[slot]));
      if (has_pending[slot]) {
        TIPPERARY_CUDA_RETURN(Collect(slot, pending[slot], out));
        has_pending[slot] = false;
      }
      const int tiles = PackPackedSpan(token_ids, span, h_in_[slot]);
      TIPPERARY_CUDA_RETURN(cudaMemcpyAsync(d_ids_, h_in_[slot],
                                            PackedInputSize(span, tiles) * sizeof(int32_t),
                                            cudaMemcpyHostToDevice, stream_));
      TIPPERARY_CUDA_RETURN(cudaEventRecord(input_free_[slot], stream_));
      if (absl::Status s = RunPackedPass(span, tiles); !s.ok()) {
        cudaStreamSynchronize(stream_);
        return s;
      }
      TIPPERARY_CUDA_RETURN(cudaMemcpyAsync(
          h_out_[slot], d_out_, span.count * static_cast<size_t>(hidden_) * sizeof(float),
          cudaMemcpyDeviceToHost, stream_));
      TIPPERARY_CUDA_RETURN(cudaEventRecord(output_ready_[slot], stream_));
      pending[slot] = ForwardSpan{span.begin, span.count, 0};
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
  // ForwardOps on this encoder's stream: the kernels.h launchers and cuBLAS(Lt).
  // Both variants' stages: one Gemm / AfterStage override serves ForwardOps and FusedForwardOps.
  class CudaOps final : public ForwardOps, public FusedForwardOps {
   public:
    explicit CudaOps(CudaEncoder* e) : e_(e) {}

    absl::Status Gemm(const GemmCall& call) override {
      const CublasContext ctx{e_->cublas_, e_->cublas_lt_, e_->stream_, e_->workspace_,
                              kCublasWorkspaceBytes};
      return RunGemmOnCublas(ctx, call);
    }
    absl::Status EmbeddingLayerNorm(GemmType dt, const int32_t* ids, int tokens, int seq,
                                    const void* word_emb, const void* pos_emb, const void* type_emb,
                                    const float* gamma, const float* beta, int hidden, float eps,
                                    void* out) override {
      return e_->Fail(
          LaunchEmbeddingLayerNorm(ToDType(dt), ids, nullptr, tokens, seq, word_emb, pos_emb,
                                   type_emb, gamma, beta, hidden, eps, out, e_->stream_),
          "LaunchEmbeddingLayerNorm");
    }
    absl::Status SplitQkvBias(GemmType dt, const void* qkv, const float* bias, int batch, int seq,
                              int heads, int head_dim, void* q, void* k, void* v) override {
      return e_->Fail(LaunchSplitQkvBias(ToDType(dt), qkv, bias, batch, seq, heads, head_dim, q, k,
                                         v, e_->stream_),
                      "LaunchSplitQkvBias");
    }
    absl::Status MaskedSoftmax(GemmType dt, float* scores, const int32_t* lengths, int batch,
                               int heads, int seq, float scale) override {
      return e_->Fail(
          LaunchMaskedSoftmax(ToDType(dt), scores, lengths, batch, heads, seq, scale, e_->stream_),
          "LaunchMaskedSoftmax");
    }
    absl::Status MergeHeads(GemmType dt, const void* ctx, int batch, int seq, int heads,
                            int head_dim, void* out) override {
      return e_->Fail(
          LaunchMergeHeads(ToDType(dt), ctx, batch, seq, heads, head_dim, out, e_->stream_),
          "LaunchMergeHeads");
    }
    absl::Status BiasGelu(GemmType dt, void* x, const float* bias, int rows, int cols) override {
      return e_->Fail(LaunchBiasGelu(ToDType(dt), x, bias, rows, cols, e_->stream_),
                      "LaunchBiasGelu");
    }
    absl::Status BiasResidualLayerNorm(GemmType dt, const void* x, const float* bias,
                                       const void* residual, const float* gamma, const float* beta,
                                       int rows, int hidden, float eps, void* out) override {
      return e_->Fail(LaunchBiasResidualLayerNorm(ToDType(dt), x, bias, residual, gamma, beta, rows,
                                                  hidden, eps, out, e_->stream_),
                      "LaunchBiasResidualLayerNorm");
    }
    absl::Status MaskedMeanPool(GemmType dt, const void* hidden_states, const int32_t* lengths,
                                int batch, int seq, int hidden, bool cls, bool normalize,
                                float* out) override {
      return e_->Fail(LaunchMaskedMeanPool(ToDType(dt), hidden_states, lengths, batch, seq, hidden,
                                           cls, normalize, out, e_->stream_),
                      "LaunchMaskedMeanPool");
    }
    absl::Status PackedEmbeddingLayerNorm(GemmType dt, const int32_t* ids, const int32_t* positions,
                                          int tokens, const void* word_emb, const void* pos_emb,
                                          const void* type_emb, const float* gamma,
                                          const float* beta, int hidden, float eps,
                                          void* out) override {
      return e_->Fail(
          LaunchPackedEmbeddingLayerNorm(ToDType(dt), ids, positions, tokens, word_emb, pos_emb,
                                         type_emb, gamma, beta, hidden, eps, out, e_->stream_),
          "LaunchPackedEmbeddingLayerNorm");
    }
    absl::Status VarlenAttention(GemmType dt, const void* qkv, const float* qkv_bias,
                                 const int32_t* cu_seqlens, const int32_t* tiles, int tile_count,
                                 int heads, int head_dim, void* ctx) override {
      return e_->Fail(LaunchVarlenAttention(ToDType(dt), qkv, qkv_bias, cu_seqlens, tiles,
                                            tile_count, heads, head_dim, ctx, e_->stream_),
                      "LaunchVarlenAttention");
    }
    absl::Status WarpBiasResidualLayerNorm(GemmType dt, const void* x, const float* bias,
                                           const void* residual, const float* gamma,
                                           const float* beta, int rows, int hidden, float eps,
                                           void* out) override {
      return e_->Fail(LaunchWarpBiasResidualLayerNorm(ToDType(dt), x, bias, residual, gamma, beta,
                                                      rows, hidden, eps, out, e_->stream_),
                      "LaunchWarpBiasResidualLayerNorm");
    }
    absl::Status BiasGeluVec(GemmType dt, void* x, const float* bias, int rows, int cols) override {
      return e_->Fail(LaunchBiasGeluVec(ToDType(dt), x, bias, rows, cols, e_->stream_),
                      "LaunchBiasGeluVec");
    }
    absl::Status PackedMeanPool(GemmType dt, const void* hidden_states, const int32_t* cu_seqlens,
                                int batch, int hidden, bool cls, bool normalize,
                                float* out) override {
      return e_->Fail(LaunchPackedMeanPool(ToDType(dt), hidden_states, cu_seqlens, batch, hidden,
                                           cls, normalize, out, e_->stream_),
                      "LaunchPackedMeanPool");
    }
    // Debug mode: wait for the stage and check, so a fault names the stage that caused it
    // (asynchronous errors otherwise surface at a later, unrelated call).
    absl::Status AfterStage(const char* stage, int layer) override {
      if (!e_->debug_) return absl::OkStatus();
      cudaError_t err = cudaGetLastError();
      if (err == cudaSuccess) err = cudaStreamSynchronize(e_->stream_);
      if (err == cudaSuccess) return absl::OkStatus();
      return e_->Fail(err, absl::StrCat("debug sync after ", StageName(stage, layer)).c_str());
    }

   private:
    static DType ToDType(GemmType t) {
      return t == GemmType::kFloat16 ? DType::kFloat16 : DType::kBFloat16;
    }
    CudaEncoder* const e_;
  };

  // OK for cudaSuccess; otherwise an error naming `what`. A sticky error (the context is lost:
  // every later call fails too) marks the encoder unusable for good, with a status the worker
  // recognises (model::IsEncoderUnusable) to report the model unhealthy and restart.
  absl::Status Fail(cudaError_t err, const char* what) {
    if (err == cudaSuccess) return absl::OkStatus();
    const std::string message =
        absl::StrCat(what, ": ", cudaGetErrorName(err), " (", cudaGetErrorString(err), ")");
    if (IsStickyCudaError(static_cast<int>(err))) {
      unusable_ = model::EncoderUnusableError(
          absl::StrCat("CUDA device ", options_.device, " is unusable: ", message));
      return unusable_;
    }
    cudaGetLastError();  // a recoverable launch error must not be reported again later
    return absl::InternalError(message);
  }

  GemmType StorageType() const {
    return dtype_ == DType::kFloat16 ? GemmType::kFloat16 : GemmType::kBFloat16;
  }

  // A captured pass's shape. Reference: (batch, padded length, 0); fused: (texts, tokens, tiles).
  using GraphKey = std::array<int, 3>;

  // One forward pass; d_ids_ already holds ids then lengths. With graphs, the pass of each shape
  // is captured once and replayed: the captured kernels read the buffers at fixed addresses, so
  // a replay sees the new ids copied there just before it on the same stream.
  absl::Status RunPass(int batch, int seq) {
    const int32_t* lengths = d_ids_ + static_cast<size_t>(batch) * seq;
    return RunMaybeCaptured({batch, seq, 0}, [&] {
      return RunForwardPass(model_, buffers_, d_ids_, lengths, batch, seq, options_.normalize,
                            d_out_, &ops_, scales_);
    });
  }

  // One fused pass; d_ids_ already holds the packed input block. Everything a packed pass's
  // launches take by value follows from (texts, tokens, tiles): the GEMMs' m = tokens, the
  // attention grid = tiles, the pooling grid = texts, and the pointers into the input block
  // (PackedInputAt: offsets of tokens and texts). So a graph captured for that exact key replays
  // correctly for any span of the same key: the lengths, cu_seqlens and tile table it reads are
  // device data, rewritten before each replay on the same stream. Exact keys, not buckets: with
  // padded buckets the pooling and attention would see dummy rows, and at the bench's and a
  // saturated batcher's fixed shapes the key repeats anyway; other shapes beyond max_graphs run
  // eagerly.
  absl::Status RunPackedPass(const PackedSpan& span, int tiles) {
    return RunMaybeCaptured({static_cast<int>(span.count), span.tokens, tiles}, [&] {
      return RunFusedForwardPass(model_, buffers_, PackedInputAt(d_ids_, span, tiles), span,
                                 options_.normalize, d_out_, &ops_, scales_);
    });
  }

  // Issues the pass (`issue`) eagerly, or replays the graph captured for `key`, capturing it
  // first when there is room (max_graphs). A failed capture switches the encoder to eager.
  template <typename Issue>
  absl::Status RunMaybeCaptured(const GraphKey& key, const Issue& issue) {
    if (!options_.use_graphs || debug_ || graphs_failed_) return issue();
    auto it = graphs_.find(key);
    if (it == graphs_.end()) {
      if (static_cast<int>(graphs_.size()) >= options_.max_graphs) return issue();
      TIPPERARY_CUDA_RETURN(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
      const absl::Status issued = issue();
      cudaGraph_t graph = nullptr;
      const cudaError_t end = cudaStreamEndCapture(stream_, &graph);
      cudaGraphExec_t exec = nullptr;
      cudaError_t inst = cudaErrorUnknown;
      if (issued.ok() && end == cudaSuccess) inst = cudaGraphInstantiate(&exec, graph, 0);
      if (graph != nullptr) cudaGraphDestroy(graph);
      if (!issued.ok()) return issued;
      if (end != cudaSuccess || inst != cudaSuccess) {
        // Capture is an optimisation: run this and later passes eagerly rather than fail.
        const cudaError_t err = end != cudaSuccess ? end : inst;
        if (IsStickyCudaError(static_cast<int>(err))) return Fail(err, "CUDA graph capture");
        cudaGetLastError();
        graphs_failed_ = true;
        return issue();
      }
      it = graphs_.emplace(key, exec).first;
    }
    return Fail(cudaGraphLaunch(it->second, stream_), "cudaGraphLaunch");
  }

  cudaError_t Collect(int slot, const ForwardSpan& span, std::vector<float>* out) {
    const cudaError_t err = cudaEventSynchronize(output_ready_[slot]);
    if (err != cudaSuccess) return err;
    std::memcpy(out->data() + span.begin * hidden_, h_out_[slot],
                span.count * hidden_ * sizeof(float));
    return cudaSuccess;
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
  cudaError_t UploadMatrix(std::initializer_list<const float*> parts, size_t elements,
                           const void** dst) {
    const std::vector<uint16_t> host = ToStorageBits(StorageType(), parts, elements);
    void* d = nullptr;
    cudaError_t err = Alloc(host.size() * 2, &d);
    if (err != cudaSuccess) return err;
    *dst = d;
    return cudaMemcpy(d, host.data(), host.size() * 2, cudaMemcpyHostToDevice);
  }

  cudaError_t UploadVector(std::initializer_list<const float*> parts, size_t elements,
                           const float** dst) {
    std::vector<float> host;
    host.reserve(parts.size() * elements);
    for (const float* p : parts) host.insert(host.end(), p, p + elements);
    void* d = nullptr;
    cudaError_t err = Alloc(host.size() * sizeof(float), &d);
    if (err != cudaSuccess) return err;
    *dst = static_cast<const float*>(d);
    return cudaMemcpy(d, host.data(), host.size() * sizeof(float), cudaMemcpyHostToDevice);
  }

  const CudaEncoderOptions options_;
  const DType dtype_;
  const int hidden_;
  const int vocab_;
  const bool debug_;
  const bool fused_;  // options.variant == "fused"
  CudaOps ops_;
  absl::Status unusable_ = absl::OkStatus();  // set by a sticky error; returned ever after
  ForwardLimits limits_;
  ForwardModel model_;
  ForwardBuffers buffers_;

  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  cublasLtHandle_t cublas_lt_ = nullptr;
  void* workspace_ = nullptr;
  cudaEvent_t input_free_[2] = {nullptr, nullptr};
  cudaEvent_t output_ready_[2] = {nullptr, nullptr};
  std::vector<DevicePtr> allocations_;
  std::vector<PinnedPtr> pinned_;
  std::map<GraphKey, cudaGraphExec_t> graphs_;
  bool graphs_failed_ = false;
  StageScales scales_;  // options_.ablate parsed (1 everywhere unless the bench ablates)

  int32_t* d_ids_ = nullptr;  // ids [batch*seq] then lengths [batch]
  float* d_out_ = nullptr;
  int32_t* h_in_[2] = {nullptr, nullptr};
  float* h_out_[2] = {nullptr, nullptr};
};

}  // namespace

absl::StatusOr<std::unique_ptr<model::Encoder>> CreateCudaEncoder(const CudaEncoderOptions& options,
                                                                  const BertWeightsHost& weights) {
  absl::StatusOr<GemmType> type = ValidateCudaEncoderInputs(options, weights);
  if (!type.ok()) return type.status();
  const DType dtype = *type == GemmType::kFloat16 ? DType::kFloat16 : DType::kBFloat16;
  if (!CudaDeviceAvailable()) return absl::UnavailableError("no CUDA device");
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || options.device < 0 || options.device >= count) {
    return absl::InvalidArgumentError(
        absl::StrCat("CUDA device ", options.device, " does not exist (", count, " present)"));
  }
  CudaEncoderOptions resolved = options;
  resolved.variant = ResolveCudaVariant(options.variant, weights);
  auto encoder = std::make_unique<CudaEncoder>(resolved, weights, dtype);
  if (absl::Status s = encoder->Init(weights); !s.ok()) {
    cudaGetLastError();  // do not leave a sticky launch error for the next user
    return s;
  }
  return std::unique_ptr<model::Encoder>(std::move(encoder));
}

}  // namespace tipperary::kernels
