// Throughput of the CPU encoder on the default model: batch {1,8,32,128} x tokens
// {16,64,128,256} (and 1 x 12), every sequence of the same length (the padded-batch worst case).
// Reports sentences/s and tokens/s; threads from $TIPPERARY_BENCH_THREADS (default: all cores),
// dtype from $TIPPERARY_BENCH_DTYPE (float32, the default; bfloat16: GEMMs and attention on AMX or
// AVX512-BF16; int8: int8 GEMMs on AMX-INT8/VNNI). Also batch 1 x 12 tokens, one short sentence.
//
//   build/bench/cpu_encoder_bench --benchmark_filter='/32/128'
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <iostream>
#include <random>

#include "tipperary/model/cpu_encoder.h"

namespace {

using tipperary::model::Encoder;

Encoder* SharedEncoder() {
  static Encoder* encoder = []() -> Encoder* {
    const char* dir = std::getenv("TIPPERARY_MODEL_DIR");
    std::string model_dir = dir != nullptr ? dir : TIPPERARY_MODEL_DIR;
    auto bundle = tipperary::model::LoadModel(model_dir);
    if (!bundle.ok()) {
      std::cerr << bundle.status() << "\n";
      return nullptr;
    }
    const char* threads = std::getenv("TIPPERARY_BENCH_THREADS");
    const char* dtype = std::getenv("TIPPERARY_BENCH_DTYPE");
    auto enc = tipperary::model::CreateCpuEncoder(
        *bundle, {.threads = threads != nullptr ? std::atoi(threads) : 0,
                  .dtype = dtype != nullptr && *dtype != '\0' ? dtype : "float32"});
    if (!enc.ok()) {
      std::cerr << enc.status() << "\n";
      return nullptr;
    }
    return enc->release();
  }();
  return encoder;
}

void BM_CpuEncode(benchmark::State& state) {
  Encoder* enc = SharedEncoder();
  if (enc == nullptr) {
    state.SkipWithError("model not loaded (set TIPPERARY_MODEL_DIR)");
    return;
  }
  const int batch = static_cast<int>(state.range(0));
  const int tokens = static_cast<int>(state.range(1));
  std::mt19937 rng(42);
  std::uniform_int_distribution<int32_t> word(1000, 29000);
  std::vector<std::vector<int32_t>> ids(batch, std::vector<int32_t>(tokens));
  for (auto& row : ids) {
    for (int32_t& id : row) id = word(rng);
    row.front() = 101;
    row.back() = 102;
  }
  std::vector<float> out;
  for (auto _ : state) {
    absl::Status s = enc->Encode(ids, &out);
    if (!s.ok()) state.SkipWithError(std::string(s.message()).c_str());
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["sentences/s"] = benchmark::Counter(
      static_cast<double>(batch) * state.iterations(), benchmark::Counter::kIsRate);
  state.counters["tokens/s"] = benchmark::Counter(
      static_cast<double>(batch) * tokens * state.iterations(), benchmark::Counter::kIsRate);
}

BENCHMARK(BM_CpuEncode)
    ->ArgNames({"batch", "tokens"})
    ->ArgsProduct({{1, 8, 32, 128}, {16, 64, 128, 256}})
    ->Args({1, 12})  // one short sentence: the latency case
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// The latency shape of the peer comparison (bench/run-peers-bench): one 12-token sentence.
BENCHMARK(BM_CpuEncode)
    ->ArgNames({"batch", "tokens"})
    ->Args({1, 12})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
