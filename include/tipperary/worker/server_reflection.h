// gRPC server reflection v1 (grpc.reflection.v1.ServerReflection) for a grpc++ server. grpc++
// 1.51 ships only the v1alpha plugin (grpcpp/ext/proto_server_reflection_plugin.h); current
// clients (grpcurl, grpcui, Postman, tipperary-proxy) ask v1 first. This answers v1 from the
// process's generated descriptor pool exactly as that plugin answers v1alpha: file_by_filename,
// file_containing_symbol, file_containing_extension, all_extension_numbers_of_type and
// list_services (every service the server registered, reflection included), with the same
// NOT_FOUND errors in an error_response. One difference: on a stream of several questions, each
// v1 answer carries its own files only (grpc++ 1.51's v1alpha repeats earlier answers' files).
//
//   grpc::reflection::InitProtoReflectionServerBuilderPlugin();  // v1alpha (grpc++_reflection)
//   grpc::ServerBuilder builder;
//   builder.RegisterService(&my_service);
//   AddServerReflection(builder, {.v1 = true, .v1alpha = true});  // before BuildAndStart
//   std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
#pragma once

#include <grpcpp/server_builder.h>

namespace tipperary::worker {

struct ReflectionVersions {
  bool v1 = true;
  // grpc++'s own plugin: libgrpc++_reflection adds it to every server built once the library is
  // loaded (and InitProtoReflectionServerBuilderPlugin() does before the builder is made). false
  // takes it out of this builder, for a server that speaks v1 alone.
  bool v1alpha = true;
};

// Sets up the reflection versions of the server `builder` builds (builder options: the v1
// service learns the server's final service list once it is built).
void AddServerReflection(grpc::ServerBuilder& builder, ReflectionVersions versions);

}  // namespace tipperary::worker
