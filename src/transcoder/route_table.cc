#include "tipperary/transcoder/route_table.h"

#include <google/protobuf/duration.pb.h>
#include <google/protobuf/util/time_util.h>

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "google/api/annotations.pb.h"
#include "google/api/http.pb.h"
#include "internal.h"
#include "tipperary/api/v1/http_api.pb.h"

namespace tipperary::transcoder {

namespace pb = google::protobuf;

// Terminal: the routes of one template shape, by verb then HTTP method.
struct RouteTable::Node {
  absl::flat_hash_map<std::string, std::unique_ptr<Node>> literals;
  std::unique_ptr<Node> wildcard;
  // Routes ending at this node, and routes whose "**" starts here, keyed by verb.
  absl::flat_hash_map<std::string, std::vector<std::pair<std::string, const Route*>>> ends;
  absl::flat_hash_map<std::string, std::vector<std::pair<std::string, const Route*>>> tails;
};

namespace {

using Methods = std::vector<std::pair<std::string, const Route*>>;

bool IsToken(std::string_view method) {
  if (method.empty()) return false;
  for (char c : method) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.' &&
        c != '!' && c != '#' && c != '$' && c != '%' && c != '&' && c != '\'' && c != '*' &&
        c != '+' && c != '^' && c != '`' && c != '|' && c != '~') {
      return false;
    }
  }
  return true;
}

bool ServiceSelected(const pb::ServiceDescriptor* service, const RouteTableOptions& options) {
  if (options.service_filters.empty()) return true;
  for (const std::string& f : options.service_filters) {
    if (f == "*") return true;
    if (absl::EndsWith(f, ".*")) {
      if (absl::StartsWith(service->full_name(), f.substr(0, f.size() - 1))) return true;
    } else if (service->full_name() == f) {
      return true;
    }
  }
  return false;
}

// Checks a path variable's field path; the error is the reason, for the rule's issue. A
// repeated leaf is bound from separated values ("a,b,c", as grpc-gateway's runtime splits them).
absl::Status ValidateVariable(const pb::Descriptor* type, const std::string& path) {
  const pb::Descriptor* cur = type;
  std::vector<std::string> parts = absl::StrSplit(path, '.');
  for (size_t i = 0; i < parts.size(); ++i) {
    const pb::FieldDescriptor* f = cur->FindFieldByName(parts[i]);
    if (f == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          "path variable \"", path, "\": ", cur->full_name(), " has no field \"", parts[i], "\""));
    }
    if (f->is_map()) {
      return absl::InvalidArgumentError(
          absl::StrCat("path variable \"", path, "\" names a map field"));
    }
    if (i + 1 == parts.size()) {
      if (!internal::IsBindableLeaf(f)) {
        return absl::InvalidArgumentError(
            absl::StrCat("path variable \"", path,
                         "\" must name a scalar, enum, wrapper, Timestamp, "
                         "Duration or FieldMask field (or a repeated one)"));
      }
    } else {
      if (f->cpp_type() != pb::FieldDescriptor::CPPTYPE_MESSAGE) {
        return absl::InvalidArgumentError(
            absl::StrCat("path variable \"", path, "\": \"", parts[i], "\" is not a message"));
      }
      if (f->is_repeated()) {
        return absl::InvalidArgumentError(
            absl::StrCat("path variable \"", path, "\": \"", parts[i], "\" is a repeated message"));
      }
      cur = f->message_type();
    }
  }
  return absl::OkStatus();
}

