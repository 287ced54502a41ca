// The embedding cache alone: exact match (collisions included), the byte bound, S3-FIFO's order,
// per-model accounting and erasure, and concurrent use.
#include "embedding_cache.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "tipperary/metrics/counter.h"
#include "tipperary/metrics/gauge.h"

namespace tipperary::worker {
namespace {

constexpr int kDim = 8;

// A vector no other input shares: its ids and model spelled into the floats.
std::vector<float> VectorOf(uint64_t model, const std::vector<int32_t>& ids) {
  std::vector<float> v(kDim);
  for (int d = 0; d < kDim; ++d) {
    v[d] = static_cast<float>(model) * 1000.0f + static_cast<float>(d);
    for (int32_t id : ids) v[d] = v[d] * 1.0001f + static_cast<float>(id);
  }
  return v;
}

bool SameBits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), sizeof(float) * a.size()) == 0;
}

std::vector<int32_t> Ids(int32_t key) { return {101, key, 102}; }

// Room for exactly `entries` entries of 3 ids in one shard.
uint64_t RoomFor(int entries) { return entries * EmbeddingCache::EntryBytes(3, kDim); }

std::optional<std::vector<float>> Get(EmbeddingCache& cache, uint64_t model,
                                      const std::vector<int32_t>& ids) {
  std::vector<float> out(kDim, -1.0f);
  if (!cache.Lookup(model, ids, out.data(), kDim)) return std::nullopt;
  return out;
}

void Put(EmbeddingCache& cache, uint64_t model, const std::vector<int32_t>& ids,
         const CacheAccount* account = nullptr) {
  std::vector<float> v = VectorOf(model, ids);
  cache.Insert(model, ids, v.data(), kDim, account);
}

TEST(EmbeddingCacheTest, HitReturnsTheStoredBits) {
  EmbeddingCache cache({.max_bytes = 1 << 20});
  std::vector<int32_t> ids = {101, 7592, 2088, 102};
  EXPECT_FALSE(Get(cache, 1, ids).has_value());
  Put(cache, 1, ids);
  std::optional<std::vector<float>> hit = Get(cache, 1, ids);
  ASSERT_TRUE(hit.has_value());
  EXPECT_TRUE(SameBits(*hit, VectorOf(1, ids)));
  // A second insert of the same key keeps the first bits.
  std::vector<float> other(kDim, 42.0f);
  cache.Insert(1, ids, other.data(), kDim, nullptr);
  EXPECT_TRUE(SameBits(*Get(cache, 1, ids), VectorOf(1, ids)));
  EXPECT_EQ(cache.stats().entries, 1u);
}

TEST(EmbeddingCacheTest, KeyIsTheModelAndEveryId) {
  EmbeddingCache cache({.max_bytes = 1 << 20});
  Put(cache, 1, {101, 5, 6, 102});
  EXPECT_FALSE(Get(cache, 2, {101, 5, 6, 102}).has_value());  // Another model (runtime).
  EXPECT_FALSE(Get(cache, 1, {101, 5, 102}).has_value());     // A prefix (truncated).
  EXPECT_FALSE(Get(cache, 1, {101, 5, 6, 7, 102}).has_value());
  EXPECT_FALSE(Get(cache, 1, {101, 6, 5, 102}).has_value());
  // Another dimension is another model's vector: never returned.
  std::vector<float> wide(2 * kDim);
  EXPECT_FALSE(cache.Lookup(1, std::vector<int32_t>{101, 5, 6, 102}, wide.data(), 2 * kDim));
}

TEST(EmbeddingCacheTest, CollidingHashesNeverAnswerForEachOther) {
  // Every key hashes alike: one shard, one index bucket, one chain.
  EmbeddingCache cache({.max_bytes = 1 << 20,
                        .shards = 4,
                        .hash = [](uint64_t, std::span<const int32_t>) { return uint64_t{42}; }});
  std::vector<std::vector<int32_t>> keys;
  for (int32_t k = 0; k < 50; ++k) keys.push_back(Ids(k));
  keys.push_back({});  // Even the empty sequence.
  for (uint64_t model : {1, 2}) {
    for (const auto& ids : keys) Put(cache, model, ids);
  }
  EXPECT_EQ(cache.stats().entries, 2 * keys.size());
  for (uint64_t model : {1, 2}) {
    for (const auto& ids : keys) {
      std::optional<std::vector<float>> hit = Get(cache, model, ids);
      ASSERT_TRUE(hit.has_value());
      EXPECT_TRUE(SameBits(*hit, VectorOf(model, ids)));
    }
  }
  EXPECT_FALSE(Get(cache, 1, Ids(50)).has_value());
  EXPECT_FALSE(Get(cache, 3, Ids(0)).has_value());
  // Removing from the middle of the chain keeps the others.
  cache.EraseModel(1);
  for (const auto& ids : keys) {
    EXPECT_FALSE(Get(cache, 1, ids).has_value());
    EXPECT_TRUE(SameBits(*Get(cache, 2, ids), VectorOf(2, ids)));
  }
}

