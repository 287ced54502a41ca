#include "tipperary/worker/config_check.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "tipperary/model/model_bundle.h"
#include "tipperary/model/tokenizer.h"

namespace tipperary::worker {

absl::Status ApplyModelPathOverrides(config::WorkerConfig& config,
                                     const std::vector<std::string>& model_paths) {
  for (const std::string& spec : model_paths) {
    if (absl::Status s = config::OverrideModelPath(config, spec); !s.ok()) return s;
  }
  return absl::OkStatus();
}

std::vector<std::string> CheckModelFiles(const config::WorkerConfig& config) {
  std::vector<std::string> problems;
  for (const config::WorkerModelConfig& model : config.models) {
    absl::Status s = model::LoadModel(model.path).status();
    if (s.ok()) s = model::Tokenizer::Load(model.path).status();
    if (!s.ok()) {
      problems.push_back(
          absl::StrCat(model.path_location, ": model \"", model.name, "\": ", s.message()));
    }
  }
  return problems;
}

absl::StatusOr<config::WorkerConfig> LoadAndCheckWorkerConfig(const WorkerConfigSource& source) {
  absl::StatusOr<config::WorkerConfig> config = config::LoadWorkerConfigFile(source.path);
  if (!config.ok()) return config.status();
  if (absl::Status s = ApplyModelPathOverrides(*config, source.model_paths); !s.ok()) return s;
  std::vector<std::string> problems = CheckModelFiles(*config);
  if (!problems.empty()) return absl::InvalidArgumentError(absl::StrJoin(problems, "\n"));
  return config;
}

}  // namespace tipperary::worker
