#include "tipperary/worker/server_reflection.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/server_builder_option.h>
#include <grpcpp/impl/server_builder_plugin.h>
#include <grpcpp/impl/server_initializer.h>

#include <algorithm>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "grpc/reflection/v1/reflection.grpc.pb.h"

namespace tipperary::worker {
namespace {

namespace refl = ::grpc::reflection::v1;
namespace protobuf = ::google::protobuf;

// The answers, word for word those of grpc++ 1.51's v1alpha ProtoServerReflection (so a client
// sees no difference between the two versions but the package name).
class ReflectionV1Service final : public refl::ServerReflection::CallbackService {
 public:
  // The server's services, known once it is built (ServerBuilderPlugin::Finish).
  void SetServiceList(std::vector<std::string> services) {
    absl::MutexLock lock(&mu_);
    services_ = std::move(services);
    have_services_ = true;
  }

  grpc::ServerBidiReactor<refl::ServerReflectionRequest, refl::ServerReflectionResponse>*
  ServerReflectionInfo(grpc::CallbackServerContext* /*context*/) override {
    return new Reactor(*this);
  }

 private:
  // One stream: a response per request, in order, until the client half-closes.
  class Reactor final : public grpc::ServerBidiReactor<refl::ServerReflectionRequest,
                                                       refl::ServerReflectionResponse> {
   public:
    explicit Reactor(const ReflectionV1Service& service) : service_(service) {
      StartRead(&request_);
    }
    void OnReadDone(bool ok) override {
      if (!ok) {
        Finish(grpc::Status::OK);
        return;
      }
      response_.Clear();
      service_.Answer(request_, &response_);
      StartWrite(&response_);
    }
    void OnWriteDone(bool ok) override {
      if (!ok) {
        Finish(grpc::Status::OK);  // The client went away; v1alpha also ends quietly.
        return;
      }
      StartRead(&request_);
    }
    void OnDone() override { delete this; }

   private:
    const ReflectionV1Service& service_;
    refl::ServerReflectionRequest request_;
    refl::ServerReflectionResponse response_;
  };

  void Answer(const refl::ServerReflectionRequest& request,
              refl::ServerReflectionResponse* response) const {
    grpc::Status status;
    switch (request.message_request_case()) {
      case refl::ServerReflectionRequest::kFileByFilename:
        status = FileByName(request.file_by_filename(), response);
        break;
      case refl::ServerReflectionRequest::kFileContainingSymbol:
        status = FileContainingSymbol(request.file_containing_symbol(), response);
        break;
      case refl::ServerReflectionRequest::kFileContainingExtension:
        status = FileContainingExtension(request.file_containing_extension(), response);
        break;
      case refl::ServerReflectionRequest::kAllExtensionNumbersOfType:
        status = AllExtensionNumbers(request.all_extension_numbers_of_type(),
                                     response->mutable_all_extension_numbers_response());
        break;
      case refl::ServerReflectionRequest::kListServices:
        status = ListServices(response->mutable_list_services_response());
        break;
      default:
        status = grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "");
    }
    if (!status.ok()) {
      refl::ErrorResponse* error = response->mutable_error_response();
      error->set_error_code(status.error_code());
      error->set_error_message(status.error_message());
    }
    response->set_valid_host(request.host());
    *response->mutable_original_request() = request;
  }

  grpc::Status ListServices(refl::ListServiceResponse* response) const {
    absl::MutexLock lock(&mu_);
    if (!have_services_) return grpc::Status(grpc::StatusCode::NOT_FOUND, "Services not found.");
    for (const std::string& name : services_) response->add_service()->set_name(name);
    return grpc::Status::OK;
  }

  grpc::Status FileByName(const std::string& name, refl::ServerReflectionResponse* response) const {
    const protobuf::FileDescriptor* file = pool_->FindFileByName(name);
    if (file == nullptr) return grpc::Status(grpc::StatusCode::NOT_FOUND, "File not found.");
    std::unordered_set<std::string> seen;
    FillFileDescriptors(file, response, &seen);
    return grpc::Status::OK;
  }

  grpc::Status FileContainingSymbol(const std::string& symbol,
                                    refl::ServerReflectionResponse* response) const {
    const protobuf::FileDescriptor* file = pool_->FindFileContainingSymbol(symbol);
    if (file == nullptr) return grpc::Status(grpc::StatusCode::NOT_FOUND, "Symbol not found.");
    std::unordered_set<std::string> seen;
    FillFileDescriptors(file, response, &seen);
    return grpc::Status::OK;
  }

