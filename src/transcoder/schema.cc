#include "tipperary/transcoder/schema.h"

#include <google/protobuf/any.pb.h>
#include <google/protobuf/api.pb.h>
#include <google/protobuf/duration.pb.h>
#include <google/protobuf/empty.pb.h>
#include <google/protobuf/field_mask.pb.h>
#include <google/protobuf/source_context.pb.h>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/timestamp.pb.h>
#include <google/protobuf/type.pb.h>
#include <google/protobuf/util/type_resolver_util.h>
#include <google/protobuf/wrappers.pb.h>

#include <fstream>
#include <memory>
#include <sstream>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "google/api/annotations.pb.h"
#include "google/api/http.pb.h"
#include "google/api/httpbody.pb.h"
#include "google/rpc/code.pb.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "tipperary/api/v1/http_api.pb.h"

namespace tipperary::transcoder {
namespace {

namespace pb = google::protobuf;

// The files every Schema has, in dependency order.
std::vector<const pb::FileDescriptor*> BuiltinFiles() {
  return {
      pb::DescriptorProto::descriptor()->file(),  // descriptor.proto
      pb::Any::descriptor()->file(),
      pb::Duration::descriptor()->file(),
      pb::Empty::descriptor()->file(),
      pb::FieldMask::descriptor()->file(),
      pb::Struct::descriptor()->file(),
      pb::Timestamp::descriptor()->file(),
      pb::Int64Value::descriptor()->file(),
      pb::SourceContext::descriptor()->file(),
      pb::Type::descriptor()->file(),
      pb::Api::descriptor()->file(),
      google::api::HttpRule::descriptor()->file(),
      // Naming the extension links annotations.pb.o, which registers the file.
      google::api::http.number() > 0
          ? pb::DescriptorPool::generated_pool()->FindFileByName("google/api/annotations.proto")
          : nullptr,
      google::api::HttpBody::descriptor()->file(),
      google::rpc::Status::descriptor()->file(),
      google::rpc::Code_descriptor()->file(),
      google::rpc::ErrorInfo::descriptor()->file(),
      tipperary::api::v1::HttpApiOptions::descriptor()->file(),
  };
}

// Resolves "<any prefix>/pkg.Type" and keeps converted types: protobuf's resolver rebuilds a
// google.protobuf.Type from descriptors on every call, and every JSON conversion asks again.
class CachingTypeResolver : public pb::util::TypeResolver {
 public:
  explicit CachingTypeResolver(const pb::DescriptorPool* pool)
      : inner_(pb::util::NewTypeResolverForDescriptorPool(std::string(kTypeUrlPrefix), pool)) {}

  pb::util::Status ResolveMessageType(const std::string& type_url, pb::Type* type) override {
    return Resolve(type_url, &types_, type, [this](const std::string& url, pb::Type* t) {
      return inner_->ResolveMessageType(url, t);
    });
  }
  pb::util::Status ResolveEnumType(const std::string& type_url, pb::Enum* type) override {
    return Resolve(type_url, &enums_, type, [this](const std::string& url, pb::Enum* t) {
      return inner_->ResolveEnumType(url, t);
    });
  }

 private:
  template <typename T, typename F>
  pb::util::Status Resolve(const std::string& type_url,
                           absl::flat_hash_map<std::string, std::shared_ptr<const T>>* cache,
                           T* out, F&& fetch) {
    size_t slash = type_url.rfind('/');
    std::string name = slash == std::string::npos ? type_url : type_url.substr(slash + 1);
    {
      absl::ReaderMutexLock lock(&mu_);
      auto it = cache->find(name);
      if (it != cache->end()) {
        *out = *it->second;
        return pb::util::Status();
      }
    }
    auto fresh = std::make_shared<T>();
    pb::util::Status s = fetch(absl::StrCat(std::string(kTypeUrlPrefix), "/", name), fresh.get());
    if (!s.ok()) return s;  // Not cached: hostile type URLs must not grow the cache.
    *out = *fresh;
    absl::MutexLock lock(&mu_);
    cache->emplace(name, std::move(fresh));
    return pb::util::Status();
  }

  std::unique_ptr<pb::util::TypeResolver> inner_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<const pb::Type>> types_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::shared_ptr<const pb::Enum>> enums_ ABSL_GUARDED_BY(mu_);
};

class CollectingErrors : public pb::DescriptorPool::ErrorCollector {
 public:
  void AddError(const std::string& filename, const std::string& element_name,
                const pb::Message* /*descriptor*/, ErrorLocation /*location*/,
                const std::string& message) override {
    if (errors_.size() < 5) {
      errors_.push_back(element_name.empty() ? message : absl::StrCat(element_name, ": ", message));
    }
  }
  std::string Joined() const { return absl::StrJoin(errors_, "; "); }

 private:
  std::vector<std::string> errors_;
};

}  // namespace

std::string TypeUrl(std::string_view full_name) {
  std::string url;
  url.reserve(kTypeUrlPrefix.size() + 1 + full_name.size());
  url.append(kTypeUrlPrefix);
  url.push_back('/');
  url.append(full_name);
  return url;
}

absl::StatusOr<pb::FileDescriptorSet> ReadDescriptorSetFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open descriptor set ", path));
  std::stringstream buf;
  buf << in.rdbuf();
  if (in.bad()) return absl::InvalidArgumentError(absl::StrCat("cannot read ", path));
  pb::FileDescriptorSet set;
  if (!set.ParseFromString(buf.str())) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, " is not a serialized google.protobuf.FileDescriptorSet"));
  }
  return set;
}

