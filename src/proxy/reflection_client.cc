#include "reflection_client.h"

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "grpc/reflection/v1alpha/reflection.pb.h"
#include "tipperary/common/log.h"

namespace tipperary::proxy {
namespace {

using google::protobuf::FileDescriptorProto;
using google::protobuf::FileDescriptorSet;
// The v1alpha messages serve both versions: v1 has the same ones under another package name,
// which the wire format does not carry.
namespace refl = grpc::reflection::v1alpha;

enum class Version { kV1, kV1alpha };

constexpr std::string_view VersionName(Version version) {
  return version == Version::kV1 ? "v1" : "v1alpha";
}

constexpr const char* ReflectionPath(Version version) {
  return version == Version::kV1 ? "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
                                 : "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo";
}

// What each cluster last answered, keyed by its address: a cluster made later at the same
// address inherits a guess, which costs at most one UNIMPLEMENTED round trip.
class VersionMemory {
 public:
  static VersionMemory& Get() {
    static VersionMemory* memory = new VersionMemory();
    return *memory;
  }
  std::optional<Version> Find(const void* cluster) {
    absl::MutexLock lock(&mu_);
    auto it = versions_.find(cluster);
    if (it == versions_.end()) return std::nullopt;
    return it->second;
  }
  // Whether this changed what was remembered.
  bool Remember(const void* cluster, Version version) {
    absl::MutexLock lock(&mu_);
    auto [it, inserted] = versions_.try_emplace(cluster, version);
    if (!inserted && it->second == version) return false;
    it->second = version;
    return true;
  }

 private:
  absl::Mutex mu_;
  absl::flat_hash_map<const void*, Version> versions_ ABSL_GUARDED_BY(mu_);
};

// The conversation's state; owned by the callbacks in flight.
class Fetcher : public std::enable_shared_from_this<Fetcher> {
 public:
  Fetcher(upstream::UpstreamCluster& cluster, std::chrono::nanoseconds timeout,
          ReflectionClient::Done done)
      : cluster_(cluster),
        timeout_(timeout),
        done_(std::move(done)),
        version_(VersionMemory::Get().Find(&cluster_).value_or(Version::kV1)) {}

  // The first question settles the version: the remembered one (v1 when none), then, on
  // UNIMPLEMENTED, the other.
  void Start() {
    refl::ServerReflectionRequest req;
    req.set_list_services("*");
    Ask(req, [self = shared_from_this()](const refl::ServerReflectionResponse& resp) {
      if (VersionMemory::Get().Remember(&self->cluster_, self->version_)) {
        TIPPERARY_LOG(kInfo, "reflection version",
                      {{"version", std::string(VersionName(self->version_))}});
      }
      if (!resp.has_list_services_response()) {
        self->Fail("reflection: list_services got no service list");
        return;
      }
      for (const auto& service : resp.list_services_response().service()) {
        // The reflection service describes itself; nobody transcodes to it.
        if (absl::StartsWith(service.name(), "grpc.reflection.")) continue;
        self->pending_symbols_.push_back(service.name());
      }
      self->Next();
    });
  }

 private:
  using OnResponse = std::function<void(const refl::ServerReflectionResponse&)>;

