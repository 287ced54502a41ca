// The models a worker serves at one moment, with the name tables requests are resolved with.
// Immutable once built: a config reload builds a new set and publishes it whole (WorkerCore),
// so a request resolves its model against one consistent set, and keeps the runtime it found
// (a shared_ptr) even if a later set drops or replaces it.
//
//   std::shared_ptr<const ModelSet> set = ModelSet::Build(std::move(runtimes), "minilm");
//   absl::StatusOr<std::shared_ptr<ModelRuntime>> model = set->Find("MiniLM");
#pragma once

#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "model_runtime.h"

namespace tipperary::worker {

class ModelSet {
 public:
  using Models = std::map<std::string, std::shared_ptr<ModelRuntime>>;

  // `models` by name; `default_model` must be one of them. Aliases that another model's name or
  // alias already claims are dropped (and logged).
  static std::shared_ptr<const ModelSet> Build(Models models, std::string default_model);

  const Models& models() const { return models_; }
  const std::string& default_model() const { return default_model_; }

  // Empty name = the default model; else a model's name or alias, exactly, or else
  // case-insensitively (when that names one model only); unknown: NOT_FOUND (reason
  // MODEL_NOT_FOUND) naming the known ones.
  absl::StatusOr<std::shared_ptr<ModelRuntime>> Find(const std::string& name) const;

 private:
  ModelSet() = default;

  Models models_;
  std::string default_model_;
  // Names and aliases -> model, exactly; lower-cased -> model, or null where two models fold to
  // the same text.
  std::map<std::string, std::shared_ptr<ModelRuntime>> names_;
  std::map<std::string, std::shared_ptr<ModelRuntime>> folded_names_;
};

}  // namespace tipperary::worker
