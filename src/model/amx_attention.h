// Internal: self-attention of one head of one sequence on Intel AMX (bf16 tiles, fp32
// accumulation), for the CPU encoder's bfloat16 dtype.
//
// Why: in fp32 through OpenBLAS, attention was ~22 % of a 32 x 128 batch (QK^T and PV: short
// K = head_dim 32 and N = 32 are OpenBLAS's worst shapes; the len x len scores went through
// memory between the GEMMs and the softmax). Here a block of 16 queries goes QK^T -> softmax ->
// PV with its scores in L1 (16 x len floats), one TDPBF16PS per 16 x 16 x 32 step; the QKV bias
// is added in the pass that rounds Q, K and V to bf16 (BiasToBf16Rows). Scores and output
// accumulate in fp32; Q, K, V and the softmax probabilities are rounded to bf16 (nearest even),
// as OpenVINO and PyTorch's bf16 attention do.
//
//   if (AmxAttentionAvailable() && AmxAttentionSupports(head_dim)) {
//     BiasToBf16Rows(qkv, bqkv, tokens, 3 * hidden, qkv16);   // once per layer
//     AmxAttention(qkv16 + h * d, qkv16 + hidden + h * d, qkv16 + 2 * hidden + h * d,
//                  3 * hidden, len, head_dim, scale, ctx + h * d, hidden, &scratch);
//   }
#pragma once

#include <cstdint>
#include <vector>

namespace tipperary::model::internal {

// One thread's buffers (grow-only, so steady-state calls do not allocate).
struct AmxAttentionScratch {
  std::vector<uint16_t> k, v, p;
  std::vector<float> s, o;
};

// Rows that AmxAttention may read past a sequence's last token (its operand tiles cover 32 rows
// at a time): a q/k/v buffer must hold this many readable rows of finite values after the last.
inline constexpr int kAmxAttentionOverread = 32;

// True when this process may use the AMX tiles (the CPU has AMX-BF16 and AVX512-BF16 and the
// kernel granted the tile state). Checked once.
bool AmxAttentionAvailable();

// True for the head sizes the kernel handles: multiples of 32 (one tile step of K).
inline bool AmxAttentionSupports(int head_dim) { return head_dim > 0 && head_dim % 32 == 0; }

// dst[rows x n] (bf16, nearest even) = x[rows x n] + bias[n]: the QKV projection's bias pass,
// which also rounds Q, K and V for AmxAttention. Requires AmxAttentionAvailable().
void BiasToBf16Rows(const float* x, const float* bias, int rows, int n, uint16_t* dst);

// ctx[len x d] (fp32, row stride ctx_stride) = softmax(scale q k^T) v for bf16 q, k, v whose row
// i starts at q + i * stride (etc.). Rows len .. len + kAmxAttentionOverread - 1 are read too
// (they only feed masked scores and dropped outputs) and must hold finite values.
// Requires AmxAttentionAvailable() and AmxAttentionSupports(d); len >= 1.
void AmxAttention(const uint16_t* q, const uint16_t* k, const uint16_t* v, int stride, int len,
                  int d, float scale, float* ctx, int ctx_stride, AmxAttentionScratch* scratch);

}  // namespace tipperary::model::internal
