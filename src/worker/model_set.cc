#include "model_set.h"

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "status_details.h"
#include "tipperary/common/log.h"

namespace tipperary::worker {

std::shared_ptr<const ModelSet> ModelSet::Build(Models models, std::string default_model) {
  std::shared_ptr<ModelSet> set(new ModelSet());
  set->models_ = std::move(models);
  set->default_model_ = std::move(default_model);
  // Names first, so that no alias can take a model's name; then the aliases, the first claim
  // winning (the loader refuses clashes between configured ones; a Hugging Face id two models
  // share is nobody's).
  for (const auto& [name, model] : set->models_) set->names_[name] = model;
  std::map<std::string, int> claims;
  for (const auto& [name, model] : set->models_) {
    for (const std::string& alias : model->aliases()) ++claims[alias];
  }
  for (const auto& [name, model] : set->models_) {
    for (const std::string& alias : model->aliases()) {
      if (claims[alias] > 1 || !set->names_.emplace(alias, model).second) {
        TIPPERARY_LOG(kWarn, "model alias dropped: another model has that name or alias",
                      {{"model", name}, {"alias", alias}});
      }
    }
  }
  for (const auto& [name, model] : set->names_) {
    auto [it, inserted] = set->folded_names_.emplace(absl::AsciiStrToLower(name), model);
    if (!inserted && it->second != model) it->second = nullptr;
  }
  return set;
}

absl::StatusOr<std::shared_ptr<ModelRuntime>> ModelSet::Find(const std::string& name) const {
  auto it = names_.find(name.empty() ? default_model_ : name);
  if (it != names_.end()) return it->second;
  auto folded = folded_names_.find(absl::AsciiStrToLower(name));
  if (folded != folded_names_.end() && folded->second != nullptr) return folded->second;
  std::vector<std::string> names;
  for (const auto& [known, model] : models_) names.push_back(known);
  return WithReason(absl::NotFoundError(absl::StrCat("model \"", name, "\" not found (models: ",
                                                     absl::StrJoin(names, ", "), ")")),
                    "MODEL_NOT_FOUND");
}

}  // namespace tipperary::worker