// Resolves a body or response_body field path ("a" or "a.b.c"): every step but the last a
// singular message field. The error is the reason, for the rule's issue.
absl::Status ResolveBodyPath(const pb::Descriptor* type, const char* what, const std::string& path,
                             std::vector<const pb::FieldDescriptor*>* out) {
  const pb::Descriptor* cur = type;
  std::vector<std::string> parts = absl::StrSplit(path, '.');
  for (size_t i = 0; i < parts.size(); ++i) {
    const pb::FieldDescriptor* f = cur == nullptr ? nullptr : cur->FindFieldByName(parts[i]);
    if (f == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " \"", path, "\" is not a field of ", type->full_name()));
    }
    if (i + 1 < parts.size() &&
        (f->cpp_type() != pb::FieldDescriptor::CPPTYPE_MESSAGE || f->is_repeated())) {
      return absl::InvalidArgumentError(absl::StrCat(what, " \"", path, "\": \"", parts[i],
                                                     "\" is not a singular message field"));
    }
    out->push_back(f);
    cur = f->message_type();
  }
  return absl::OkStatus();
}

struct Candidate {
  std::string http_method;
  std::string path;
  const pb::MethodDescriptor* method;  // nullptr: the rule is skipped for `reason`.
  std::string body;
  std::string response_body;
  std::optional<std::chrono::nanoseconds> timeout;
  RouteSource source;
  std::optional<ErrorFormat> error_format;  // A config route's overrides.
  std::optional<bool> ignore_unknown_fields;
  std::string grpc_method = {};  // As configured, for an unknown method's issue.
  std::string reason = {};
  std::string location = {};  // A config route's place in its file.
  int config_index = -1;      // A config route's index in config_routes.
};

// The method's options re-parsed with the generated MethodOptions, whose registered extensions
// (google.api.http, tipperary.api.v1.http_api) it reads whether the schema's pool held them as
// extensions or as unknown fields.
pb::MethodOptions GeneratedOptions(const pb::MethodDescriptor* method) {
  pb::MethodOptions opts;
  if (!opts.ParseFromString(method->options().SerializeAsString())) opts.Clear();
  return opts;
}

// The route for a candidate, or the reason it cannot be served.
absl::StatusOr<std::unique_ptr<Route>> MakeRoute(const Candidate& c) {
  if (c.method == nullptr) return absl::InvalidArgumentError(c.reason);
  if (!IsToken(c.http_method)) return absl::InvalidArgumentError("invalid HTTP method");
  absl::StatusOr<PathTemplate> tmpl = PathTemplate::Parse(c.path);
  if (!tmpl.ok()) return tmpl.status();
  auto r = std::make_unique<Route>();
  r->label = absl::StrCat(c.http_method, " ", c.path);
  r->method = c.method;
  r->grpc_path = absl::StrCat("/", c.method->service()->full_name(), "/", c.method->name());
  r->http_method = c.http_method;
  r->body = c.body;
  r->response_body = c.response_body;
  r->timeout = c.timeout;
  r->server_streaming = c.method->server_streaming();
  r->client_streaming = c.method->client_streaming();
  r->source = c.source;
  r->config_index = c.config_index;
  r->path_template = *std::move(tmpl);
  pb::MethodOptions opts = GeneratedOptions(c.method);
  if (opts.HasExtension(tipperary::api::v1::http_api)) {
    const tipperary::api::v1::HttpApiOptions& api = opts.GetExtension(tipperary::api::v1::http_api);
    if (api.error_format() == tipperary::api::v1::ERROR_FORMAT_OPENAI) {
      r->error_format = ErrorFormat::kOpenAi;
    } else if (api.error_format() == tipperary::api::v1::ERROR_FORMAT_TEI) {
      r->error_format = ErrorFormat::kTei;
    }
    if (api.has_ignore_unknown_fields()) r->ignore_unknown_fields = api.ignore_unknown_fields();
  }
  if (c.error_format) r->error_format = *c.error_format;
  if (c.ignore_unknown_fields) r->ignore_unknown_fields = c.ignore_unknown_fields;
  r->request_type = c.method->input_type();
  r->response_type = c.method->output_type();
  r->request_type_url = TypeUrl(r->request_type->full_name());
  r->response_type_url = TypeUrl(r->response_type->full_name());
  if (!c.body.empty() && c.body != "*") {
    absl::Status s = ResolveBodyPath(r->request_type, "body", c.body, &r->body_path);
    if (!s.ok()) return s;
    r->body_field = r->body_path.back();
  }
  // grpc-gateway treats response_body "*" as the whole response, like "".
  if (!c.response_body.empty() && c.response_body != "*") {
    absl::Status s =
        ResolveBodyPath(r->response_type, "response_body", c.response_body, &r->response_body_path);
    if (!s.ok()) return s;
    r->response_body_field = r->response_body_path.back();
  }
  for (const PathTemplate::Variable& v : r->path_template.variables()) {
    absl::Status s = ValidateVariable(r->request_type, v.field_path);
    if (!s.ok()) return s;
  }
  return r;
}

