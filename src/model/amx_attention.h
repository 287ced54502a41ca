// Internal: self-attention of one head of one sequence on Intel AMX (bf16 tiles, fp32
// accumulation), or with AVX512-BF16 dot products where there is no AMX, for the CPU encoder's
// bfloat16 dtype.
//
// Why: in fp32 through OpenBLAS, attention was ~22 % of a 32 x 128 batch (QK^T and PV: short
// K = head_dim 32 and N = 32 are OpenBLAS's worst shapes; the len x len scores went through
// memory between the GEMMs and the softmax). Here a block of 32 queries goes QK^T -> softmax ->
// PV with its scores in L1 (32 x len floats), one TDPBF16PS per 16 x 16 x 32 step.
// The input is the QKV projection as the GEMM wrote it: bf16 rows [Q | K | V] with the bias
// already added (a oneDNN post-op). Each call packs its own head's K and V into the tile layouts
// (16 x 16 transposes in registers, a pair interleave) in L1-sized scratch, so nothing is
// scattered across memory per token. Scores and output accumulate in fp32; Q, K, V and the
// unnormalised softmax numerators are bf16 (nearest even), as OpenVINO and PyTorch's bf16
// attention round them; the softmax's division is applied to the d outputs of a row instead of
// its len probabilities, and the output is rounded to bf16: the attention output projection's
// GEMM reads it as it is.
//
//   if (AmxAttentionAvailable() && AmxAttentionSupports(head_dim)) {
//     // qkv: len rows of 3 x heads x head_dim bf16, bias added, row stride ld
//     for each head:  AmxAttention(qkv, ld, len, heads, head_dim, head, scale,
//                                  ctx16 + head * head_dim, hidden, &scratch);
//   }
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "aligned_vector.h"

namespace tipperary::model::internal {

// One thread's buffers (grow-only, so steady-state calls do not allocate).
struct AmxAttentionScratch {
  // Cache-line aligned: the tiles load from them.
  AlignedVector<uint16_t> p, q, k, v;  // softmax numerators; the head's packed Q, K and V
  AlignedVector<float> s, o;
};

// True when this process may use the AMX tiles (the CPU has AMX-BF16 and AVX512-BF16 and the
// kernel granted the tile state). Checked once.
bool AmxAttentionAvailable();

// True for the head sizes the kernel handles: multiples of 32 (one tile step of K).
inline bool AmxAttentionSupports(int head_dim) { return head_dim > 0 && head_dim % 32 == 0; }

// True when the CPU has AVX512-BF16 (Cooper Lake, AMD Zen 4 and newer): Avx512Bf16Attention
// runs there, AMX or not. Checked once.
bool Avx512Bf16AttentionAvailable();

// Rows of one head's packed Q, K or V: the length rounded up to 32 (one PV step of keys).
inline int AmxAttentionRows(int len) { return (len + 31) / 32 * 32; }

// ctx[len x d] (bf16, row stride ctx_stride) = softmax(scale q k^T) v for head `head` of one
// sequence. qkv holds the sequence's len rows (row stride ld elements) of the QKV projection in
// bf16, bias added: Q of all heads (heads x d), then K, then V. Only rows below len are read.
// Requires AmxAttentionAvailable() and AmxAttentionSupports(d); len >= 1.
void AmxAttention(const uint16_t* qkv, size_t ld, int len, int heads, int d, int head, float scale,
                  uint16_t* ctx, int ctx_stride, AmxAttentionScratch* scratch);

// The same computation, on the same packed blocks and with the same roundings, with AVX512-BF16
// dot products (VDPBF16PS) instead of tiles: for CPUs without AMX (AMD Zen 4, Cooper Lake).
// Sums may differ from AmxAttention's in the last bits (another order of fp32 additions).
// Requires Avx512Bf16AttentionAvailable() and AmxAttentionSupports(d); len >= 1.
void Avx512Bf16Attention(const uint16_t* qkv, size_t ld, int len, int heads, int d, int head,
                         float scale, uint16_t* ctx, int ctx_stride, AmxAttentionScratch* scratch);

}  // namespace tipperary::model::internal