Schema::Schema() = default;
Schema::~Schema() = default;

absl::StatusOr<std::shared_ptr<const Schema>> Schema::Create(
    const std::vector<pb::FileDescriptorSet>& sets) {
  // Gather files by name, first copy wins.
  std::vector<const pb::FileDescriptorProto*> order;
  absl::flat_hash_map<std::string, const pb::FileDescriptorProto*> by_name;
  for (const pb::FileDescriptorSet& set : sets) {
    for (const pb::FileDescriptorProto& file : set.file()) {
      if (file.name().empty())
        return absl::InvalidArgumentError("descriptor set has a file with no name");
      if (by_name.emplace(file.name(), &file).second) order.push_back(&file);
    }
  }
  std::vector<std::unique_ptr<pb::FileDescriptorProto>> builtin_protos;
  for (const pb::FileDescriptor* file : BuiltinFiles()) {
    if (file == nullptr || by_name.contains(file->name())) continue;
    auto proto = std::make_unique<pb::FileDescriptorProto>();
    file->CopyTo(proto.get());
    by_name.emplace(proto->name(), proto.get());
    order.push_back(proto.get());
    builtin_protos.push_back(std::move(proto));
  }

  std::shared_ptr<Schema> schema(new Schema());
  schema->pool_ = std::make_unique<pb::DescriptorPool>();
  pb::DescriptorPool* pool = schema->pool_.get();

  // Depth-first build so that imports come first; a state map detects cycles.
  enum class State { kBuilding, kDone, kSkipped };
  absl::flat_hash_map<std::string, State> state;
  absl::flat_hash_set<const pb::FileDescriptorProto*> builtin_set;
  for (const auto& p : builtin_protos) builtin_set.insert(p.get());
  struct Frame {
    const pb::FileDescriptorProto* file;
    int next_dep;
  };
  for (const pb::FileDescriptorProto* root : order) {
    if (state.contains(root->name())) continue;
    std::vector<Frame> stack{{root, 0}};
    state[root->name()] = State::kBuilding;
    while (!stack.empty()) {
      Frame& top = stack.back();
      if (top.next_dep < top.file->dependency_size()) {
        const std::string& dep = top.file->dependency(top.next_dep++);
        auto st = state.find(dep);
        if (st != state.end()) {
          if (st->second == State::kBuilding) {
            return absl::InvalidArgumentError(
                absl::StrCat("descriptor file ", top.file->name(), ": import cycle through ", dep));
          }
          continue;
        }
        auto it = by_name.find(dep);
        if (it == by_name.end()) {
          return absl::InvalidArgumentError(absl::StrCat(
              "descriptor file ", top.file->name(), " imports ", dep,
              " which is not in the descriptor sets (build them with protoc --include_imports)"));
        }
        state[dep] = State::kBuilding;
        stack.push_back({it->second, 0});
        continue;
      }
      const pb::FileDescriptorProto* file = top.file;
      stack.pop_back();
      bool skipped_dep = false;
      for (const std::string& dep : file->dependency()) {
        if (state[dep] == State::kSkipped) skipped_dep = true;
      }
      CollectingErrors errors;
      const pb::FileDescriptor* built =
          skipped_dep ? nullptr : pool->BuildFileCollectingErrors(*file, &errors);
      if (built == nullptr) {
        // A built-in file that clashes with the user's own copy of its symbols is dropped.
        if (builtin_set.contains(file)) {
          state[file->name()] = State::kSkipped;
          continue;
        }
        return absl::InvalidArgumentError(
            absl::StrCat("descriptor file ", file->name(), ": ",
                         skipped_dep ? "depends on a built-in file that clashes with another file"
                                     : errors.Joined()));
      }
      state[file->name()] = State::kDone;
      schema->file_names_.push_back(file->name());
      for (int i = 0; i < built->service_count(); ++i) {
        schema->services_.push_back(built->service(i));
      }
    }
  }
  schema->resolver_ = std::make_unique<CachingTypeResolver>(pool);
  schema->factory_ = std::make_unique<pb::DynamicMessageFactory>(pool);
  schema->factory_->SetDelegateToGeneratedFactory(false);
  return std::shared_ptr<const Schema>(std::move(schema));
}

const pb::MethodDescriptor* Schema::FindMethod(std::string_view name) const {
  if (!name.empty() && name.front() == '/') name.remove_prefix(1);
  size_t slash = name.rfind('/');
  if (slash == std::string_view::npos) return nullptr;
  const pb::ServiceDescriptor* service =
      pool_->FindServiceByName(std::string(name.substr(0, slash)));
  if (service == nullptr) return nullptr;
  return service->FindMethodByName(std::string(name.substr(slash + 1)));
}

const pb::Descriptor* Schema::FindMessage(std::string_view full_name) const {
  return pool_->FindMessageTypeByName(std::string(full_name));
}

const pb::Message* Schema::Prototype(const pb::Descriptor* type) const {
  return factory_->GetPrototype(type);
}

}  // namespace tipperary::transcoder