RouteIssue IssueFor(const Candidate& c, RouteIssue::Kind kind, std::string reason) {
  RouteIssue issue;
  issue.kind = kind;
  issue.grpc_method = c.method != nullptr
                          ? absl::StrCat(c.method->service()->full_name(), "/", c.method->name())
                          : c.grpc_method;
  issue.http_method = c.http_method;
  issue.path = c.path;
  issue.body = c.body;
  issue.response_body = c.response_body;
  issue.source = c.source;
  issue.location = c.location;
  issue.reason = std::move(reason);
  return issue;
}

void AddRuleCandidates(const pb::MethodDescriptor* method, const google::api::HttpRule& rule,
                       std::vector<Candidate>* out) {
  Candidate c{"",
              "",
              method,
              rule.body(),
              rule.response_body(),
              std::nullopt,
              RouteSource::kAnnotation,
              std::nullopt,
              std::nullopt};
  switch (rule.pattern_case()) {
    case google::api::HttpRule::kGet:
      c.http_method = "GET";
      c.path = rule.get();
      break;
    case google::api::HttpRule::kPut:
      c.http_method = "PUT";
      c.path = rule.put();
      break;
    case google::api::HttpRule::kPost:
      c.http_method = "POST";
      c.path = rule.post();
      break;
    case google::api::HttpRule::kDelete:
      c.http_method = "DELETE";
      c.path = rule.delete_();
      break;
    case google::api::HttpRule::kPatch:
      c.http_method = "PATCH";
      c.path = rule.patch();
      break;
    case google::api::HttpRule::kCustom:
      c.http_method = rule.custom().kind();
      c.path = rule.custom().path();
      break;
    default:
      return;
  }
  out->push_back(std::move(c));
}

// Depth-first over the trie: literal, then "*", then "**"; `visit` returns true to stop.
template <typename Visit>
bool Search(const RouteTable::Node* node, const std::vector<std::string_view>& segs,
            std::string_view last, bool use_verb, size_t i, std::string_view verb, Visit& visit) {
  const size_t n = segs.size();
  if (i == n) {
    auto it = node->ends.find(absl::string_view(verb.data(), verb.size()));
    if (it != node->ends.end() && visit(it->second)) return true;
  } else {
    std::string_view seg = (use_verb && i + 1 == n) ? last : segs[i];
    if (!node->literals.empty()) {
      auto it = node->literals.find(absl::string_view(seg.data(), seg.size()));
      if (it != node->literals.end() &&
          Search(it->second.get(), segs, last, use_verb, i + 1, verb, visit)) {
        return true;
      }
    }
    if (node->wildcard && !seg.empty() &&
        Search(node->wildcard.get(), segs, last, use_verb, i + 1, verb, visit)) {
      return true;
    }
  }
  auto it = node->tails.find(absl::string_view(verb.data(), verb.size()));
  return it != node->tails.end() && visit(it->second);
}

}  // namespace

const char* RouteSourceName(RouteSource source) {
  switch (source) {
    case RouteSource::kAnnotation:
      return "annotation";
    case RouteSource::kConfig:
      return "config";
    case RouteSource::kGrpc:
      return "grpc";
  }
  return "annotation";
}

