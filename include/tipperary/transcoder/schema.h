// The protobuf schema the proxy transcodes with: a descriptor pool built at run time from
// FileDescriptorSets (protoc --include_imports output or server reflection), plus the built-in
// files every proxy knows (google/protobuf well-known types, google/api/{http,annotations,
// httpbody}.proto, google/rpc/{status,code,error_details}.proto).
//
//   absl::StatusOr<FileDescriptorSet> set = ReadDescriptorSetFile("/etc/tipperary/api.pb");
//   if (!set.ok()) return set.status();
//   absl::StatusOr<std::shared_ptr<const Schema>> schema = Schema::Create({*set});
//   const MethodDescriptor* m = (*schema)->FindMethod("pkg.Svc/Method");
//
// A Schema is immutable and thread-safe once created.
#pragma once

#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/descriptor_database.h>
#include <google/protobuf/dynamic_message.h>
#include <google/protobuf/util/type_resolver.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace tipperary::transcoder {

inline constexpr std::string_view kTypeUrlPrefix = "type.googleapis.com";

// "type.googleapis.com/" + full_name.
std::string TypeUrl(std::string_view full_name);

absl::StatusOr<google::protobuf::FileDescriptorSet> ReadDescriptorSetFile(const std::string& path);

class Schema {
 public:
  // Files from earlier sets win over later ones with the same name; the built-in files come
  // last, and one whose symbols are already defined by a user file is skipped. Errors (missing
  // imports, conflicting symbols, unparsable files) are InvalidArgument naming the file.
  static absl::StatusOr<std::shared_ptr<const Schema>> Create(
      const std::vector<google::protobuf::FileDescriptorSet>& sets);

  ~Schema();
  Schema(const Schema&) = delete;
  Schema& operator=(const Schema&) = delete;

  const google::protobuf::DescriptorPool& pool() const { return *pool_; }

  // "pkg.Svc/Method" (a leading '/' is accepted too); nullptr when unknown.
  const google::protobuf::MethodDescriptor* FindMethod(std::string_view name) const;
  const google::protobuf::Descriptor* FindMessage(std::string_view full_name) const;

  // Every service of every file, in file order.
  const std::vector<const google::protobuf::ServiceDescriptor*>& services() const {
    return services_;
  }
  // Names of the files loaded (user and built-in).
  const std::vector<std::string>& file_names() const { return file_names_; }

  // Resolves type URLs of any prefix ("<anything>/pkg.Msg") against pool(), caching the
  // converted google.protobuf.Type, for util::JsonToBinaryString / BinaryToJsonString.
  google::protobuf::util::TypeResolver* type_resolver() const { return resolver_.get(); }

  // Prototype for full messages of this pool (thread-safe; messages may be created on arenas).
  const google::protobuf::Message* Prototype(const google::protobuf::Descriptor* type) const;

 private:
  Schema();

  std::unique_ptr<google::protobuf::SimpleDescriptorDatabase> db_;
  std::unique_ptr<google::protobuf::DescriptorPool> pool_;
  std::unique_ptr<google::protobuf::util::TypeResolver> resolver_;
  std::unique_ptr<google::protobuf::DynamicMessageFactory> factory_;
  std::vector<const google::protobuf::ServiceDescriptor*> services_;
  std::vector<std::string> file_names_;
};

}  // namespace tipperary::transcoder
