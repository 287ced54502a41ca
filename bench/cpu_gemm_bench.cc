// The CPU encoder's dense-layer GEMM alone, one thread, at the default model's shapes (M = 256
// rows, the encoder's chunk; N x K = 1152 x 384 QKV, 384 x 384 Wo, 1536 x 384 FFN up,
// 384 x 1536 FFN down): bfloat16 through oneDNN (Bf16Linear: AMX tiles, or AVX512-BF16 where
// there is no AMX; activations rounded to bf16 inside the call) against float32 OpenBLAS sgemm.
// Reports GFLOP/s (2 M N K per call): what the hardware gives each dtype, before attention and
// the element-wise passes (docs/benchmarks.md, "bfloat16 without AMX").
//
//   build/release/bench/cpu_gemm_bench --benchmark_min_time=0.5
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "../src/model/blas.h"         // internal
#include "../src/model/onednn_gemm.h"  // internal

namespace {

namespace internal = tipperary::model::internal;

constexpr int kRows = 256;

std::vector<float> Random(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 0.05f);
  std::vector<float> v(n);
  for (float& x : v) x = normal(rng);
  return v;
}

void SetFlops(benchmark::State& state, int n, int k) {
  state.counters["GFLOP/s"] =
      benchmark::Counter(2.0 * kRows * n * k * static_cast<double>(state.iterations()) / 1e9,
                         benchmark::Counter::kIsRate);
}

void BM_Bf16Linear(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0)), k = static_cast<int>(state.range(1));
  if (!internal::Bf16MatmulNative()) {
    state.SkipWithError("no native bf16 matmul (AMX or AVX512-BF16) here");
    return;
  }
  const std::vector<float> w = Random(static_cast<size_t>(n) * k, 1);
  const std::vector<float> x = Random(static_cast<size_t>(kRows) * k, 2);
  std::vector<float> y(static_cast<size_t>(kRows) * n);
  auto linear = internal::Bf16Linear::Create(w.data(), n, k);
  if (!linear.ok()) {
    state.SkipWithError(std::string(linear.status().message()).c_str());
    return;
  }
  internal::Bf16Scratch scratch;
  for (auto _ : state) {
    if (!(*linear)->Run(x.data(), kRows, y.data(), &scratch).ok()) {
      state.SkipWithError("Run failed");
      return;
    }
    benchmark::DoNotOptimize(y.data());
  }
  SetFlops(state, n, k);
}

void BM_Sgemm(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0)), k = static_cast<int>(state.range(1));
  auto blas = internal::LoadBlas();
  if (!blas.ok()) {
    state.SkipWithError(std::string(blas.status().message()).c_str());
    return;
  }
  (*blas)->set_num_threads(1);
  const std::vector<float> w = Random(static_cast<size_t>(n) * k, 1);
  const std::vector<float> x = Random(static_cast<size_t>(kRows) * k, 2);
  std::vector<float> y(static_cast<size_t>(kRows) * n);
  for (auto _ : state) {
    (*blas)->Sgemm(false, true, kRows, n, k, 1.0f, x.data(), k, w.data(), k, 0.0f, y.data(), n);
    benchmark::DoNotOptimize(y.data());
  }
  SetFlops(state, n, k);
}

void Shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"n", "k"});
  for (auto [n, k] : {std::pair{1152, 384}, {384, 384}, {1536, 384}, {384, 1536}}) {
    b->Args({n, k});
  }
}

BENCHMARK(BM_Bf16Linear)->Apply(Shapes);
BENCHMARK(BM_Sgemm)->Apply(Shapes);

}  // namespace

BENCHMARK_MAIN();
