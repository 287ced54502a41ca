// Internal: bf16 GEMMs on Intel AMX for the CPU encoder's dense layers (dtype: bfloat16).
//
// Why: on this class of CPU (Sapphire/Emerald Rapids) the AMX tile unit multiplies bf16 an order
// of magnitude faster than AVX-512 fp32 FMAs, and the weights are half the bytes, which is what
// batch-1 latency is made of (the weights stream from L3 once per call). Products are exact in
// fp32 and accumulate in fp32, so only the rounding of both operands to bf16 costs accuracy:
// measured on the 312 fixture texts, cosine >= 0.99996 against sentence-transformers.
//
// Weights are packed once, at load, into the tile layout AMX reads (no repacking per call, unlike
// sgemm); activations are rounded to bf16 256 rows at a time into a per-thread scratch.
//
//   if (AmxBf16Usable()) {
//     PackedBf16Weight w = PackBf16Weight(torch_weight, out, in);   // [out x in], row-major
//     AmxLinear(x, rows, w, y, scratch);                             // y = x w^T, fp32
//   }
#pragma once

#include <cstdint>
#include <vector>

namespace tipperary::model::internal {

// True when the CPU has AMX-TILE, AMX-BF16 and AVX512-BF16 and the kernel granted this process
// the tile state (Linux >= 5.16, arch_prctl ARCH_REQ_XCOMP_PERM). Checked once per process.
bool AmxBf16Usable();

// A PyTorch Linear weight [n x k] in AMX B-tile order: for each 32-column block of the output,
// for each 32-wide slice of k, two 1 KiB tiles (16 output columns each) whose row r holds the
// pairs (k0 + 2r, k0 + 2r + 1) of the 16 columns, rounded to bf16 (to nearest even).
struct PackedBf16Weight {
  int n = 0, k = 0;  // both multiples of 32
  std::vector<uint16_t> data;
};

// Whether PackBf16Weight accepts these dimensions.
bool AmxShapeSupported(int n, int k);

PackedBf16Weight PackBf16Weight(const float* w, int n, int k);

// Per-thread scratch for AmxLinear: up to 256 rows of bf16 activations and one 16 x 16 fp32 tile.
struct AmxScratch {
  std::vector<uint16_t> a;
  std::vector<float> c;
};

// y[rows x w.n] (row stride w.n) = x[rows x w.k] (row stride w.k) * w^T. Needs AmxBf16Usable().
// Loads this thread's tile configuration and leaves it loaded (only this code uses tiles).
void AmxLinear(const float* x, int rows, const PackedBf16Weight& w, float* y, AmxScratch* scratch);

}  // namespace tipperary::model::internal
