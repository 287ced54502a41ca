// The worker's embedding cache: pooled vectors by (model runtime, token ids), exact match,
// bounded in bytes across all models, S3-FIFO eviction, thread-safe (sharded, one mutex each).
//
// The key is what the encoder sees: the token ids after the tokenizer's normalisation, the
// template's [CLS]/[SEP] and truncation, plus the id of the model runtime that computed them (a
// reload that replaces a model gets a new id, so its vectors never answer for the old one's).
// Entries keep their full ids and a lookup compares them, so two inputs whose hashes collide
// never answer for each other; the hash only picks the shard and the bucket. The vector stored
// is the pooled one before `dimensions` and `normalize`, which the worker applies afterwards.
//
// Eviction is S3-FIFO (Yang et al., SOSP 2023): new entries go to a small FIFO (10% of the
// bytes); one hit while there moves an entry to the main FIFO when it reaches the tail, else it
// is evicted and its hash remembered in a ghost FIFO; an entry whose hash is in the ghost goes
// straight to main. Main evicts from its tail, re-inserting entries hit since they last passed
// (up to 3 times). One-hit wonders (a bulk re-embedding job) thus pass through the small queue
// without flushing what is hit repeatedly, which LRU would let them do; and a hit only bumps a
// counter, no list surgery.
//
//   EmbeddingCache cache({.max_bytes = 64 << 20});
//   cache.Insert(model_id, ids, vector.data(), dim, &account);
//   std::vector<float> out(dim);
//   if (cache.Lookup(model_id, ids, out.data(), dim)) ...  // the bits Insert stored
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "tipperary/metrics/counter.h"
#include "tipperary/metrics/gauge.h"

namespace tipperary::worker {

// Where one model's share of the cache is reported; any may be null. Must outlive the model's
// entries (EraseModel them first).
struct CacheAccount {
  metrics::Gauge* bytes = nullptr;
  metrics::Gauge* entries = nullptr;
  metrics::Counter* evictions = nullptr;
};

class EmbeddingCache {
 public:
  using HashFunction = std::function<uint64_t(uint64_t model, std::span<const int32_t> ids)>;

  struct Options {
    uint64_t max_bytes = 0;  // 0 = off: lookups miss, inserts are dropped.
    // Each shard has its own mutex and max_bytes / shards of the bytes.
    size_t shards = 16;
    // Null = absl::Hash of (model, ids). Tests inject a constant one to force collisions.
    HashFunction hash = {};
  };

  struct Stats {
    uint64_t bytes = 0;
    uint64_t entries = 0;
    uint64_t evictions = 0;
    uint64_t ghosts = 0;  // Hashes in the ghost FIFOs (their memory is within `bytes`).
  };

  // What one entry is charged: its ids and vector, its bookkeeping (the entry, three heap
  // blocks, an index slot) and a ghost slot it may leave behind (ghosts never outnumber
  // entries), so the bound covers all the cache's memory.
  static uint64_t EntryBytes(size_t tokens, int dim);

  explicit EmbeddingCache(Options options);
  ~EmbeddingCache();
  EmbeddingCache(const EmbeddingCache&) = delete;
  EmbeddingCache& operator=(const EmbeddingCache&) = delete;

  bool enabled() const { return max_bytes_.load(std::memory_order_relaxed) > 0; }
  uint64_t max_bytes() const { return max_bytes_.load(std::memory_order_relaxed); }
  // A config reload: a smaller bound evicts down to it at once, 0 empties the cache.
  void SetMaxBytes(uint64_t max_bytes);

  // Copies the vector stored for exactly (model, ids) into out[0, dim) and returns true; false
  // when there is none (or it has another dim, which one model never produces).
  bool Lookup(uint64_t model, std::span<const int32_t> ids, float* out, int dim);
  // Stores a copy of vector[0, dim). An entry already there stays as it is (the bits first
  // computed keep answering); one bigger than a shard's bytes is not stored.
  void Insert(uint64_t model, std::span<const int32_t> ids, const float* vector, int dim,
              const CacheAccount* account);
  // Drops every entry of `model` (its runtime is being unloaded). Not counted as evictions.
  void EraseModel(uint64_t model);

  Stats stats() const;
  uint64_t Hash(uint64_t model, std::span<const int32_t> ids) const;

 private:
  struct Entry;
  struct Shard;

  Shard& ShardOf(uint64_t hash) const;

  const HashFunction hash_;
  std::atomic<uint64_t> max_bytes_;
  std::vector<std::unique_ptr<Shard>> shards_;
};

}  // namespace tipperary::worker
