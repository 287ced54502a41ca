#include "front_door_warmup.h"

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "tipperary/embedding/v1/embedding.grpc.pb.h"

namespace tipperary::worker {

std::string SelfTarget(const common::Endpoint& bound) {
  common::Endpoint self = bound;
  if (self.kind == common::Endpoint::Kind::kTcp) {
    if (self.host.empty() || self.host == "0.0.0.0") self.host = "127.0.0.1";
    if (self.host == "::") self.host = "::1";
  }
  return self.ToString();
}

absl::Status WarmFrontDoor(const std::string& target, const std::vector<std::string>& models,
                           std::chrono::nanoseconds timeout) {
  const auto deadline = std::chrono::system_clock::now() +
                        std::chrono::duration_cast<std::chrono::system_clock::duration>(timeout);
  grpc::ChannelArguments args;
  // Its own connection: never shared with a client's subchannel in this process (tests).
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  const std::unique_ptr<embedding::v1::EmbeddingService::Stub> stub =
      embedding::v1::EmbeddingService::NewStub(
          grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args));
  for (const std::string& model : models) {
    embedding::v1::EmbedRequest request;
    request.set_model(model);
    request.add_inputs("warm-up request");
    request.set_priority(embedding::v1::PRIORITY_INTERACTIVE);
    embedding::v1::EmbedResponse response;
    grpc::ClientContext context;
    context.set_deadline(deadline);
    // The listener is up before this runs; a connection that is not ready yet is waited for
    // (within the deadline) instead of failing at once.
    context.set_wait_for_ready(true);
    const grpc::Status status = stub->Embed(&context, request, &response);
    if (!status.ok()) {
      return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                          absl::StrCat("model ", model, ": ", status.error_message()));
    }
  }
  return absl::OkStatus();
}

}  // namespace tipperary::worker
