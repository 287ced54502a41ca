#include "embedding_cache.h"

#include <algorithm>
#include <cstring>
#include <deque>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"

namespace tipperary::worker {
namespace {

// The bookkeeping each entry is charged besides its ids and vector (EntryBytes). The hash maps
// are charged at their lowest load (7/16, just after growing), so that the bound holds whatever
// their state: measured, the heap a full cache holds stays under what it is charged.
constexpr uint64_t kHeapBlockBytes = 16;  // glibc malloc's per-block overhead, rounded up.
constexpr uint64_t kIndexSlotBytes = 40;  // flat_hash_map<uint64_t, Entry*>: 16 + 1 control byte.
constexpr uint64_t kGhostSlotBytes = 48;  // A deque element (8) + flat_hash_map<uint64_t,
                                          // uint32_t>: 16 + 1.
constexpr uint8_t kMaxFrequency = 3;

}  // namespace

struct EmbeddingCache::Entry {
  uint64_t hash = 0;
  uint64_t model = 0;
  std::vector<int32_t> ids;
  std::vector<float> vector;
  const CacheAccount* account = nullptr;
  uint64_t bytes = 0;
  Entry* prev = nullptr;  // Towards the head (newer) of its FIFO.
  Entry* next = nullptr;  // Towards the tail (older).
  Entry* next_same_hash = nullptr;
  uint8_t frequency = 0;  // Hits since insertion or the last pass through a tail, capped.
  bool in_main = false;
};

namespace {

// An intrusive FIFO: push at the head, evict from the tail.
template <typename E>
struct Fifo {
  E* head = nullptr;
  E* tail = nullptr;
  uint64_t bytes = 0;
  size_t count = 0;

  bool empty() const { return head == nullptr; }
  void PushHead(E* e) {
    e->prev = nullptr;
    e->next = head;
    if (head != nullptr) head->prev = e;
    head = e;
    if (tail == nullptr) tail = e;
    bytes += e->bytes;
    ++count;
  }
  void Remove(E* e) {
    (e->prev != nullptr ? e->prev->next : head) = e->next;
    (e->next != nullptr ? e->next->prev : tail) = e->prev;
    e->prev = e->next = nullptr;
    bytes -= e->bytes;
    --count;
  }
};

}  // namespace

struct EmbeddingCache::Shard {
  mutable absl::Mutex mu;
  uint64_t capacity ABSL_GUARDED_BY(mu) = 0;
  // Hash -> the first entry with it; the others follow next_same_hash.
  absl::flat_hash_map<uint64_t, Entry*> index ABSL_GUARDED_BY(mu);
  Fifo<Entry> small ABSL_GUARDED_BY(mu);
  Fifo<Entry> main ABSL_GUARDED_BY(mu);
  // Hashes of entries evicted from `small` without a hit, oldest first, and how many times
  // each is in the deque. Never more than there are entries (their memory is charged to them).
  std::deque<uint64_t> ghosts ABSL_GUARDED_BY(mu);
  absl::flat_hash_map<uint64_t, uint32_t> ghost_counts ABSL_GUARDED_BY(mu);
  uint64_t evictions ABSL_GUARDED_BY(mu) = 0;

  ~Shard() {
    absl::MutexLock lock(&mu);
    Clear(/*count_evictions=*/false);
  }

  uint64_t bytes() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return small.bytes + main.bytes; }
  size_t entries() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return small.count + main.count; }

  Entry* Find(uint64_t hash, uint64_t model, std::span<const int32_t> ids) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    auto it = index.find(hash);
    if (it == index.end()) return nullptr;
    for (Entry* e = it->second; e != nullptr; e = e->next_same_hash) {
      if (e->model == model && e->ids.size() == ids.size() &&
          std::equal(ids.begin(), ids.end(), e->ids.begin())) {
        return e;
      }
    }
    return nullptr;
  }

  void Unindex(Entry* e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    auto it = index.find(e->hash);
    if (it->second == e) {
      if (e->next_same_hash == nullptr) {
        index.erase(it);
      } else {
        it->second = e->next_same_hash;
      }
      return;
    }
    Entry* prev = it->second;
    while (prev->next_same_hash != e) prev = prev->next_same_hash;
    prev->next_same_hash = e->next_same_hash;
  }

  // Out of its FIFO and the index, off its account, freed.
  void Drop(Entry* e, bool eviction) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    (e->in_main ? main : small).Remove(e);
    Unindex(e);
    if (e->account != nullptr) {
      if (e->account->bytes != nullptr) e->account->bytes->Decrement(static_cast<double>(e->bytes));
      if (e->account->entries != nullptr) e->account->entries->Decrement();
      if (eviction && e->account->evictions != nullptr) e->account->evictions->Increment();
    }
    if (eviction) ++evictions;
    delete e;
  }

  void RememberGhost(uint64_t hash) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    ghosts.push_back(hash);
    ++ghost_counts[hash];
    TrimGhosts();
  }

  // Forgets the oldest ghosts until they are no more than the entries.
  void TrimGhosts() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    while (ghosts.size() > entries()) {
      auto it = ghost_counts.find(ghosts.front());
      if (--it->second == 0) ghost_counts.erase(it);
      ghosts.pop_front();
    }
  }

  // S3-FIFO's eviction, until the shard is within its bytes.
  void Evict() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    while (bytes() > capacity) {
      if (main.empty() || small.bytes > capacity / 10) {
        Entry* e = small.tail;
        if (e->frequency > 0) {
          small.Remove(e);
          e->frequency = 0;
          e->in_main = true;
          main.PushHead(e);
        } else {
          uint64_t hash = e->hash;
          Drop(e, /*eviction=*/true);
          RememberGhost(hash);
        }
      } else {
        Entry* e = main.tail;
        if (e->frequency > 0) {
          main.Remove(e);
          --e->frequency;
          main.PushHead(e);
        } else {
          Drop(e, /*eviction=*/true);
        }
      }
    }
    TrimGhosts();
  }

  void Clear(bool count_evictions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    while (!small.empty()) Drop(small.tail, count_evictions);
    while (!main.empty()) Drop(main.tail, count_evictions);
    ghosts.clear();
    ghost_counts.clear();
  }
};

