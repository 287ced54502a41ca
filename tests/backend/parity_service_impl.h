// tipperary.testing.v1.ParityService (proto/tipperary/testing/v1/parity_service.proto): the
// grpc-gateway parity rules' methods, which echo their request, so that a test sees which
// fields the proxy bound and which method a rule reached.
#pragma once

#include <grpcpp/grpcpp.h>

#include "tipperary/testing/v1/parity_service.grpc.pb.h"

namespace tipperary::testing {

class ParityServiceImpl final : public tipperary::testing::v1::ParityService::Service {
 public:
  using AllTypes = tipperary::testing::v1::AllTypes;

  ParityServiceImpl();

  grpc::Status EchoParity(grpc::ServerContext* context, const AllTypes* request,
                          AllTypes* response) override;
  grpc::Status EchoShadow(grpc::ServerContext* context, const AllTypes* request,
                          AllTypes* response) override;

 private:
  // parity_service.proto defines no message of its own, so nothing else would pull its
  // generated descriptor into the binary, and server reflection (the generated pool) would not
  // know the service it lists.
  [[maybe_unused]] const void* descriptor_;
};

}  // namespace tipperary::testing