std::string RouteIssue::Describe() const {
  std::string rule = absl::StrCat(http_method, " ", path);
  if (!body.empty()) absl::StrAppend(&rule, " body \"", body, "\"");
  if (!response_body.empty()) absl::StrAppend(&rule, " response_body \"", response_body, "\"");
  return absl::StrCat(location.empty() ? "" : absl::StrCat(location, ": "), grpc_method, ": ", rule,
                      " (", RouteSourceName(source),
                      "): ", kind == Kind::kSkipped ? "skipped: " : "", reason);
}

RouteTable::RouteTable() = default;
RouteTable::~RouteTable() = default;

absl::StatusOr<std::shared_ptr<const RouteTable>> RouteTable::Build(
    std::shared_ptr<const Schema> schema, const std::vector<RouteSpec>& config_routes,
    const RouteTableOptions& options) {
  std::vector<Candidate> candidates;
  if (options.annotations) {
    for (const pb::ServiceDescriptor* service : schema->services()) {
      if (!ServiceSelected(service, options)) continue;
      for (int i = 0; i < service->method_count(); ++i) {
        const pb::MethodDescriptor* m = service->method(i);
        pb::MethodOptions opts = GeneratedOptions(m);
        if (!opts.HasExtension(google::api::http)) continue;
        const google::api::HttpRule& rule = opts.GetExtension(google::api::http);
        AddRuleCandidates(m, rule, &candidates);
        for (const google::api::HttpRule& extra : rule.additional_bindings()) {
          const size_t before = candidates.size();
          AddRuleCandidates(m, extra, &candidates);
          // As in grpc-gateway: bindings do not nest; the rule is skipped, not its siblings.
          if (extra.additional_bindings_size() > 0 && candidates.size() > before) {
            candidates.back().method = nullptr;
            candidates.back().grpc_method = absl::StrCat(service->full_name(), "/", m->name());
            candidates.back().reason = "additional_bindings inside additional_bindings";
          }
        }
      }
    }
  }
  for (size_t i = 0; i < config_routes.size(); ++i) {
    const RouteSpec& spec = config_routes[i];
    const pb::MethodDescriptor* m = schema->FindMethod(spec.grpc_method);
    candidates.push_back(
        {absl::AsciiStrToUpper(spec.http_method), spec.path_template, m, spec.body,
         spec.response_body, spec.timeout, RouteSource::kConfig, spec.error_format,
         spec.ignore_unknown_fields, spec.grpc_method,
         m == nullptr ? absl::StrCat("unknown gRPC method \"", spec.grpc_method, "\"") : "",
         spec.location, static_cast<int>(i)});
  }
  size_t first_grpc = candidates.size();
  if (options.allow_grpc_method_paths) {
    for (const pb::ServiceDescriptor* service : schema->services()) {
      if (!ServiceSelected(service, options)) continue;
      for (int i = 0; i < service->method_count(); ++i) {
        const pb::MethodDescriptor* m = service->method(i);
        candidates.push_back({"POST", absl::StrCat("/", service->full_name(), "/", m->name()), m,
                              "*", "", std::nullopt, RouteSource::kGrpc, std::nullopt,
                              std::nullopt});
      }
    }
  }

  std::shared_ptr<RouteTable> table(new RouteTable());
  table->schema_ = schema;
  table->root_ = std::make_unique<Node>();
  // method + shape -> index into table->routes_; the candidate each route came from.
  absl::flat_hash_map<std::string, size_t> by_key;
  std::vector<size_t> route_candidate;
  // Shadowed issues point at the route slot that beat them; named once all are placed, since
  // a later rule may beat the winner in turn.
  std::vector<std::pair<size_t, size_t>> shadowed;  // (index into issues_, slot)
  for (size_t ci = 0; ci < candidates.size(); ++ci) {
    const Candidate& c = candidates[ci];
    absl::StatusOr<std::unique_ptr<Route>> route = MakeRoute(c);
    if (!route.ok()) {
      // A gRPC path whose service name is not a valid literal is simply not routed.
      if (ci >= first_grpc) continue;
      table->issues_.push_back(
          IssueFor(c, RouteIssue::Kind::kSkipped, std::string(route.status().message())));
      continue;
    }
    std::string key = absl::StrCat((*route)->http_method, " ", (*route)->path_template.Shape());
    auto [it, inserted] = by_key.emplace(key, table->routes_.size());
    if (inserted) {
      table->routes_.push_back(*std::move(route));
      route_candidate.push_back(ci);
      continue;
    }
    const size_t slot = it->second;
    Route& existing = *table->routes_[slot];
    const Candidate& existing_c = candidates[route_candidate[slot]];
    if (existing.method == (*route)->method && existing_c.path == c.path &&
        existing.body == (*route)->body && existing.response_body == (*route)->response_body &&
        existing.source == (*route)->source) {
      continue;  // Harmless exact duplicate (the same file loaded twice, a repeated binding).
    }
    // Which one loses: gRPC method paths never win; a config route beats an annotation; else
    // the later rule wins, as the last handler registered in grpc-gateway v2's mux does (the
    // earlier with first_wins, v1's default).
    const bool keep_existing =
        ci >= first_grpc ||
        (existing.source == RouteSource::kConfig && c.source == RouteSource::kAnnotation) ||
        (options.first_wins && existing.source == c.source);
    const Candidate& loser = keep_existing ? c : existing_c;
    RouteIssue issue = IssueFor(loser, RouteIssue::Kind::kShadowed, "");
    const RouteSource winner_source = keep_existing ? existing.source : c.source;
    issue.problem =
        !(loser.source == RouteSource::kGrpc ||
          (loser.source == RouteSource::kAnnotation && winner_source == RouteSource::kConfig));
    if (!keep_existing) {
      existing = std::move(**route);
      route_candidate[slot] = ci;
    }
    if (ci >= first_grpc) continue;  // Not worth a line: the path is an extra.
    shadowed.emplace_back(table->issues_.size(), slot);
    table->issues_.push_back(std::move(issue));
  }
  for (const auto& [index, slot] : shadowed) {
    RouteIssue& issue = table->issues_[index];
    const Route& winner = *table->routes_[slot];
    issue.shadowed_by_method =
        absl::StrCat(winner.method->service()->full_name(), "/", winner.method->name());
    issue.shadowed_by_rule = winner.label;
    issue.shadowed_by_source = winner.source;
    issue.reason = absl::StrCat("shadowed by ", winner.label, " (", issue.shadowed_by_method, ", ",
                                RouteSourceName(winner.source), ")");
  }
  if (options.strict) {
    std::vector<std::string> problems;
    for (const RouteIssue& issue : table->issues_) {
      if (issue.problem) problems.push_back(issue.Describe());
    }
    if (!problems.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(problems.size(),
                                                     " route problem(s) (transcoding.strict):\n",
                                                     absl::StrJoin(problems, "\n")));
    }
  }

  for (const std::unique_ptr<Route>& r : table->routes_) {
    Node* node = table->root_.get();
    const auto& segs = r->path_template.segments();
    bool tail = false;
    for (const PathTemplate::Segment& s : segs) {
      if (s.kind == PathTemplate::SegmentKind::kDoubleWildcard) {
        tail = true;
        break;
      }
      std::unique_ptr<Node>& next = s.kind == PathTemplate::SegmentKind::kLiteral
                                        ? node->literals[s.literal]
                                        : node->wildcard;
      if (!next) next = std::make_unique<Node>();
      node = next.get();
    }
    auto& map = tail ? node->tails : node->ends;
    map[r->path_template.verb()].emplace_back(r->http_method, r.get());
  }
  return std::shared_ptr<const RouteTable>(std::move(table));
}

