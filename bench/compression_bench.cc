// What compressing a response costs, per zlib level, on the response this project sends most:
// an embedding as the transcoder prints it (384 floats of JSON, about 5 KB), and a batch of 32.
// Reports CPU time per response and, as counters, the bytes out and the ratio. The default
// level (compression.level) is chosen from this: docs/benchmarks.md, "Response compression".
//
//   build/release/bench/compression_bench --benchmark_counters_tabular=true
#include <benchmark/benchmark.h>

#include <cstdio>
#include <random>
#include <string>

#include "tipperary/http1/compression.h"

namespace {

using namespace tipperary::http1;
namespace http = boost::beast::http;

std::string EmbeddingsJson(int texts) {
  std::mt19937 rng(7);
  std::normal_distribution<float> dist(0.0f, 0.05f);
  std::string json = R"({"embeddings":[)";
  for (int t = 0; t < texts; ++t) {
    json += t > 0 ? R"(,{"values":[)" : R"({"values":[)";
    for (int i = 0; i < 384; ++i) {
      if (i > 0) json += ',';
      char buf[32];
      std::snprintf(buf, sizeof(buf), "%.9g", dist(rng));
      json += buf;
    }
    json += "]}";
  }
  return json + "]}";
}

// The whole response path: negotiation, headers, compression (CompressResponse).
void BM_CompressResponse(benchmark::State& state) {
  const int level = static_cast<int>(state.range(0));
  const std::string json = EmbeddingsJson(static_cast<int>(state.range(1)));
  CompressionOptions options;
  options.level = level;
  HttpRequest request{http::verb::post, "/v1/embeddings", 11};
  request.set(http::field::accept_encoding, "gzip, deflate");
  size_t out = 0;
  for (auto _ : state) {
    HttpResponse response{http::status::ok, 11};
    response.set(http::field::content_type, "application/json");
    response.body() = json;
    CompressResponse(options, request, response);
    out = response.body().size();
    benchmark::DoNotOptimize(response);
  }
  state.counters["bytes_in"] = static_cast<double>(json.size());
  state.counters["bytes_out"] = static_cast<double>(out);
  state.counters["ratio"] = static_cast<double>(out) / static_cast<double>(json.size());
}
BENCHMARK(BM_CompressResponse)
    ->ArgsProduct({{1, 2, 3, 4, 5, 6, 9}, {1, 32}})
    ->ArgNames({"level", "texts"});

// The same response sent to a client without Accept-Encoding: the cost every response pays.
void BM_IdentityResponse(benchmark::State& state) {
  const std::string json = EmbeddingsJson(1);
  const CompressionOptions options;
  HttpRequest request{http::verb::post, "/v1/embeddings", 11};
  for (auto _ : state) {
    HttpResponse response{http::status::ok, 11};
    response.set(http::field::content_type, "application/json");
    response.body() = json;
    CompressResponse(options, request, response);
    benchmark::DoNotOptimize(response);
  }
}
BENCHMARK(BM_IdentityResponse);

// Decoding a gzip request body of the same size.
void BM_DecodeRequest(benchmark::State& state) {
  const std::string json = EmbeddingsJson(static_cast<int>(state.range(0)));
  Compressor gzip(ContentCoding::kGzip, 1);
  std::string body;
  gzip.Write(json, Compressor::Flush::kFinish, &body);
  const CompressionOptions options;
  RequestLimits limits;
  for (auto _ : state) {
    RequestHead request{http::verb::post, "/v1/embeddings", 11};
    request.set(http::field::content_encoding, "gzip");
    request.body() = body;
    benchmark::DoNotOptimize(DecodeRequestContent(options, limits, &request));
  }
}
BENCHMARK(BM_DecodeRequest)->Arg(1)->Arg(32)->ArgName("texts");

}  // namespace

BENCHMARK_MAIN();
