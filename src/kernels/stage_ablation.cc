// Stage names and the "stage=scale" parser of stage_ablation.h (plain C++, kernels_plan).
#include "tipperary/kernels/stage_ablation.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"

namespace tipperary::kernels {

const char* AblationStageName(AblationStage stage) {
  switch (stage) {
    case AblationStage::kEmbedding:
      return "embedding";
    case AblationStage::kQkvGemm:
      return "qkv_gemm";
    case AblationStage::kQkvPermute:
      return "qkv_permute";
    case AblationStage::kAttention:
      return "attention";
    case AblationStage::kAttnOutGemm:
      return "attn_out_gemm";
    case AblationStage::kLayerNorm:
      return "layernorm";
    case AblationStage::kFfnGemms:
      return "ffn_gemms";
    case AblationStage::kGelu:
      return "gelu";
    case AblationStage::kPooling:
      return "pooling";
    case AblationStage::kCount:
      break;
  }
  return "?";
}

bool VariantHasStage(std::string_view variant, AblationStage stage) {
  return !(variant == "fused" && stage == AblationStage::kQkvPermute);
}

absl::StatusOr<StageScales> ParseStageScales(std::string_view spec) {
  StageScales out;
  if (spec.empty()) return out;
  for (absl::string_view item : absl::StrSplit(absl::string_view(spec.data(), spec.size()), ',')) {
    const std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(item, '=');
    int value = -1;
    int found = -1;
    for (int i = 0; i < kAblationStageCount; ++i) {
      if (kv.first == AblationStageName(static_cast<AblationStage>(i))) found = i;
    }
    if (found < 0) {
      std::vector<std::string> names;
      for (int i = 0; i < kAblationStageCount; ++i) {
        names.emplace_back(AblationStageName(static_cast<AblationStage>(i)));
      }
      return absl::InvalidArgumentError(absl::StrCat(
          "ablate: unknown stage \"", kv.first, "\" (known: ", absl::StrJoin(names, ", "), ")"));
    }
    if (!absl::SimpleAtoi(kv.second, &value) || value < 0 || value > kMaxStageScale) {
      return absl::InvalidArgumentError(
          absl::StrCat("ablate: \"", item, "\": the scale must be 0, 1 or ", kMaxStageScale));
    }
    out.scale[found] = value;
  }
  return out;
}

}  // namespace tipperary::kernels