RouteTable::MatchResult RouteTable::Match(std::string_view http_method,
                                          std::string_view path) const {
  MatchResult result;
  PathTemplate::SplitPath split;
  if (!PathTemplate::Split(path, &split)) return result;

  const Route* found = nullptr;
  bool found_use_verb = false;
  bool use_verb = false;
  auto find_method = [&](const Methods& methods) {
    for (const auto& [m, r] : methods) {
      if (m == http_method) {
        found = r;
        found_use_verb = use_verb;
        return true;
      }
    }
    return false;
  };
  auto search = [&](auto& visit) {
    if (split.has_verb) {
      use_verb = true;
      if (Search(root_.get(), split.segments, split.last_without_verb, true, 0, split.verb,
                 visit)) {
        return;
      }
    }
    use_verb = false;
    Search(root_.get(), split.segments, {}, false, 0, std::string_view(), visit);
  };
  search(find_method);
  if (found != nullptr) {
    std::optional<PathTemplate::Bindings> b =
        found->path_template.MatchSplit(split, found_use_verb);
    if (b.has_value()) {
      result.route = found;
      result.bindings = *std::move(b);
      result.status = MatchStatus::kOk;
      return result;
    }
  }
  auto collect = [&](const Methods& methods) {
    for (const auto& entry : methods) result.allowed_methods.push_back(entry.first);
    return false;
  };
  search(collect);
  if (!result.allowed_methods.empty()) {
    std::sort(result.allowed_methods.begin(), result.allowed_methods.end());
    result.allowed_methods.erase(
        std::unique(result.allowed_methods.begin(), result.allowed_methods.end()),
        result.allowed_methods.end());
    result.status = MatchStatus::kMethodNotAllowed;
  }
  return result;
}

