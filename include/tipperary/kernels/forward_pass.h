// The BERT forward pass of the CUDA encoder as device-neutral code: the order of the stages,
// every GEMM's layout (as GemmCall) and every element-wise stage's arguments. The GPU encoder
// runs it with ops that launch CUDA kernels and cuBLAS; the CPU mirror (cpu_mirror.h) runs the
// very same code with ops that loop over host arrays (math.h) and OpenBLAS, on host buffers of
// the same element types and sizes. So a wrong leading dimension, stride or transpose here fails
// a unit test on any machine.
//
// Storage: activations and matrices in `dtype` (fp16/bf16; 16-bit bits on the host), biases
// and LayerNorm parameters in fp32. Token-major tensors are [batch * seq, width], seq being the
// padded length (a multiple of kSeqAlign); real lengths come per sequence.
//
//   ForwardLimits lim = ComputeForwardLimits(options..., model dims);
//   for (const ForwardSpan& span : PlanForwardSpans(token_ids, lim)) {
//     PackSpan(token_ids, span, host_ids);  // ids [batch*seq] then lengths [batch]
//     ... copy to the ops' memory ...
//     RunForwardPass(model, buffers, ids, lengths, span.count, span.seq, normalize, out, &ops);
//   }
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "tipperary/kernels/gemm_call.h"
#include "tipperary/kernels/stage_ablation.h"

