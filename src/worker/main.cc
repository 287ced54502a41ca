// tipperary-worker: a gRPC sentence-embedding server with a dynamic batcher (CPU or CUDA).
#include <iostream>
#include <string>
#include <vector>

#include "tipperary/common/command_line.h"
#include "tipperary/config/worker_config.h"
#include "tipperary/worker/config_check.h"
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
SIGHUP (or POST /reload on the admin port) re-reads FILE with the same --model-path overrides,
checks it as --check-config does and applies what can change live (models, batching, limits,
logging); a config that fails the check changes nothing (docs/operations.md).
)";

}  // namespace

int main(int argc, char** argv) {
  tipperary::common::CommandLine cl;
  if (auto exit_code = tipperary::common::ParseCommandLine(argc, argv, "tipperary-worker", kUsage,
                                                           {"--model-path"}, &cl)) {
    return *exit_code;
  }
  const tipperary::worker::WorkerConfigSource source{cl.config_path, cl.repeated["--model-path"]};
  auto config = tipperary::config::LoadWorkerConfigFile(source.path);
  if (!config.ok()) {
    std::cerr << "tipperary-worker: " << config.status().message() << "\n";
    return 1;
  }
  if (absl::Status s = tipperary::worker::ApplyModelPathOverrides(*config, source.model_paths);
      !s.ok()) {
    std::cerr << "tipperary-worker: " << s.message() << "\n";
    return 2;
  }
  if (cl.check_only) {
    std::cout << tipperary::config::DumpWorkerConfig(*config);
    // What startup loads, short of serving: every model's files, named where the path was given.
    // A reload (SIGHUP, POST /reload) runs the same check.
    std::vector<std::string> problems = tipperary::worker::CheckModelFiles(*config);
    for (const std::string& problem : problems)
      std::cerr << "tipperary-worker: " << problem << "\n";
    return problems.empty() ? 0 : 1;
  }
  auto server = tipperary::worker::WorkerServer::Create(std::move(*config), source);
  if (!server.ok()) {
    std::cerr << "tipperary-worker: " << server.status().message() << "\n";
    return 1;
  }
  return (*server)->Run();
}
