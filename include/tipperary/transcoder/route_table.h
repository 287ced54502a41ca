// The HTTP routes of a schema: from google.api.http annotations, from config routes and,
// optionally, "POST /pkg.Svc/Method" for every method. Built once, then matched per request.
//
//   RouteTableOptions options;  // annotations on, every service
//   absl::StatusOr<std::shared_ptr<const RouteTable>> table =
//       RouteTable::Build(schema, config_routes, options);
//   RouteTable::MatchResult m = (*table)->Match("GET", "/v1/shelves/1/things/2");
//   if (m.status == RouteTable::MatchStatus::kOk) { use m.route and m.bindings }
//
// Matching walks a trie of path segments: literal segments beat "*", which beats "**" (the
// most specific template wins, whatever the order of registration), a template with a verb
// (":run") beats one without. No regexes; cost is linear in the path length for typical tables.
//
// One bad rule never costs the others (docs/migrating-from-grpc-gateway.md): a rule that
// cannot be served is skipped, and of two rules with the same HTTP method and template shape
// the later one wins (grpc-gateway v2's mux: the last registered handler wins; first_wins for
// v1's default), except that a
// config route always beats an annotation and a gRPC method path never beats anything. Both
// are listed in issues() (and /routes); with options.strict, any problem fails Build instead.
#pragma once

#include <google/protobuf/descriptor.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "tipperary/transcoder/path_template.h"
#include "tipperary/transcoder/schema.h"

namespace tipperary::transcoder {

// How a route's error bodies look: google.rpc.Status's JSON mapping, or the error object of the
// HTTP API the route imitates (OpenAI's {"error": {"message", "type", "param", "code"}}, Hugging
// Face TEI's {"error": "...", "error_type": "Validation"}, which also has statuses of its own).
enum class ErrorFormat { kGoogleRpc, kOpenAi, kTei };

// A route from configuration (the lead maps config::RouteConfig onto it).
struct RouteSpec {
  std::string http_method;    // GET, POST, ... or a custom verb such as LOCK.
  std::string path_template;  // "/v1/{name=things/*}:run"
  std::string grpc_method;    // "pkg.Svc/Method"
  std::string body;           // "", "*" or a top-level request field.
  std::string response_body;  // "" or a top-level response field.
  std::optional<std::chrono::nanoseconds> timeout;
  // Unset: what the method's tipperary.api.v1.http_api option says (else the defaults).
  std::optional<ErrorFormat> error_format;
  std::optional<bool> ignore_unknown_fields;
  // Where the rule was written ("proxy.yaml:12:5: routes[2]"), for its problems; may be empty.
  std::string location = {};
};

struct RouteTableOptions {
  bool annotations = true;               // Routes from (google.api.http).
  bool allow_grpc_method_paths = false;  // POST /pkg.Svc/Method, body "*".
  // Services whose annotations / gRPC paths are routed: "pkg.Svc", or "pkg.*" for every service
  // whose full name starts with "pkg." (subpackages included), or "*". Empty: every service.
  // Config routes are explicit and not filtered.
  std::vector<std::string> service_filters;
  // Build fails on the first problem found, listing every problem, instead of skipping the rule
  // (transcoding.strict: refuse to start, for CI pipelines).
  bool strict = false;
  // Of two rules of the same source with the same method and template shape, the later wins
  // (grpc-gateway v2's mux, v1's with WithLastMatchWins), or with first_wins the earlier (v1's
  // default mux).
  bool first_wins = false;
};

enum class RouteSource { kAnnotation, kConfig, kGrpc };

// "annotation", "config", "grpc".
const char* RouteSourceName(RouteSource source);

// A rule that is not served as written, for the log, /routes and --check-config.
struct RouteIssue {
  enum class Kind {
    kSkipped,   // The rule cannot be served: `reason` says why.
    kShadowed,  // Another rule with the same HTTP method and template shape won.
  };
  Kind kind = Kind::kSkipped;
  std::string grpc_method;  // "pkg.Svc/Method", or as configured when unknown.
  std::string http_method;
  std::string path;  // The template as written.
  std::string body;
  std::string response_body;
  RouteSource source = RouteSource::kAnnotation;
  std::string reason;  // kSkipped: why; kShadowed: the winner, described.
  // kShadowed: the winning rule's gRPC method, "METHOD path" and source.
  std::string shadowed_by_method;
  std::string shadowed_by_rule;
  RouteSource shadowed_by_source = RouteSource::kAnnotation;
  // False for the overrides that are the point of the feature (a config route replacing an
  // annotation, an annotation hiding a gRPC method path): not warned about, not strict errors.
  bool problem = true;
  std::string location;  // A config route's place in its file (RouteSpec::location).

