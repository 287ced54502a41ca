// Cost of the worker's embedding cache on the request path (docs/caching.md): hashing a text's
// ids, a hit (copying 384 floats out), a miss, and an insert that evicts, alone and with threads
// hitting one cache, for one shard (one mutex) and for the default 16.
//
//   build/release/bench/embedding_cache_bench --benchmark_filter=Lookup
#include <benchmark/benchmark.h>
#include <malloc.h>

#include <random>
#include <vector>

#include "absl/hash/hash.h"
#include "absl/types/span.h"
#include "embedding_cache.h"

namespace tipperary::worker {
namespace {

constexpr int kDim = 384;       // all-MiniLM-L6-v2.
constexpr int kTokens = 32;     // A sentence.
constexpr int kEntries = 8192;  // Resident keys: the cache holds them all.

std::vector<int32_t> Key(int i) {
  std::vector<int32_t> ids(kTokens);
  ids.front() = 101;
  ids.back() = 102;
  for (int t = 1; t + 1 < kTokens; ++t) ids[t] = 1000 + (i * 31 + t * 7) % 28000;
  ids[1] = i;
  return ids;
}

EmbeddingCache* MakeFilledCache(size_t shards) {
  auto* cache = new EmbeddingCache(
      {.max_bytes = 2 * kEntries * EmbeddingCache::EntryBytes(kTokens, kDim), .shards = shards});
  std::vector<float> vector(kDim, 0.5f);
  for (int i = 0; i < kEntries; ++i) cache->Insert(1, Key(i), vector.data(), kDim, nullptr);
  return cache;
}

// One cache per shard count, filled once (thread-safe static initialisation), shared by every
// benchmark thread.
EmbeddingCache& FilledCache(size_t shards) {
  static EmbeddingCache* one = MakeFilledCache(1);
  static EmbeddingCache* sixteen = MakeFilledCache(16);
  return shards == 1 ? *one : *sixteen;
}

// Full and kept full: every insert evicts.
EmbeddingCache& SmallCache(size_t shards) {
  static EmbeddingCache* one = new EmbeddingCache(
      {.max_bytes = 1024 * EmbeddingCache::EntryBytes(kTokens, kDim), .shards = 1});
  static EmbeddingCache* sixteen = new EmbeddingCache(
      {.max_bytes = 1024 * EmbeddingCache::EntryBytes(kTokens, kDim), .shards = 16});
  return shards == 1 ? *one : *sixteen;
}

void BM_HashIds(benchmark::State& state) {
  std::vector<int32_t> ids(static_cast<size_t>(state.range(0)), 2023);
  for (auto _ : state) {
    benchmark::DoNotOptimize(absl::HashOf(uint64_t{1}, absl::MakeConstSpan(ids)));
  }
  state.SetBytesProcessed(state.iterations() * state.range(0) * 4);
}
BENCHMARK(BM_HashIds)->Arg(16)->Arg(128)->Arg(512);

// Args: shards. Every thread looks up resident keys (all hits).
void BM_LookupHit(benchmark::State& state) {
  EmbeddingCache* cache = &FilledCache(static_cast<size_t>(state.range(0)));
  std::vector<std::vector<int32_t>> keys;
  for (int i = 0; i < 512; ++i)
    keys.push_back(Key((i * 97 + state.thread_index() * 13) % kEntries));
  std::vector<float> out(kDim);
  size_t k = 0;
  for (auto _ : state) {
    bool hit = cache->Lookup(1, keys[k++ % keys.size()], out.data(), kDim);
    benchmark::DoNotOptimize(hit);
  }
}
BENCHMARK(BM_LookupHit)->Arg(1)->Arg(16)->Threads(1)->Threads(2)->Threads(4)->UseRealTime();

void BM_LookupMiss(benchmark::State& state) {
  EmbeddingCache* cache = &FilledCache(static_cast<size_t>(state.range(0)));
  std::vector<std::vector<int32_t>> keys;
  for (int i = 0; i < 512; ++i) keys.push_back(Key(kEntries + i));
  std::vector<float> out(kDim);
  size_t k = 0;
  for (auto _ : state) {
    bool hit = cache->Lookup(1, keys[k++ % keys.size()], out.data(), kDim);
    benchmark::DoNotOptimize(hit);
  }
}
BENCHMARK(BM_LookupMiss)->Arg(1)->Arg(16)->Threads(1)->Threads(2)->Threads(4)->UseRealTime();

// A full cache: every insert evicts (the copy of ids and vector, S3-FIFO's bookkeeping, the
// free). Args: shards.
void BM_InsertEvicting(benchmark::State& state) {
  EmbeddingCache* cache = &SmallCache(static_cast<size_t>(state.range(0)));
  std::vector<float> vector(kDim, 0.25f);
  std::vector<int32_t> ids = Key(0);
  int i = (state.thread_index() << 24) + static_cast<int>(state.range(0) << 20);
  for (auto _ : state) {
    ids[1] = i++;
    cache->Insert(1, ids, vector.data(), kDim, nullptr);
  }
}
BENCHMARK(BM_InsertEvicting)->Arg(1)->Arg(16)->Threads(1)->Threads(2)->UseRealTime();

// Not a timing: the heap a full 64 MiB cache really holds (glibc's mallinfo2) against the bytes
// it is charged (what cache.max_bytes bounds), for short and long texts. Counters:
// entries, charged, heap, heap_per_charged (must stay at or under 1).
void BM_FullCacheHeap(benchmark::State& state) {
  const size_t tokens = static_cast<size_t>(state.range(0));
  for (auto _ : state) {
    size_t before = mallinfo2().uordblks;
    EmbeddingCache cache({.max_bytes = uint64_t{64} << 20});
    std::vector<float> vector(kDim, 0.5f);
    std::vector<int32_t> ids(tokens, 7);
    // Well past the bound, so that evictions and the ghost queue are in their steady state.
    for (int i = 0; i < 200000; ++i) {
      ids[1] = i;
      cache.Insert(1, ids, vector.data(), kDim, nullptr);
    }
    const double heap = static_cast<double>(mallinfo2().uordblks - before);
    const EmbeddingCache::Stats stats = cache.stats();
    state.counters["entries"] = static_cast<double>(stats.entries);
    state.counters["charged"] = static_cast<double>(stats.bytes);
    state.counters["heap"] = heap;
    state.counters["heap_per_charged"] = heap / static_cast<double>(stats.bytes);
  }
}
BENCHMARK(BM_FullCacheHeap)->Arg(16)->Arg(128)->Iterations(1)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace tipperary::worker

BENCHMARK_MAIN();
