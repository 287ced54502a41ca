// Validation of CudaEncoderOptions and BertWeightsHost, shared by the GPU encoder and its CPU
// mirror; plain C++ (tipperary::kernels_plan), so it builds and is tested without nvcc.
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "tipperary/kernels/cuda_encoder.h"
#include "tipperary/kernels/fused_forward_pass.h"
#include "tipperary/kernels/gemm_call.h"
#include "tipperary/kernels/stage_ablation.h"

namespace tipperary::kernels {
namespace {

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

std::string ResolveCudaVariant(const std::string& variant, const BertWeightsHost& weights) {
  if (variant != "auto") return variant;
  return FusedShapeSupported(weights.hidden, weights.heads, weights.intermediate) ? "fused"
                                                                                  : "reference";
}

absl::StatusOr<GemmType> ValidateCudaEncoderInputs(const CudaEncoderOptions& options,
                                                   const BertWeightsHost& weights) {
  GemmType dtype;
  if (options.dtype == "float16") {
    dtype = GemmType::kFloat16;
  } else if (options.dtype == "bfloat16") {
    dtype = GemmType::kBFloat16;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("CUDA dtype must be float16 or bfloat16, not \"", options.dtype, "\""));
  }
  if (options.max_batch_size <= 0 || options.max_batch_tokens <= 0 || options.max_seq_len <= 0) {
    return absl::InvalidArgumentError("max_batch_size, max_batch_tokens, max_seq_len must be > 0");
  }
  if (options.max_graphs < 0) return absl::InvalidArgumentError("max_graphs must be >= 0");
  if (options.variant != "reference" && options.variant != "fused" && options.variant != "auto") {
    // scripts/gpu-check lists a variant refused with "unknown variant" as not built.
    return absl::InvalidArgumentError(absl::StrCat("unknown variant \"", options.variant,
                                                   "\" (this build has: reference, fused, auto)"));
  }
  if (absl::StatusOr<StageScales> scales = ParseStageScales(options.ablate); !scales.ok()) {
    return scales.status();
  }
  if (absl::Status s = ValidateWeights(weights); !s.ok()) return s;
  if (options.variant == "fused" &&
      !FusedShapeSupported(weights.hidden, weights.heads, weights.intermediate)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "CUDA variant fused needs hidden % 8 == 0, hidden <= 1024, head_dim 32 or 64 and "
        "intermediate % 8 == 0; this model has hidden ",
        weights.hidden, ", ", weights.heads, " heads, intermediate ", weights.intermediate,
        " (use variant reference)"));
  }
  return dtype;
}

}  // namespace tipperary::kernels