  // One line: "pkg.Svc/Method: GET /v1/x (annotation): skipped: <reason>", or for a config route
  // with a location "proxy.yaml:12:5: routes[2]: pkg.Svc/Method: GET /v1/x (config): ...".
  std::string Describe() const;
};

struct Route {
  std::string label;  // "POST /v1/{parent=shelves/*}/things": bounded-cardinality metric label.
  const google::protobuf::MethodDescriptor* method = nullptr;
  std::string grpc_path;      // "/pkg.Svc/Method"
  std::string http_method;    // Upper case as configured.
  std::string body;           // "", "*" or a request field path ("a" or "a.b").
  std::string response_body;  // "" or a response field path.
  std::optional<std::chrono::nanoseconds> timeout;
  bool server_streaming = false;
  bool client_streaming = false;  // The request is sent as a stream of one message.
  RouteSource source = RouteSource::kAnnotation;
  // A config route's index in the RouteSpecs given to Build (-1 otherwise): the caller's own
  // per-route settings (retry policy, ...) are looked up by it.
  int config_index = -1;
  PathTemplate path_template;
  // From the method's tipperary.api.v1.http_api option (proto/tipperary/api/v1/http_api.proto),
  // overridden by a config route's keys. ignore_unknown_fields unset: the transcoder's option.
  ErrorFormat error_format = ErrorFormat::kGoogleRpc;
  std::optional<bool> ignore_unknown_fields;

  // Resolved once at build time for the transcoder.
  const google::protobuf::Descriptor* request_type = nullptr;
  const google::protobuf::Descriptor* response_type = nullptr;
  const google::protobuf::FieldDescriptor* body_field = nullptr;           // body names a field.
  const google::protobuf::FieldDescriptor* response_body_field = nullptr;  // response_body set.
  // The fields from the request (response) type down to body_field (response_body_field): one
  // for a top-level field, more for a nested path such as "a.b" (grpc-gateway accepts them).
  std::vector<const google::protobuf::FieldDescriptor*> body_path;
  std::vector<const google::protobuf::FieldDescriptor*> response_body_path;
  std::string request_type_url;   // type.googleapis.com/<request type>
  std::string response_type_url;  // type.googleapis.com/<response type>
};

class RouteTable {
 public:
  enum class MatchStatus { kOk, kNotFound, kMethodNotAllowed };
  struct MatchResult {
    const Route* route = nullptr;
    PathTemplate::Bindings bindings;  // (field path, decoded value)
    MatchStatus status = MatchStatus::kNotFound;
    std::vector<std::string> allowed_methods;  // kMethodNotAllowed: sorted, for "Allow".
  };

  // Problems (unknown method or field, malformed template, body/response_body/path variable
  // naming a missing or unsuitable field, two different routes with the same method and
  // template shape) are issues(); with options.strict they are one InvalidArgument listing
  // them all, one per line. A config route replaces an annotation route with the same method
  // and template shape; gRPC method paths never replace anything.
  static absl::StatusOr<std::shared_ptr<const RouteTable>> Build(
      std::shared_ptr<const Schema> schema, const std::vector<RouteSpec>& config_routes,
      const RouteTableOptions& options);

  ~RouteTable();
  RouteTable(const RouteTable&) = delete;
  RouteTable& operator=(const RouteTable&) = delete;

  // `path` excludes the query string. http_method is compared case-sensitively (HTTP methods
  // are case-sensitive; configure them upper case).
  MatchResult Match(std::string_view http_method, std::string_view path) const;

  // [{"method","path","grpc_method","body","response_body","timeout","source",
  // "server_streaming","state"}...] for /routes: the active routes ("state":"active"), then
  // the shadowed ones ("state":"shadowed","shadowed_by":{"grpc_method","rule","source"}) and
  // the skipped ones ("state":"skipped","reason"). timeout is a Duration string or null.
  std::string DescribeJson() const;

  const std::vector<std::unique_ptr<Route>>& routes() const { return routes_; }
  // Rules not served as written, in registration order.
  const std::vector<RouteIssue>& issues() const { return issues_; }
  const Schema& schema() const { return *schema_; }

  struct Node;  // Trie node (route_table.cc).

 private:
  RouteTable();

  std::shared_ptr<const Schema> schema_;
  std::vector<std::unique_ptr<Route>> routes_;
  std::vector<RouteIssue> issues_;
  std::unique_ptr<Node> root_;
};

}  // namespace tipperary::transcoder
