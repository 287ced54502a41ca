// The unary embedding calls (Embed, CreateEmbeddings): one task, one response, finished from
// the batcher's thread that completes the task.
#pragma once

#include <grpcpp/grpcpp.h>

#include "tipperary/embedding/v1/embedding.grpc.pb.h"
#include "worker_core.h"

namespace tipperary::worker {

namespace pb = ::tipperary::embedding::v1;

// `fill` writes the response from the finished task; it runs on a batcher thread.
using FillResponse = std::function<void(const ModelRuntime&, const EmbedTask&)>;
grpc::ServerUnaryReactor* StartUnaryEmbed(WorkerCore& core, grpc::CallbackServerContext* context,
                                          const std::string& requested_model,
                                          const EmbedInputs& inputs, EmbedOptions options,
                                          const FillResponse& fill);
// The same for a model the caller has already admitted (and prepared `inputs` for: TEI's API
// tokenises with it), so a reload in between cannot swap it.
grpc::ServerUnaryReactor* StartUnaryEmbed(WorkerCore& core, grpc::CallbackServerContext* context,
                                          std::shared_ptr<ModelRuntime> model,
                                          const EmbedInputs& inputs, EmbedOptions options,
                                          const FillResponse& fill);

}  // namespace tipperary::worker