  grpc::Status FileContainingExtension(const refl::ExtensionRequest& request,
                                       refl::ServerReflectionResponse* response) const {
    const protobuf::Descriptor* type = pool_->FindMessageTypeByName(request.containing_type());
    if (type == nullptr) return grpc::Status(grpc::StatusCode::NOT_FOUND, "Type not found.");
    const protobuf::FieldDescriptor* field =
        pool_->FindExtensionByNumber(type, request.extension_number());
    if (field == nullptr) return grpc::Status(grpc::StatusCode::NOT_FOUND, "Extension not found.");
    std::unordered_set<std::string> seen;
    FillFileDescriptors(field->file(), response, &seen);
    return grpc::Status::OK;
  }

  grpc::Status AllExtensionNumbers(const std::string& type_name,
                                   refl::ExtensionNumberResponse* response) const {
    const protobuf::Descriptor* type = pool_->FindMessageTypeByName(type_name);
    if (type == nullptr) return grpc::Status(grpc::StatusCode::NOT_FOUND, "Type not found.");
    std::vector<const protobuf::FieldDescriptor*> extensions;
    pool_->FindAllExtensions(type, &extensions);
    for (const protobuf::FieldDescriptor* extension : extensions) {
      response->add_extension_number(extension->number());
    }
    response->set_base_type_name(type_name);
    return grpc::Status::OK;
  }

  // The file, then (depth first) every import not sent yet in this response.
  static void FillFileDescriptors(const protobuf::FileDescriptor* file,
                                  refl::ServerReflectionResponse* response,
                                  std::unordered_set<std::string>* seen) {
    if (!seen->insert(file->name()).second) return;
    protobuf::FileDescriptorProto proto;
    file->CopyTo(&proto);
    response->mutable_file_descriptor_response()->add_file_descriptor_proto(
        proto.SerializeAsString());
    for (int i = 0; i < file->dependency_count(); ++i) {
      FillFileDescriptors(file->dependency(i), response, seen);
    }
  }

  const protobuf::DescriptorPool* const pool_ = protobuf::DescriptorPool::generated_pool();
  mutable absl::Mutex mu_;
  std::vector<std::string> services_ ABSL_GUARDED_BY(mu_);
  bool have_services_ ABSL_GUARDED_BY(mu_) = false;
};

class ReflectionV1Plugin final : public grpc::ServerBuilderPlugin {
 public:
  std::string name() override { return "tipperary_server_reflection_v1"; }
  void InitServer(grpc::ServerInitializer* initializer) override {
    initializer->RegisterService(service_);
  }
  void Finish(grpc::ServerInitializer* initializer) override {
    if (const std::vector<std::string>* services = initializer->GetServiceList()) {
      service_->SetServiceList(*services);
    }
  }
  void ChangeArguments(const std::string& /*name*/, void* /*value*/) override {}

 private:
  const std::shared_ptr<ReflectionV1Service> service_ = std::make_shared<ReflectionV1Service>();
};

class ReflectionV1Option final : public grpc::ServerBuilderOption {
 public:
  void UpdateArguments(grpc::ChannelArguments* /*args*/) override {}
  void UpdatePlugins(std::vector<std::unique_ptr<grpc::ServerBuilderPlugin>>* plugins) override {
    plugins->push_back(std::make_unique<ReflectionV1Plugin>());
  }
};

// Takes grpc++'s v1alpha plugin (ProtoServerReflectionPlugin, named "proto_server_reflection")
// out of one builder: the plugins a builder got from the process-wide factories are its own.
class WithoutV1alphaOption final : public grpc::ServerBuilderOption {
 public:
  void UpdateArguments(grpc::ChannelArguments* /*args*/) override {}
  void UpdatePlugins(std::vector<std::unique_ptr<grpc::ServerBuilderPlugin>>* plugins) override {
    std::erase_if(*plugins, [](const std::unique_ptr<grpc::ServerBuilderPlugin>& plugin) {
      return plugin->name() == "proto_server_reflection";
    });
  }
};

}  // namespace

void AddServerReflection(grpc::ServerBuilder& builder, ReflectionVersions versions) {
  if (versions.v1) builder.SetOption(std::make_unique<ReflectionV1Option>());
  if (!versions.v1alpha) builder.SetOption(std::make_unique<WithoutV1alphaOption>());
}

}  // namespace tipperary::worker
