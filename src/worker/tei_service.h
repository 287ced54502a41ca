// tipperary.embedding.v1.TextEmbeddingsInference (proto/tipperary/embedding/v1/tei.proto):
// Hugging Face TEI's API on the worker's own machinery. Embed tokenises as TEI does (its
// defaults: normalize and truncate true; truncation_direction; prompt_name; token ids as the
// whole model input) and then runs like EmbeddingService.Embed (same admission, batcher and
// cancellation); Tokenize, Decode, Info and Health answer on the calling gRPC thread. Errors
// carry TEI's error_type (tei_inputs.h) for the proxy's TEI error format.
//
//   TeiService tei(core);
//   builder.RegisterService(&tei);
#pragma once

#include "tipperary/embedding/v1/tei.grpc.pb.h"
#include "worker_core.h"

namespace tipperary::worker {

namespace pb = ::tipperary::embedding::v1;

class TeiService final : public pb::TextEmbeddingsInference::CallbackService {
 public:
  explicit TeiService(WorkerCore& core) : core_(core) {}

  grpc::ServerUnaryReactor* Embed(grpc::CallbackServerContext* context,
                                  const pb::TeiEmbedRequest* request,
                                  pb::TeiEmbedResponse* response) override;
  grpc::ServerUnaryReactor* Tokenize(grpc::CallbackServerContext* context,
                                     const pb::TeiTokenizeRequest* request,
                                     pb::TeiTokenizeResponse* response) override;
  grpc::ServerUnaryReactor* Decode(grpc::CallbackServerContext* context,
                                   const pb::TeiDecodeRequest* request,
                                   pb::TeiDecodeResponse* response) override;
  grpc::ServerUnaryReactor* Info(grpc::CallbackServerContext* context,
                                 const pb::TeiInfoRequest* request, pb::TeiInfo* response) override;
  grpc::ServerUnaryReactor* Health(grpc::CallbackServerContext* context,
                                   const pb::TeiHealthRequest* request,
                                   google::api::HttpBody* response) override;

 private:
  // Records the call and finishes it with `status` on the default reactor.
  grpc::ServerUnaryReactor* Finish(grpc::CallbackServerContext* context, const std::string& model,
                                   const absl::Status& status, int64_t inputs = 0,
                                   int64_t tokens = 0);

  WorkerCore& core_;
};

}  // namespace tipperary::worker
