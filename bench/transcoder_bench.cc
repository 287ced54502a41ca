// Transcoder microbenchmarks: route matching and the JSON <-> binary conversions of a small
// request and response, on the test service schema.
//
// Build (bench/CMakeLists.txt):
//   add_executable(transcoder_bench transcoder_bench.cc)
//   target_link_libraries(transcoder_bench PRIVATE tipperary::transcoder tipperary::test_protos
//                         benchmark::benchmark tipperary::warnings)
#include <benchmark/benchmark.h>

#include <memory>
#include <string>

#include "tipperary/testing/v1/test_service.pb.h"
#include "tipperary/transcoder/route_table.h"
#include "tipperary/transcoder/schema.h"
#include "tipperary/transcoder/transcoder.h"

namespace {

using namespace tipperary::transcoder;  // NOLINT

struct Fixture {
  std::shared_ptr<const Schema> schema;
  std::shared_ptr<const RouteTable> routes;
  std::unique_ptr<Transcoder> transcoder;
};

const Fixture& F() {
  static const Fixture* f = [] {
    auto* fx = new Fixture();
    google::protobuf::FileDescriptorSet set;
    tipperary::testing::v1::AllTypes::descriptor()->file()->CopyTo(set.add_file());
    fx->schema = *Schema::Create({set});
    RouteTableOptions options;
    options.allow_grpc_method_paths = true;
    fx->routes = *RouteTable::Build(fx->schema, {}, options);
    fx->transcoder = std::make_unique<Transcoder>(fx->schema, TranscoderOptions{});
    return fx;
  }();
  return *f;
}

void BM_RouteMatch(benchmark::State& state) {
  const RouteTable& t = *F().routes;
  for (auto _ : state) {
    auto m = t.Match("GET", "/v1/shelves/shelf-1/things/thing-42");
    benchmark::DoNotOptimize(m.route);
  }
}
BENCHMARK(BM_RouteMatch);

void BM_RouteMatchVerb(benchmark::State& state) {
  const RouteTable& t = *F().routes;
  for (auto _ : state) {
    auto m = t.Match("POST", "/v1/shelves/shelf-1/things/thing-42:run");
    benchmark::DoNotOptimize(m.route);
  }
}
BENCHMARK(BM_RouteMatchVerb);

void BM_JsonToBinary(benchmark::State& state) {
  const Fixture& f = F();
  auto m = f.routes->Match("POST", "/v1/echo");
  const std::string body =
      R"({"fString":"hello","fInt64":"42","fEnum":"RED","fNested":{"name":"n","count":"3"}})";
  for (auto _ : state) {
    auto out =
        f.transcoder->BuildRequestMessage(*m.route, m.bindings, "", body, BodyFormat::kJson, "");
    benchmark::DoNotOptimize(out);
  }
}
BENCHMARK(BM_JsonToBinary);

void BM_JsonToBinaryWithBindings(benchmark::State& state) {
  const Fixture& f = F();
  auto m = f.routes->Match("POST", "/v1/shelves/s1/things");
  const std::string body = R"({"displayName":"thing","size":"7","color":"BLUE"})";
  for (auto _ : state) {
    auto out = f.transcoder->BuildRequestMessage(*m.route, m.bindings, "thing_id=t1", body,
                                                 BodyFormat::kJson, "");
    benchmark::DoNotOptimize(out);
  }
}
BENCHMARK(BM_JsonToBinaryWithBindings);

void BM_BinaryToJson(benchmark::State& state) {
  const Fixture& f = F();
  auto m = f.routes->Match("GET", "/v1/shelves/s1/things/t1");
  tipperary::testing::v1::Thing thing;
  thing.set_name("shelves/s1/things/t1");
  thing.set_display_name("thing");
  thing.set_size(7);
  thing.set_color(tipperary::testing::v1::BLUE);
  thing.mutable_create_time()->set_seconds(1700000000);
  const std::string bin = thing.SerializeAsString();
  for (auto _ : state) {
    auto out = f.transcoder->BuildResponseBody(*m.route, bin, ResponseFormat::kJson, false);
    benchmark::DoNotOptimize(out);
  }
}
BENCHMARK(BM_BinaryToJson);

}  // namespace

BENCHMARK_MAIN();
