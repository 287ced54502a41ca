// The worker's configuration as startup reads it, and the check `--check-config` makes: the
// file, the --model-path overrides, then every model's files (config, weights, tokenizer).
// A live reload (SIGHUP, POST /reload) runs exactly this before it changes anything.
//
//   WorkerConfigSource source{.path = "worker.yaml", .model_paths = {"minilm=/models/minilm"}};
//   absl::StatusOr<config::WorkerConfig> config = LoadAndCheckWorkerConfig(source);
//   if (!config.ok()) std::cerr << config.status().message();  // FILE:LINE:COL: PATH: MESSAGE
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tipperary/config/worker_config.h"

namespace tipperary::worker {

// Where a worker's configuration comes from: the file, then the command line's overrides.
struct WorkerConfigSource {
  std::string path;                      // --config
  std::vector<std::string> model_paths;  // --model-path values, in order: [NAME=]DIR
};

// Applies every --model-path override (config::OverrideModelPath), in order.
absl::Status ApplyModelPathOverrides(config::WorkerConfig& config,
                                     const std::vector<std::string>& model_paths);

// Loads every model's files as startup does (weights and config, then the tokenizer), without
// building encoders. One line per model that fails: "WHERE: model \"NAME\": MESSAGE", WHERE being
// where its path was given (FILE:LINE:COL: models[i].path, or --model-path NAME=DIR).
std::vector<std::string> CheckModelFiles(const config::WorkerConfig& config);

// The file, the overrides and the model files: InvalidArgument with every problem (one per
// line) when any fails, else the configuration startup would use.
absl::StatusOr<config::WorkerConfig> LoadAndCheckWorkerConfig(const WorkerConfigSource& source);

}  // namespace tipperary::worker
