// Stage ablation for the GPU bench: each stage of a forward pass (reference or fused) issued 0,
// 1 or 2 times, so that "time with the stage removed" and "time with the stage doubled" say how
// much of a pass that stage holds (issue 13: where the time goes when a goal is missed). An
// ablated pass computes GARBAGE (a skipped stage leaves its output buffer stale, a doubled
// in-place LayerNorm normalises twice): only gpu_encoder_bench --ablate sets it; the worker never
// does.
//
//   absl::StatusOr<StageScales> s = ParseStageScales("attention=0,gelu=2");
//   RunFusedForwardPass(model, buffers, input, span, false, out, &ops, *s);
#pragma once

#include <array>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace tipperary::kernels {

// The ablatable stages. Each is one or more launches of the pass, in every layer where it is a
// per-layer stage.
enum class AblationStage : int {
  kEmbedding = 0,  // embedding sum + LayerNorm (before the layers)
  kQkvGemm,        // the fused QKV projection GEMM
  kQkvPermute,     // reference only: split_qkv_bias + merge_heads (head-major copies)
  kAttention,      // reference: QK^T GEMM, masked softmax, PV GEMM; fused: varlen attention
  kAttnOutGemm,    // the attention output projection GEMM
  kLayerNorm,      // both bias + residual + LayerNorm stages of a layer
  kFfnGemms,       // the FFN's two GEMMs (in and out)
  kGelu,           // bias + GELU on the FFN's intermediate
  kPooling,        // masked mean / CLS pooling (+ normalise)
  kCount,
};
inline constexpr int kAblationStageCount = static_cast<int>(AblationStage::kCount);
inline constexpr int kMaxStageScale = 2;

// "embedding", "qkv_gemm", "qkv_permute", "attention", "attn_out_gemm", "layernorm",
// "ffn_gemms", "gelu", "pooling".
const char* AblationStageName(AblationStage stage);

// Whether the variant ("reference" or "fused") has the stage (the fused pass has no permutes).
bool VariantHasStage(std::string_view variant, AblationStage stage);

// How many times each stage is issued; 1 everywhere (the default) is the normal pass.
struct StageScales {
  std::array<int, kAblationStageCount> scale = MakeOnes();

  int Of(AblationStage stage) const { return scale[static_cast<int>(stage)]; }
  bool IsIdentity() const {
    for (int s : scale) {
      if (s != 1) return false;
    }
    return true;
  }

 private:
  static constexpr std::array<int, kAblationStageCount> MakeOnes() {
    std::array<int, kAblationStageCount> a{};
    for (int& s : a) s = 1;
    return a;
  }
};

// "" (no ablation) or comma-separated "stage=scale" with scale 0..2, e.g. "attention=0" or
// "ffn_gemms=2,gelu=0". InvalidArgument naming the bad item and the known stages otherwise.
absl::StatusOr<StageScales> ParseStageScales(std::string_view spec);

}  // namespace tipperary::kernels