namespace tipperary::kernels {

inline constexpr int kSeqAlign = 8;  // tensor-core friendly leading dimensions

// One layer's parameters (device or host pointers). Matrices in Linear layout [out, in].
struct ForwardLayer {
  const void* qkv_w = nullptr;   // [3*hidden, hidden]: query, key, value rows stacked
  const float* qkv_b = nullptr;  // [3*hidden]
  const void* attn_out_w = nullptr;
  const float* attn_out_b = nullptr;
  const float* attn_ln_gamma = nullptr;
  const float* attn_ln_beta = nullptr;
  const void* ffn_in_w = nullptr;  // [intermediate, hidden]
  const float* ffn_in_b = nullptr;
  const void* ffn_out_w = nullptr;  // [hidden, intermediate]
  const float* ffn_out_b = nullptr;
  const float* ffn_ln_gamma = nullptr;
  const float* ffn_ln_beta = nullptr;
};

struct ForwardModel {
  GemmType dtype = GemmType::kFloat16;  // kFloat16 or kBFloat16
  int hidden = 0;
  int heads = 0;
  int intermediate = 0;
  float eps = 1e-12f;
  bool cls_pooling = false;
  const void* word_emb = nullptr;  // [vocab, hidden]
  const void* pos_emb = nullptr;   // [max_position, hidden]
  const void* type_emb = nullptr;  // [type_vocab, hidden]
  const float* emb_ln_gamma = nullptr;
  const float* emb_ln_beta = nullptr;
  std::vector<ForwardLayer> layers;
};

// Limits of one forward pass, from the encoder's options and the model; they size the buffers.
struct ForwardLimits {
  int max_seq = 0;       // padded capacity (multiple of kSeqAlign)
  int max_seq_real = 0;  // longest accepted sequence
  int max_tokens = 0;    // batch x padded length of one pass
  int max_batch = 0;
  int64_t scores_bytes = 0;  // fp32 attention scores of >= one sequence
};
ForwardLimits ComputeForwardLimits(int max_seq_len, int max_position, int max_batch_tokens,
                                   int max_batch_size, int heads,
                                   int64_t attention_workspace_bytes);

// Element counts (of `dtype` unless said) of every activation buffer, for max_tokens tokens.
struct ForwardBufferSizes {
  size_t x = 0, qkv = 0, qkv_split = 0, ctx_heads = 0, ctx = 0, tmp = 0, inter = 0;
  size_t scores_floats = 0;
};
ForwardBufferSizes ComputeForwardBufferSizes(const ForwardLimits& limits, int hidden,
                                             int intermediate);

struct ForwardBuffers {
  void* x = nullptr;          // [tokens, hidden] layer input/output
  void* qkv = nullptr;        // [tokens, 3*hidden]
  void* qkv_split = nullptr;  // q, k, v planes, each [batch, heads, seq, head_dim]
  void* ctx_heads = nullptr;  // [batch, heads, seq, head_dim]
  void* ctx = nullptr;        // [tokens, hidden]
  void* tmp = nullptr;        // [tokens, hidden] GEMM output before bias+residual+LN
  void* inter = nullptr;      // [tokens, intermediate]
  float* scores = nullptr;
  int64_t scores_capacity_floats = 0;
};

// Consecutive sequences [begin, begin + count) padded to `seq`.
struct ForwardSpan {
  size_t begin = 0;
  size_t count = 0;
  int seq = 0;
};
// Greedy spans in request order: as many sequences as fit max_batch and max_tokens (padded).
// Every sequence must be non-empty and at most limits.max_seq_real long (callers check).
std::vector<ForwardSpan> PlanForwardSpans(const std::vector<std::vector<int32_t>>& token_ids,
                                          const ForwardLimits& limits);
// Writes ids [count*seq] (zero padded) followed by lengths [count] to `dst`.
void PackSpan(const std::vector<std::vector<int32_t>>& token_ids, const ForwardSpan& span,
              int32_t* dst);

// Checks every row: non-empty, at most max_seq_real long, ids in [0, vocab). InvalidArgument
// naming the row otherwise.
absl::Status ValidateTokenIds(const std::vector<std::vector<int32_t>>& token_ids, int max_seq_real,
                              int vocab);

// The parts concatenated and converted to `dtype` bits (weights before upload).
std::vector<uint16_t> ToStorageBits(GemmType dtype, std::initializer_list<const float*> parts,
                                    size_t elements);

// The stages, with the arguments of kernels.h's launchers (see there for each one's contract).
class ForwardOps {
 public:
  virtual ~ForwardOps() = default;
  virtual absl::Status Gemm(const GemmCall& call) = 0;
  virtual absl::Status EmbeddingLayerNorm(GemmType dtype, const int32_t* ids, int tokens, int seq,
                                          const void* word_emb, const void* pos_emb,
                                          const void* type_emb, const float* gamma,
                                          const float* beta, int hidden, float eps, void* out) = 0;
  virtual absl::Status SplitQkvBias(GemmType dtype, const void* qkv, const float* bias, int batch,
                                    int seq, int heads, int head_dim, void* q, void* k,
                                    void* v) = 0;
  virtual absl::Status MaskedSoftmax(GemmType dtype, float* scores, const int32_t* lengths,
                                     int batch, int heads, int seq, float scale) = 0;
  virtual absl::Status MergeHeads(GemmType dtype, const void* ctx, int batch, int seq, int heads,
                                  int head_dim, void* out) = 0;
  virtual absl::Status BiasGelu(GemmType dtype, void* x, const float* bias, int rows, int cols) = 0;
  virtual absl::Status BiasResidualLayerNorm(GemmType dtype, const void* x, const float* bias,
                                             const void* residual, const float* gamma,
                                             const float* beta, int rows, int hidden, float eps,
                                             void* out) = 0;
  virtual absl::Status MaskedMeanPool(GemmType dtype, const void* hidden_states,
                                      const int32_t* lengths, int batch, int seq, int hidden,
                                      bool cls, bool normalize, float* out) = 0;
  // Called after every stage was issued: `stage` as "attention.qk", `layer` -1 outside the
  // layers. The GPU's debug mode synchronises and checks for a fault here.
  virtual absl::Status AfterStage(const char* stage, int layer) {
    (void)stage;
    (void)layer;
    return absl::OkStatus();
  }
};

// One forward pass of `batch` sequences padded to `seq` tokens: ids [batch*seq] and lengths
// [batch] in the ops' memory; writes out fp32 [batch, hidden]. `scales` (the bench's stage
// ablation, stage_ablation.h) issues stages 0 or 2 times; the output is then garbage.
absl::Status RunForwardPass(const ForwardModel& model, const ForwardBuffers& buffers,
                            const int32_t* ids, const int32_t* lengths, int batch, int seq,
                            bool normalize, float* out, ForwardOps* ops,
                            const StageScales& scales = StageScales());

// "attention.qk in layer 3" / "pooling".
std::string StageName(const char* stage, int layer);

}  // namespace tipperary::kernels