uint64_t EmbeddingCache::EntryBytes(size_t tokens, int dim) {
  return sizeof(Entry) + sizeof(int32_t) * tokens + sizeof(float) * static_cast<uint64_t>(dim) +
         3 * kHeapBlockBytes + kIndexSlotBytes + kGhostSlotBytes;
}

EmbeddingCache::EmbeddingCache(Options options)
    : hash_(std::move(options.hash)), max_bytes_(options.max_bytes) {
  const size_t shards = std::max<size_t>(1, options.shards);
  for (size_t i = 0; i < shards; ++i) {
    auto shard = std::make_unique<Shard>();
    absl::MutexLock lock(&shard->mu);
    shard->capacity = options.max_bytes / shards;
    shards_.push_back(std::move(shard));
  }
}

EmbeddingCache::~EmbeddingCache() = default;

uint64_t EmbeddingCache::Hash(uint64_t model, std::span<const int32_t> ids) const {
  if (hash_) return hash_(model, ids);
  return absl::HashOf(model, absl::MakeConstSpan(ids.data(), ids.size()));
}

EmbeddingCache::Shard& EmbeddingCache::ShardOf(uint64_t hash) const {
  // The high bits: the low ones also pick the slot in the shard's index.
  return *shards_[(hash >> 40) % shards_.size()];
}

void EmbeddingCache::SetMaxBytes(uint64_t max_bytes) {
  max_bytes_.store(max_bytes, std::memory_order_relaxed);
  for (const std::unique_ptr<Shard>& shard : shards_) {
    absl::MutexLock lock(&shard->mu);
    shard->capacity = max_bytes / shards_.size();
    shard->Evict();
  }
}

bool EmbeddingCache::Lookup(uint64_t model, std::span<const int32_t> ids, float* out, int dim) {
  if (!enabled()) return false;
  const uint64_t hash = Hash(model, ids);
  Shard& shard = ShardOf(hash);
  absl::MutexLock lock(&shard.mu);
  Entry* e = shard.Find(hash, model, ids);
  if (e == nullptr || e->vector.size() != static_cast<size_t>(dim)) return false;
  e->frequency = static_cast<uint8_t>(std::min<int>(e->frequency + 1, kMaxFrequency));
  std::memcpy(out, e->vector.data(), sizeof(float) * e->vector.size());
  return true;
}

void EmbeddingCache::Insert(uint64_t model, std::span<const int32_t> ids, const float* vector,
                            int dim, const CacheAccount* account) {
  if (!enabled()) return;
  const uint64_t hash = Hash(model, ids);
  const uint64_t bytes = EntryBytes(ids.size(), dim);
  Shard& shard = ShardOf(hash);
  // Copied before taking the lock, so that the lock covers bookkeeping only.
  auto e = std::make_unique<Entry>();
  e->hash = hash;
  e->model = model;
  e->ids.assign(ids.begin(), ids.end());
  e->vector.assign(vector, vector + dim);
  e->account = account;
  e->bytes = bytes;
  absl::MutexLock lock(&shard.mu);
  if (bytes > shard.capacity || shard.Find(hash, model, ids) != nullptr) return;
  auto [it, inserted] = shard.index.try_emplace(hash, e.get());
  if (!inserted) {
    e->next_same_hash = it->second;
    it->second = e.get();
  }
  e->in_main = shard.ghost_counts.contains(hash);
  (e->in_main ? shard.main : shard.small).PushHead(e.get());
  if (account != nullptr) {
    if (account->bytes != nullptr) account->bytes->Increment(static_cast<double>(bytes));
    if (account->entries != nullptr) account->entries->Increment();
  }
  e.release();
  shard.Evict();
}

void EmbeddingCache::EraseModel(uint64_t model) {
  for (const std::unique_ptr<Shard>& shard : shards_) {
    absl::MutexLock lock(&shard->mu);
    for (Fifo<Entry>* fifo : {&shard->small, &shard->main}) {
      for (Entry* e = fifo->head; e != nullptr;) {
        Entry* next = e->next;
        if (e->model == model) shard->Drop(e, /*eviction=*/false);
        e = next;
      }
    }
    shard->TrimGhosts();
  }
}

EmbeddingCache::Stats EmbeddingCache::stats() const {
  Stats stats;
  for (const std::unique_ptr<Shard>& shard : shards_) {
    absl::MutexLock lock(&shard->mu);
    stats.bytes += shard->bytes();
    stats.entries += shard->entries();
    stats.evictions += shard->evictions;
    stats.ghosts += shard->ghosts.size();
  }
  return stats;
}

}  // namespace tipperary::worker
