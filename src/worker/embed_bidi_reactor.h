// EmbedBidi: every request message is one task; responses go out in request order, a bounded
// number of requests read ahead of their responses.
#pragma once

#include <grpcpp/grpcpp.h>

#include "tipperary/embedding/v1/embedding.grpc.pb.h"
#include "worker_core.h"

namespace tipperary::worker {

namespace pb = ::tipperary::embedding::v1;

grpc::ServerBidiReactor<pb::EmbedRequest, pb::EmbedResponse>* StartEmbedBidi(
    WorkerCore& core, grpc::CallbackServerContext* context);

}  // namespace tipperary::worker