std::string RouteTable::DescribeJson() const {
  std::string out = "[";
  auto field = [&out](std::string_view name, std::string_view value) {
    out.append(",\"").append(name).append("\":");
    internal::AppendJsonString(out, value);
  };
  auto rule = [&](std::string_view method, std::string_view path, std::string_view grpc_method,
                  std::string_view body, std::string_view response_body) {
    if (out.size() > 1) out.push_back(',');
    out.append("{\"method\":");
    internal::AppendJsonString(out, method);
    field("path", path);
    field("grpc_method", grpc_method);
    field("body", body);
    field("response_body", response_body);
  };
  for (const std::unique_ptr<Route>& r : routes_) {
    rule(r->http_method, r->path_template.text(),
         r->method->service()->full_name() + "/" + r->method->name(), r->body, r->response_body);
    out.append(",\"timeout\":");
    if (r->timeout.has_value()) {
      pb::Duration d = pb::util::TimeUtil::NanosecondsToDuration(r->timeout->count());
      internal::AppendJsonString(out, pb::util::TimeUtil::ToString(d));
    } else {
      out.append("null");
    }
    field("source", RouteSourceName(r->source));
    out.append(",\"server_streaming\":");
    out.append(r->server_streaming ? "true" : "false");
    field("state", "active");
    out.push_back('}');
  }
  for (const RouteIssue& issue : issues_) {
    rule(issue.http_method, issue.path, issue.grpc_method, issue.body, issue.response_body);
    field("source", RouteSourceName(issue.source));
    if (issue.kind == RouteIssue::Kind::kShadowed) {
      field("state", "shadowed");
      out.append(",\"shadowed_by\":{\"grpc_method\":");
      internal::AppendJsonString(out, issue.shadowed_by_method);
      field("rule", issue.shadowed_by_rule);
      field("source", RouteSourceName(issue.shadowed_by_source));
      out.push_back('}');
    } else {
      field("state", "skipped");
    }
    field("reason", issue.reason);
    out.append(",\"problem\":");
    out.append(issue.problem ? "true" : "false");
    out.push_back('}');
  }
  out.push_back(']');
  return out;
}

}  // namespace tipperary::transcoder
