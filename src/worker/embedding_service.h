// tipperary.embedding.v1.EmbeddingService on grpc++'s callback API. Every RPC checks
// admission (ready, not draining), tokenises on the calling gRPC thread, submits EmbedTasks to
// the model's batcher and completes from the batcher's threads; client cancellation sets the
// tasks' cancelled flag so their queued texts are dropped without compute.
//
//   EmbeddingService service(core);
//   builder.RegisterService(&service);
#pragma once

#include <cstdint>

#include "tipperary/embedding/v1/embedding.grpc.pb.h"
#include "worker_core.h"

namespace tipperary::worker {

namespace pb = ::tipperary::embedding::v1;

class EmbeddingService final : public pb::EmbeddingService::CallbackService {
 public:
  explicit EmbeddingService(WorkerCore& core);

  grpc::ServerUnaryReactor* Embed(grpc::CallbackServerContext* context,
                                  const pb::EmbedRequest* request,
                                  pb::EmbedResponse* response) override;
  grpc::ServerUnaryReactor* CreateEmbeddings(grpc::CallbackServerContext* context,
                                             const pb::CreateEmbeddingsRequest* request,
                                             pb::CreateEmbeddingsResponse* response) override;
  grpc::ServerWriteReactor<pb::EmbedResponse>* EmbedStream(
      grpc::CallbackServerContext* context, const pb::EmbedRequest* request) override;
  grpc::ServerBidiReactor<pb::EmbedRequest, pb::EmbedResponse>* EmbedBidi(
      grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* Tokenize(grpc::CallbackServerContext* context,
                                     const pb::TokenizeRequest* request,
                                     pb::TokenizeResponse* response) override;
  grpc::ServerUnaryReactor* ListModels(grpc::CallbackServerContext* context,
                                       const pb::ListModelsRequest* request,
                                       pb::ListModelsResponse* response) override;
  grpc::ServerUnaryReactor* GetModel(grpc::CallbackServerContext* context,
                                     const pb::GetModelRequest* request,
                                     pb::Model* response) override;

 private:
  WorkerCore& core_;
  const uint32_t created_;  // Unix seconds at start: Model.created.
};

}  // namespace tipperary::worker