TEST(EmbeddingCacheTest, OffStoresNothing) {
  EmbeddingCache cache({.max_bytes = 0});
  EXPECT_FALSE(cache.enabled());
  Put(cache, 1, Ids(1));
  EXPECT_FALSE(Get(cache, 1, Ids(1)).has_value());
  EXPECT_EQ(cache.stats().entries, 0u);
}

TEST(EmbeddingCacheTest, NewEntriesWithoutHitsLeaveInArrivalOrder) {
  EmbeddingCache cache({.max_bytes = RoomFor(10), .shards = 1});
  for (int32_t k = 0; k < 10; ++k) Put(cache, 1, Ids(k));
  EXPECT_EQ(cache.stats().entries, 10u);
  EXPECT_EQ(cache.stats().evictions, 0u);
  Put(cache, 1, Ids(10));
  EXPECT_EQ(cache.stats().evictions, 1u);
  EXPECT_FALSE(Get(cache, 1, Ids(0)).has_value());  // The oldest went first.
  for (int32_t k = 1; k <= 10; ++k) EXPECT_TRUE(Get(cache, 1, Ids(k)).has_value()) << k;
}

TEST(EmbeddingCacheTest, HitEntriesSurviveAScanThatLruWouldNot) {
  // The S3-FIFO property: entries hit while new move to the main queue, and a long run of
  // one-time inputs (a bulk job) then passes through the small queue without flushing them.
  EmbeddingCache cache({.max_bytes = RoomFor(20), .shards = 1});
  for (int32_t k = 0; k < 5; ++k) Put(cache, 1, Ids(k));
  for (int32_t k = 0; k < 5; ++k) ASSERT_TRUE(Get(cache, 1, Ids(k)).has_value());
  for (int32_t k = 1000; k < 1200; ++k) Put(cache, 1, Ids(k));  // 10x the cache, no repeats.
  for (int32_t k = 0; k < 5; ++k) EXPECT_TRUE(Get(cache, 1, Ids(k)).has_value()) << k;
  EXPECT_FALSE(Get(cache, 1, Ids(1000)).has_value());
  EXPECT_TRUE(Get(cache, 1, Ids(1199)).has_value());  // The newest one-timer is still there.
}

TEST(EmbeddingCacheTest, AnInputSeenAgainSoonAfterEvictionGoesToMain) {
  // The ghost queue: an input evicted from the small queue without a hit, then inserted again,
  // was not a one-timer after all; it enters the main queue and outlives the next scan.
  EmbeddingCache cache({.max_bytes = RoomFor(20), .shards = 1});
  Put(cache, 1, Ids(7));
  for (int32_t k = 1000; k < 1030; ++k) Put(cache, 1, Ids(k));  // 11 evicted, 7 first.
  ASSERT_FALSE(Get(cache, 1, Ids(7)).has_value());
  EXPECT_EQ(cache.stats().ghosts, 11u);
  Put(cache, 1, Ids(7));                                        // Recomputed after the miss.
  for (int32_t k = 2000; k < 2040; ++k) Put(cache, 1, Ids(k));  // Twice the cache, no repeats.
  EXPECT_TRUE(Get(cache, 1, Ids(7)).has_value());
  EXPECT_FALSE(Get(cache, 1, Ids(2000)).has_value());
  // Without the ghost it would have gone the way of 2000.
  EmbeddingCache plain({.max_bytes = RoomFor(20), .shards = 1});
  Put(plain, 1, Ids(7));
  for (int32_t k = 2000; k < 2040; ++k) Put(plain, 1, Ids(k));
  EXPECT_FALSE(Get(plain, 1, Ids(7)).has_value());
}

