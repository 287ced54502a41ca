// Internal: self-attention of one head of one sequence on Intel AMX (bf16 tiles, fp32
// accumulation), or with AVX512-BF16 dot products where there is no AMX, for the CPU encoder's
// bfloat16 dtype.
//
// Why: in fp32 through OpenBLAS, attention was ~22 % of a 32 x 128 batch (QK^T and PV: short
// K = head_dim 32 and N = 32 are OpenBLAS's worst shapes; the len x len scores went through
// memory between the GEMMs and the softmax). Here a block of 32 queries goes QK^T -> softmax ->
// PV with its scores in L1 (32 x len floats), one TDPBF16PS per 16 x 16 x 32 step; the QKV bias
// is added in the pass that rounds Q, K and V to bf16 and lays them out in tile order
// (PackQkvRow, run per chunk while the QKV GEMM's output is still in L2). Scores and output
// accumulate in fp32; Q, K, V and the softmax probabilities are rounded to bf16 (nearest even),
// as OpenVINO and PyTorch's bf16 attention do.
//
//   if (AmxAttentionAvailable() && AmxAttentionSupports(head_dim)) {
//     for each token: PackQkvRow(qkv_row, bias, pos, heads, head_dim, plane, q, k, v);
//     for each head:  AmxAttention(q + i * plane, k + i * plane, v + i * plane, len, head_dim,
//                                  scale, ctx + i * head_dim, hidden, &scratch);
//   }
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace tipperary::model::internal {

// One thread's buffers (grow-only, so steady-state calls do not allocate).
struct AmxAttentionScratch {
  std::vector<uint16_t> p;
  std::vector<float> s, o;
};

// True when this process may use the AMX tiles (the CPU has AMX-BF16 and AVX512-BF16 and the
// kernel granted the tile state). Checked once.
bool AmxAttentionAvailable();

// True for the head sizes the kernel handles: multiples of 32 (one tile step of K).
inline bool AmxAttentionSupports(int head_dim) { return head_dim > 0 && head_dim % 32 == 0; }

// True when the CPU has AVX512-BF16 (Cooper Lake, AMD Zen 4 and newer): Avx512Bf16Attention and
// PackQkvRow run there, AMX or not. Checked once.
bool Avx512Bf16AttentionAvailable();

// Rows of one (sequence, head) block of packed Q, K or V: its length rounded up to 32. The
// rows from len up are read but only feed masked scores and dropped outputs: they must hold
// finite values (zeros, or what an earlier call packed there).
inline int AmxAttentionRows(int len) { return (len + 31) / 32 * 32; }

// Packs one token's row of the QKV projection [Q | K | V] (3 x heads x d floats) plus bias into
// bf16 blocks at position `pos` of its sequence: q, k and v point to the sequence's block of
// head 0, and head i's block is i * plane elements further. Q is stored row-major (d per row),
// K and V in the tile layouts the kernel multiplies directly (VNNI pairs), so the attention
// reads them contiguously. Rows of different tokens can be packed by different threads.
void PackQkvRow(const float* row, const float* bias, int pos, int heads, int d, size_t plane,
                uint16_t* q, uint16_t* k, uint16_t* v);

// ctx[len x d] (fp32, row stride ctx_stride) = softmax(scale q k^T) v, for one (sequence, head)
// block as packed by PackQkvRow (AmxAttentionRows(len) x d elements each).
// Requires AmxAttentionAvailable() and AmxAttentionSupports(d); len >= 1.
void AmxAttention(const uint16_t* q, const uint16_t* k, const uint16_t* v, int len, int d,
                  float scale, float* ctx, int ctx_stride, AmxAttentionScratch* scratch);

// The same computation, on the same packed blocks and with the same roundings, with AVX512-BF16
// dot products (VDPBF16PS) instead of tiles: for CPUs without AMX (AMD Zen 4, Cooper Lake).
// Sums may differ from AmxAttention's in the last bits (another order of fp32 additions).
// Requires Avx512Bf16AttentionAvailable() and AmxAttentionSupports(d); len >= 1.
void Avx512Bf16Attention(const uint16_t* q, const uint16_t* k, const uint16_t* v, int len, int d,
                         float scale, float* ctx, int ctx_stride, AmxAttentionScratch* scratch);

}  // namespace tipperary::model::internal
