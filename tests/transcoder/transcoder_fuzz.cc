// libFuzzer entry for the transcoder: template parsing, route matching, request building,
// response and status rendering on arbitrary bytes. Built as a fuzzer with clang
// (tests/transcoder/CMakeLists.txt) and run over pseudo-random inputs by fuzz_smoke_test.cc.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "tipperary/testing/v1/test_service.pb.h"
#include "tipperary/transcoder/path_template.h"
#include "tipperary/transcoder/route_table.h"
#include "tipperary/transcoder/schema.h"
#include "tipperary/transcoder/transcoder.h"

namespace {

using namespace tipperary::transcoder;  // NOLINT

struct World {
  std::shared_ptr<const Schema> schema;
  std::shared_ptr<const RouteTable> routes;
  std::unique_ptr<Transcoder> plain;
  std::unique_ptr<Transcoder> fancy;
};

const World& GetWorld() {
  static const World* world = [] {
    auto* w = new World();
    google::protobuf::FileDescriptorSet set;
    tipperary::testing::v1::AllTypes::descriptor()->file()->CopyTo(set.add_file());
    w->schema = *Schema::Create({set});
    RouteTableOptions options;
    options.allow_grpc_method_paths = true;
    w->routes = *RouteTable::Build(w->schema, {}, options);
    w->plain = std::make_unique<Transcoder>(w->schema, TranscoderOptions{});
    TranscoderOptions fancy;
    fancy.ignore_unknown_fields = true;
    fancy.preserve_proto_field_names = true;
    fancy.always_print_primitive_fields = true;
    fancy.enums_as_ints = true;
    fancy.max_depth = 8;
    w->fancy = std::make_unique<Transcoder>(w->schema, fancy);
    return w;
  }();
  return *world;
}

// Splits off the next '\n'-terminated part (the rest when there is none).
std::string_view Next(std::string_view* in) {
  size_t nl = in->find('\n');
  std::string_view part = in->substr(0, nl);
  in->remove_prefix(nl == std::string_view::npos ? in->size() : nl + 1);
  return part;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const World& w = GetWorld();
  if (size < 1) return 0;
  const uint8_t selector = data[0];
  std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
  const Transcoder& t = (selector & 1) ? *w.fancy : *w.plain;

  static constexpr const char* kMethods[] = {"GET", "POST", "PUT", "PATCH", "DELETE", "LOCK"};
  std::string_view method = kMethods[(selector >> 1) % 6];
  std::string_view path = Next(&in);
  std::string_view query = Next(&in);
  std::string_view body = in;

  // The path as a template too.
  auto tmpl = PathTemplate::Parse(path);
  if (tmpl.ok()) (void)tmpl->Match(query);

  RouteTable::MatchResult m = w.routes->Match(method, path);
  const auto& all = w.routes->routes();
  const Route* route = m.route != nullptr ? m.route : all[selector % all.size()].get();
  BodyFormat fmt = (selector & 0x10) ? BodyFormat::kProtobuf : BodyFormat::kJson;
  if (IsHttpBodyRequest(*route)) fmt = BodyFormat::kRaw;
  (void)t.BuildRequestMessage(*route, m.bindings, query, body, fmt, "application/json");
  // Any route with query bindings even when nothing matched.
  (void)t.BuildRequestMessage(*route, {{"name", std::string(query)}}, query, "", fmt, "");

  ResponseFormat rfmt = (selector & 0x20) ? ResponseFormat::kProtobuf : ResponseFormat::kJson;
  const bool pretty = selector & 0x40;
  (void)t.BuildResponseBody(*route, body, rfmt, pretty);
  (void)t.BuildStreamChunk(*route, body, ResponseFormat::kJson, pretty);
  (void)t.StatusJson(selector, query, body, pretty);
  (void)t.BuildStreamError(selector, path, body);
  (void)Transcoder::WantsPretty(query);
  return 0;
}
