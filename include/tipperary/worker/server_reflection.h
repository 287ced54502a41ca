// gRPC server reflection v1 (grpc.reflection.v1.ServerReflection) for a grpc++ server. grpc++
// 1.51 ships only the v1alpha plugin (grpcpp/ext/proto_server_reflection_plugin.h); current
// clients (grpcurl, grpcui, Postman, tipperary-proxy) ask v1 first. This answers v1 from the
// process's generated descriptor pool exactly as that plugin answers v1alpha: file_by_filename,
// file_containing_symbol, file_containing_extension, all_extension_numbers_of_type and
// list_services (every service the server registered, reflection included), with the same
// NOT_FOUND errors in an error_response.
//
//   grpc::reflection::InitProtoReflectionServerBuilderPlugin();  // v1alpha, if wanted too
//   grpc::ServerBuilder builder;
//   builder.RegisterService(&my_service);
//   AddServerReflectionV1(builder);  // before BuildAndStart
//   std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
#pragma once

#include <grpcpp/server_builder.h>

namespace tipperary::worker {

// Registers the v1 reflection service on the server `builder` builds (a builder option: the
// service learns the server's final service list once it is built).
void AddServerReflectionV1(grpc::ServerBuilder& builder);

}  // namespace tipperary::worker
