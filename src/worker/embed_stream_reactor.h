// EmbedStream: the request's texts in chunks, a few chunks in the batcher at a time,
// responses written in chunk order as they complete.
#pragma once

#include <grpcpp/grpcpp.h>

#include "tipperary/embedding/v1/embedding.grpc.pb.h"
#include "worker_core.h"

namespace tipperary::worker {

namespace pb = ::tipperary::embedding::v1;

grpc::ServerWriteReactor<pb::EmbedResponse>* StartEmbedStream(WorkerCore& core,
                                                              grpc::CallbackServerContext* context,
                                                              const pb::EmbedRequest& request);

}  // namespace tipperary::worker