TEST(EmbeddingCacheTest, ByteBoundHoldsUnderChurnAndResize) {
  const uint64_t max_bytes = 64 << 10;
  EmbeddingCache cache({.max_bytes = max_bytes, .shards = 4});
  std::mt19937 rng(7);
  std::uniform_int_distribution<int32_t> key(0, 5000);
  std::uniform_int_distribution<int> length(1, 200);
  uint64_t inserted_bytes = 0;
  for (int i = 0; i < 20000; ++i) {
    std::vector<int32_t> ids(static_cast<size_t>(length(rng)), key(rng));
    ids[0] = key(rng);
    if (!Get(cache, 1, ids)) {
      Put(cache, 1, ids);
      inserted_bytes += EmbeddingCache::EntryBytes(ids.size(), kDim);
    }
    ASSERT_LE(cache.stats().bytes, max_bytes);
    ASSERT_LE(cache.stats().ghosts, cache.stats().entries);
  }
  EXPECT_GT(inserted_bytes, 10 * max_bytes);
  EXPECT_GT(cache.stats().evictions, 0u);
  EXPECT_GT(cache.stats().bytes, max_bytes / 2);  // It does use its room.
  cache.SetMaxBytes(max_bytes / 4);
  EXPECT_LE(cache.stats().bytes, max_bytes / 4);
  cache.SetMaxBytes(0);
  EXPECT_EQ(cache.stats().bytes, 0u);
  EXPECT_EQ(cache.stats().entries, 0u);
  EXPECT_FALSE(cache.enabled());
}

TEST(EmbeddingCacheTest, AnEntryBiggerThanAShardIsNotStored) {
  EmbeddingCache cache({.max_bytes = RoomFor(1), .shards = 1});
  Put(cache, 1, std::vector<int32_t>(100, 5));
  EXPECT_EQ(cache.stats().entries, 0u);
  Put(cache, 1, Ids(1));
  EXPECT_EQ(cache.stats().entries, 1u);
}

TEST(EmbeddingCacheTest, AccountsFollowTheirModelsEntries) {
  metrics::Gauge bytes_a, entries_a, bytes_b, entries_b;
  metrics::Counter evictions_a, evictions_b;
  CacheAccount a{&bytes_a, &entries_a, &evictions_a};
  CacheAccount b{&bytes_b, &entries_b, &evictions_b};
  EmbeddingCache cache({.max_bytes = RoomFor(10), .shards = 1});
  for (int32_t k = 0; k < 6; ++k) Put(cache, 1, Ids(k), &a);
  for (int32_t k = 0; k < 6; ++k) Put(cache, 2, Ids(k), &b);  // Evicts two of model 1's.
  EXPECT_EQ(evictions_a.Value(), 2);
  EXPECT_EQ(evictions_b.Value(), 0);
  EXPECT_EQ(entries_a.Value(), 4);
  EXPECT_EQ(entries_b.Value(), 6);
  EXPECT_EQ(bytes_a.Value(), static_cast<double>(RoomFor(4)));
  EXPECT_EQ(bytes_a.Value() + bytes_b.Value(), static_cast<double>(cache.stats().bytes));
  cache.EraseModel(1);  // Unloaded: gone, and not counted as evictions.
  EXPECT_EQ(entries_a.Value(), 0);
  EXPECT_EQ(bytes_a.Value(), 0);
  EXPECT_EQ(evictions_a.Value(), 2);
  EXPECT_EQ(cache.stats().entries, 6u);
}

TEST(EmbeddingCacheTest, ConcurrentUseKeepsEveryAnswerExact) {
  EmbeddingCache cache({.max_bytes = 256 << 10, .shards = 4});
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(t);
      std::uniform_int_distribution<int32_t> key(0, 300);
      for (int i = 0; i < 20000; ++i) {
        uint64_t model = 1 + (i % 2);
        std::vector<int32_t> ids = Ids(key(rng));
        std::optional<std::vector<float>> hit = Get(cache, model, ids);
        if (!hit) {
          Put(cache, model, ids);
        } else if (!SameBits(*hit, VectorOf(model, ids))) {
          ++wrong;
        }
        if (i % 5000 == 4999 && t == 0) cache.EraseModel(2);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_LE(cache.stats().bytes, uint64_t{256} << 10);
}

}  // namespace
}  // namespace tipperary::worker
