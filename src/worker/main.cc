// tipperary-worker: a gRPC sentence-embedding server with a dynamic batcher (CPU or CUDA).
#include <iostream>
#include <string>
#include <vector>

#include "tipperary/common/command_line.h"
#include "tipperary/config/worker_config.h"
#include "tipperary/model/model_bundle.h"
#include "tipperary/model/tokenizer.h"
#include "tipperary/worker/worker_server.h"

namespace {

constexpr char kUsage[] =
    R"(usage: tipperary-worker --config FILE [--model-path [NAME=]DIR]... [--check-config]
       tipperary-worker --help | --version

Serves tipperary.embedding.v1.EmbeddingService (plus grpc.health.v1 and server reflection)
over gRPC, batching texts from concurrent requests into model batches.

  --config FILE            the YAML configuration (see config/worker.yaml, docs/configuration.md)
  --model-path [NAME=]DIR  use DIR for model NAME (no NAME: the default model); repeatable
  --check-config           validate FILE and load every model's files (config, weights, tokenizer),
                           print the effective configuration; exit 1 on any problem, each on
                           stderr as FILE:LINE:COL: PATH: MESSAGE
  --help                   this text
  --version                the version

Signals: SIGTERM/SIGINT drain (health NOT_SERVING, new requests UNAVAILABLE, queued work
finishes within `drain`), then exit 0, or 1 if work was cut; a second signal exits at once.
)";

}  // namespace

int main(int argc, char** argv) {
  tipperary::common::CommandLine cl;
  if (auto exit_code = tipperary::common::ParseCommandLine(argc, argv, "tipperary-worker", kUsage,
                                                           {"--model-path"}, &cl)) {
    return *exit_code;
  }
  const std::string& config_path = cl.config_path;
  const bool check_only = cl.check_only;
  const std::vector<std::string>& model_paths = cl.repeated["--model-path"];
  auto config = tipperary::config::LoadWorkerConfigFile(config_path);
  if (!config.ok()) {
    std::cerr << "tipperary-worker: " << config.status().message() << "\n";
    return 1;
  }
  for (const std::string& spec : model_paths) {
    if (absl::Status s = tipperary::config::OverrideModelPath(*config, spec); !s.ok()) {
      std::cerr << "tipperary-worker: " << s.message() << "\n";
      return 2;
    }
  }
  if (check_only) {
    std::cout << tipperary::config::DumpWorkerConfig(*config);
    // What startup loads, short of serving: every model's files, named where the path was given.
    int status = 0;
    for (const tipperary::config::WorkerModelConfig& model : config->models) {
      absl::Status s = tipperary::model::LoadModel(model.path).status();
      if (s.ok()) s = tipperary::model::Tokenizer::Load(model.path).status();
      if (!s.ok()) {
        std::cerr << "tipperary-worker: " << model.path_location << ": model \"" << model.name
                  << "\": " << s.message() << "\n";
        status = 1;
      }
    }
    return status;
  }
  auto server = tipperary::worker::WorkerServer::Create(std::move(*config));
  if (!server.ok()) {
    std::cerr << "tipperary-worker: " << server.status().message() << "\n";
    return 1;
  }
  return (*server)->Run();
}
