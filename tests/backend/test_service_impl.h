// The test backend's implementation of tipperary.testing.v1.TestService (sync grpc++ API).
//
// Every method reports what it received (Thing.received_json, MetadataResponse.received) so the
// proxy's tests can check how path, query, body and headers were bound; Fail returns rich
// google.rpc.Status details; Slow notices cancellation and logs it to stderr.
//
//   TestServiceImpl service;
//   grpc::ServerBuilder builder;
//   builder.RegisterService(&service);
//   std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdint>

#include "tipperary/testing/v1/test_service.grpc.pb.h"

namespace tipperary::testing {

class TestServiceImpl final : public tipperary::testing::v1::TestService::Service {
 public:
  using AllTypes = tipperary::testing::v1::AllTypes;
  using Thing = tipperary::testing::v1::Thing;

  grpc::Status Echo(grpc::ServerContext* context, const AllTypes* request,
                    AllTypes* response) override;
  grpc::Status Unannotated(grpc::ServerContext* context, const AllTypes* request,
                           AllTypes* response) override;
  grpc::Status GetThing(grpc::ServerContext* context, const v1::GetThingRequest* request,
                        Thing* response) override;
  grpc::Status GetThingName(grpc::ServerContext* context, const v1::GetThingRequest* request,
                            Thing* response) override;
  grpc::Status ListThings(grpc::ServerContext* context, const v1::ListThingsRequest* request,
                          v1::ListThingsResponse* response) override;
  grpc::Status CreateThing(grpc::ServerContext* context, const v1::CreateThingRequest* request,
                           Thing* response) override;
  grpc::Status UpdateThing(grpc::ServerContext* context, const v1::UpdateThingRequest* request,
                           Thing* response) override;
  grpc::Status DeleteThing(grpc::ServerContext* context, const v1::DeleteThingRequest* request,
                           google::protobuf::Empty* response) override;
  grpc::Status RunThing(grpc::ServerContext* context, const v1::RunThingRequest* request,
                        Thing* response) override;
  grpc::Status Lock(grpc::ServerContext* context, const v1::LockRequest* request,
                    Thing* response) override;
  grpc::Status GetFile(grpc::ServerContext* context, const v1::GetFileRequest* request,
                       Thing* response) override;
  grpc::Status Fail(grpc::ServerContext* context, const v1::FailRequest* request,
                    google::protobuf::Empty* response) override;
  grpc::Status Metadata(grpc::ServerContext* context, const v1::MetadataRequest* request,
                        v1::MetadataResponse* response) override;
  grpc::Status Slow(grpc::ServerContext* context, const v1::SlowRequest* request,
                    v1::SlowResponse* response) override;
  grpc::Status Upload(grpc::ServerContext* context, const google::api::HttpBody* request,
                      v1::UploadResponse* response) override;
  grpc::Status Download(grpc::ServerContext* context, const v1::DownloadRequest* request,
                        google::api::HttpBody* response) override;
  grpc::Status StreamThings(grpc::ServerContext* context, const v1::StreamRequest* request,
                            grpc::ServerWriter<Thing>* writer) override;
  grpc::Status CollectThings(grpc::ServerContext* context, grpc::ServerReader<Thing>* reader,
                             v1::ListThingsResponse* response) override;
  grpc::Status EchoThings(grpc::ServerContext* context,
                          grpc::ServerReaderWriter<Thing, Thing>* stream) override;
  grpc::Status Big(grpc::ServerContext* context, const v1::BigRequest* request,
                   v1::BigResponse* response) override;

  // Slow and StreamThings calls that ended early because the client cancelled or the deadline
  // passed (each also logs a "cancelled" line to stderr).
  int64_t cancelled_calls() const { return cancelled_calls_.load(); }

 private:
  std::atomic<int64_t> cancelled_calls_{0};
};

}  // namespace tipperary::testing