  // With skip_not_found, a NOT_FOUND answer is passed on as an empty response: grpc++ lists
  // services it cannot describe (its built-in health service), which must not block the rest.
  void Ask(const refl::ServerReflectionRequest& request, const OnResponse& on_response,
           bool skip_not_found = false) {
    upstream::GrpcRequest grpc;
    grpc.path = ReflectionPath(version_);
    grpc.message = request.SerializeAsString();
    grpc.timeout = timeout_;
    auto response = std::make_shared<std::string>();
    auto got = std::make_shared<bool>(false);
    upstream::CallHandlers handlers;
    handlers.on_message = [response, got](std::string msg) {
      if (!*got) *response = std::move(msg);
      *got = true;
    };
    auto self = shared_from_this();
    handlers.on_done = [self, response, got, on_response,
                        skip_not_found](const upstream::GrpcResult& result) {
      if (self->failed_) return;
      if (result.code == absl::StatusCode::kUnimplemented && !self->version_settled_) {
        self->version_settled_ = true;  // One fallback per fetch.
        self->version_ = self->version_ == Version::kV1 ? Version::kV1alpha : Version::kV1;
        TIPPERARY_LOG(kDebug, "reflection version unimplemented; trying the other",
                      {{"version", std::string(VersionName(self->version_))}});
        self->Start();
        return;
      }
      self->version_settled_ = true;
      if (result.code != absl::StatusCode::kOk || !*got) {
        self->Fail(absl::StrCat("reflection call failed: ", absl::StatusCodeToString(result.code),
                                ": ", result.grpc_message));
        return;
      }
      refl::ServerReflectionResponse parsed;
      if (!parsed.ParseFromString(*response)) {
        self->Fail("reflection: unparsable response");
        return;
      }
      if (parsed.has_error_response()) {
        if (skip_not_found && parsed.error_response().error_code() == 5) {
          on_response(refl::ServerReflectionResponse());
          return;
        }
        self->Fail(absl::StrCat("reflection error ", parsed.error_response().error_code(), ": ",
                                parsed.error_response().error_message()));
        return;
      }
      on_response(parsed);
    };
    cluster_.Call(std::move(grpc), std::move(handlers));
  }

  void AddFiles(const refl::ServerReflectionResponse& resp) {
    for (const std::string& bytes : resp.file_descriptor_response().file_descriptor_proto()) {
      FileDescriptorProto file;
      if (!file.ParseFromString(bytes)) continue;
      if (!seen_files_.insert(file.name()).second) continue;
      for (const std::string& dep : file.dependency()) {
        if (!seen_files_.contains(dep)) pending_files_.push_back(dep);
      }
      *set_.add_file() = std::move(file);
    }
  }

  void Next() {
    if (++steps_ > 10000) {
      Fail("reflection: too many files");
      return;
    }
    while (!pending_files_.empty() && seen_files_.contains(pending_files_.back())) {
      pending_files_.pop_back();
    }
    refl::ServerReflectionRequest req;
    bool symbol = !pending_symbols_.empty();
    if (symbol) {
      req.set_file_containing_symbol(pending_symbols_.back());
      pending_symbols_.pop_back();
    } else if (!pending_files_.empty()) {
      req.set_file_by_filename(pending_files_.back());
      pending_files_.pop_back();
    } else {
      Done(std::move(set_));
      return;
    }
    Ask(
        req,
        [self = shared_from_this(), symbol](const refl::ServerReflectionResponse& resp) {
          if (symbol && resp.message_response_case() ==
                            refl::ServerReflectionResponse::MESSAGE_RESPONSE_NOT_SET) {
            self->Next();  // A service the server lists but cannot describe.
            return;
          }
          if (!resp.has_file_descriptor_response()) {
            self->Fail("reflection: expected a file_descriptor_response");
            return;
          }
          self->AddFiles(resp);
          self->Next();
        },
        /*skip_not_found=*/symbol);
  }

  void Fail(const std::string& message) {
    failed_ = true;
    Done(absl::UnavailableError(message));
  }

  void Done(absl::StatusOr<FileDescriptorSet> result) {
    if (!done_) return;
    auto done = std::move(done_);
    done_ = nullptr;
    done(std::move(result));
  }

  upstream::UpstreamCluster& cluster_;
  std::chrono::nanoseconds timeout_;
  ReflectionClient::Done done_;
  Version version_;
  bool version_settled_ = false;  // An answer other than UNIMPLEMENTED came, or one fallback.
  std::vector<std::string> pending_symbols_;
  std::vector<std::string> pending_files_;
  absl::flat_hash_set<std::string> seen_files_;
  FileDescriptorSet set_;
  bool failed_ = false;
  int steps_ = 0;
};

}  // namespace

void ReflectionClient::Fetch(upstream::UpstreamCluster& cluster, std::chrono::nanoseconds timeout,
                             Done done) {
  std::make_shared<Fetcher>(cluster, timeout, std::move(done))->Start();
}

std::optional<std::string_view> ReflectionClient::RememberedVersion(
    const upstream::UpstreamCluster& cluster) {
  std::optional<Version> version = VersionMemory::Get().Find(&cluster);
  if (!version) return std::nullopt;
  return VersionName(*version);
}

}  // namespace tipperary::proxy
