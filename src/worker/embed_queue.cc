#include "embed_queue.h"

#include <algorithm>
#include <utility>

#include "absl/hash/hash.h"
#include "absl/types/span.h"

namespace tipperary::worker {
namespace {

std::atomic<uint64_t> next_model_id{1};

bool IsCancelled(const EmbedTask& task) {
  return task.cancelled() != nullptr && task.cancelled()->load(std::memory_order_acquire);
}

absl::Status Expired() {
  return absl::DeadlineExceededError("deadline passed while queued for a batch");
}

}  // namespace

// One computation: the batcher item's payload. `text` is the text whose ids it computes (and
// whose task's deadline and cancel flag the item carries); `joiners` wait for the same row.
struct EmbedQueue::Pending {
  Waiter text;
  uint64_t hash = 0;
  bool mapped = false;  // In in_flight_, so that texts can join it.
  Pending* next_same_hash = nullptr;
  std::vector<Waiter> joiners;  // Guarded by the queue's mu_.
};

EmbedQueue::EmbedQueue(Options options, Encode encode)
    : options_(std::move(options)),
      encode_(std::move(encode)),
      model_id_(next_model_id.fetch_add(1, std::memory_order_relaxed)),
      dedup_(options_.dedup) {
  batcher_ = std::make_unique<batcher::DynamicBatcher>(
      options_.batching, [this](batcher::Batch batch) { Execute(std::move(batch)); },
      [this](batcher::Item item, const absl::Status& status) { Reject(std::move(item), status); },
      options_.time, std::max(1, options_.instances));
}

EmbedQueue::~EmbedQueue() {
  Stop();
  if (options_.cache) options_.cache->EraseModel(model_id_);
}

void EmbedQueue::Drain(batcher::TimePoint deadline) {
  accepting_.store(false);
  batcher_->Drain(deadline);
  completions_.Stop();
}

void EmbedQueue::Stop() {
  accepting_.store(false);
  batcher_->Stop();
  completions_.Stop();
}

size_t EmbedQueue::in_flight() const {
  absl::MutexLock lock(&mu_);
  return in_flight_count_;
}

uint64_t EmbedQueue::HashOf(std::span<const int32_t> ids) const {
  if (options_.hash) return options_.hash(model_id_, ids);
  return absl::HashOf(absl::MakeConstSpan(ids.data(), ids.size()));
}

EmbedQueue::Pending* EmbedQueue::FindInFlight(uint64_t hash, std::span<const int32_t> ids,
                                              batcher::Priority priority) const {
  auto it = in_flight_.find(hash);
  if (it == in_flight_.end()) return nullptr;
  for (Pending* p = it->second; p != nullptr; p = p->next_same_hash) {
    // An interactive text does not wait on a bulk computation (it may still be queued in the
    // slower lane); bulk texts join anything.
    if (priority == batcher::Priority::kInteractive &&
        p->text.task->priority() == batcher::Priority::kBulk) {
      continue;
    }
    std::span<const int32_t> other = IdsOf(p->text);
    if (other.size() == ids.size() && std::equal(ids.begin(), ids.end(), other.begin())) return p;
  }
  return nullptr;
}

void EmbedQueue::AddInFlight(Pending* pending) {
  auto [it, inserted] = in_flight_.try_emplace(pending->hash, pending);
  if (!inserted) {
    pending->next_same_hash = it->second;
    it->second = pending;
  }
  pending->mapped = true;
  ++in_flight_count_;
}

void EmbedQueue::RemoveInFlight(Pending* pending) {
  if (!pending->mapped) return;
  pending->mapped = false;
  --in_flight_count_;
  auto it = in_flight_.find(pending->hash);
  if (it->second == pending) {
    if (pending->next_same_hash == nullptr) {
      in_flight_.erase(it);
    } else {
      it->second = pending->next_same_hash;
    }
  } else {
    Pending* prev = it->second;
    while (prev->next_same_hash != pending) prev = prev->next_same_hash;
    prev->next_same_hash = pending->next_same_hash;
  }
  pending->next_same_hash = nullptr;
}

batcher::Item EmbedQueue::MakeItem(const std::shared_ptr<Pending>& pending,
                                   uint64_t request_id) const {
  batcher::Item item;
  item.request_id = request_id;
  item.index = pending->text.index;
  item.tokens = static_cast<uint32_t>(IdsOf(pending->text).size());
  item.deadline = pending->text.deadline;
  item.priority = pending->text.task->priority();
  item.cancelled = pending->text.task->cancelled();
  item.payload = pending;
  return item;
}

absl::Status EmbedQueue::Submit(const std::shared_ptr<EmbedTask>& task,
                                batcher::TimePoint deadline) {
  const int dim = options_.dim;
  task->Allocate(dim);
  if (!accepting_.load()) return absl::UnavailableError("batcher is draining or stopped");
  const size_t count = task->size();
  EmbeddingCache* cache =
      options_.cache != nullptr && options_.cache->enabled() ? options_.cache.get() : nullptr;
  const bool dedup = dedup_.load(std::memory_order_relaxed);
  const uint64_t request_id = next_request_id_.fetch_add(1, std::memory_order_relaxed);
  const batcher::TimePoint now = dedup ? options_.time->Now() : batcher::TimePoint{};

  std::vector<uint32_t> hits;
  std::vector<float> hit_rows;  // hits.size() x dim
  std::vector<std::pair<Pending*, uint32_t>> joins;
  std::vector<std::shared_ptr<Pending>> fresh;
  // Held until every text is placed: a computation completes (Execute, Reject) only after it
  // has taken mu_, so nothing of this task completes before Submit is done with it, and a text
  // joins a computation only before its joiners are handed out.
  absl::MutexLock lock(&mu_);
  for (uint32_t i = 0; i < count; ++i) {
    std::span<const int32_t> ids = task->ids()[i];
    if (cache != nullptr) {
      hit_rows.resize((hits.size() + 1) * static_cast<size_t>(dim));
      if (cache->Lookup(model_id_, ids, hit_rows.data() + hits.size() * dim, dim)) {
        hits.push_back(i);
        continue;
      }
      hit_rows.resize(hits.size() * static_cast<size_t>(dim));
    }
    uint64_t hash = 0;
    if (dedup) {
      hash = HashOf(ids);
      if (Pending* p = FindInFlight(hash, ids, task->priority())) {
        joins.emplace_back(p, i);
        continue;
      }
    }
    auto pending = std::make_shared<Pending>();
    pending->text = {task, i, deadline, {}};
    pending->hash = hash;
    if (dedup) AddInFlight(pending.get());  // Later texts of this task may join it.
    fresh.push_back(std::move(pending));
  }
  if (!fresh.empty()) {
    std::vector<batcher::Item> items;
    items.reserve(fresh.size());
    for (const std::shared_ptr<Pending>& p : fresh) items.push_back(MakeItem(p, request_id));
    absl::Status status = batcher_->Enqueue(std::move(items));
    if (!status.ok()) {
      // Nobody else can have joined them: mu_ is still held.
      for (const std::shared_ptr<Pending>& p : fresh) RemoveInFlight(p.get());
      return status;
    }
  }
  if (!hits.empty() && hits.size() == count) {
    // All from the cache: `done` runs on the completion thread.
    auto complete = [task, hits, rows = std::move(hit_rows), dim] {
      for (size_t k = 0; k < hits.size(); ++k) {
        task->CompleteItem(hits[k], rows.data() + k * static_cast<size_t>(dim), absl::OkStatus(),
                           std::chrono::nanoseconds(0), 0, std::chrono::nanoseconds(0));
      }
    };
    if (!completions_.Post(std::move(complete))) {
      return absl::UnavailableError("batcher is draining or stopped");
    }
  } else {
    // Some texts wait for a computation, which cannot complete while mu_ is held: the hits are
    // never the task's last texts, so `done` does not run here.
    for (size_t k = 0; k < hits.size(); ++k) {
      task->CompleteItem(hits[k], hit_rows.data() + k * static_cast<size_t>(dim), absl::OkStatus(),
                         std::chrono::nanoseconds(0), 0, std::chrono::nanoseconds(0));
    }
  }
  for (const auto& [pending, index] : joins) {
    pending->joiners.push_back({task, index, deadline, now});
  }
  if (cache != nullptr) {
    if (options_.metrics.cache_hits != nullptr && !hits.empty()) {
      options_.metrics.cache_hits->Increment(static_cast<double>(hits.size()));
    }
    if (options_.metrics.cache_misses != nullptr && hits.size() < count) {
      options_.metrics.cache_misses->Increment(static_cast<double>(count - hits.size()));
    }
  }
  if (options_.metrics.dedup_joins != nullptr && !joins.empty()) {
    options_.metrics.dedup_joins->Increment(static_cast<double>(joins.size()));
  }
  return absl::OkStatus();
}

void EmbedQueue::Execute(batcher::Batch batch) {
  const size_t n = batch.items.size();
  const size_t dim = static_cast<size_t>(options_.dim);
  std::vector<Pending*> pendings(n);
  std::vector<std::vector<int32_t>> ids;
  ids.reserve(n);
  for (size_t j = 0; j < n; ++j) {
    pendings[j] = static_cast<Pending*>(batch.items[j].payload.get());
    std::span<const int32_t> row = IdsOf(pendings[j]->text);
    ids.emplace_back(row.begin(), row.end());
  }
  std::vector<float> out;
  std::chrono::nanoseconds compute{0};
  absl::Status status = encode_(batch, ids, &out, &compute);
  if (status.ok() && out.size() != n * dim) {
    status = absl::InternalError("the encoder returned the wrong number of values");
  }
  // Into the cache before the computations leave in_flight_: a text submitted in between then
  // finds one or the other (Submit holds mu_ across both lookups).
  if (status.ok() && options_.cache != nullptr && options_.cache->enabled()) {
    for (size_t j = 0; j < n; ++j) {
      options_.cache->Insert(model_id_, ids[j], out.data() + j * dim, options_.dim,
                             &options_.cache_account);
    }
  }
  std::vector<std::vector<Waiter>> joiners(n);
  {
    absl::MutexLock lock(&mu_);
    for (size_t j = 0; j < n; ++j) {
      RemoveInFlight(pendings[j]);
      joiners[j] = std::move(pendings[j]->joiners);
    }
  }
  // Outside mu_: `done` may submit more work. The batch's payloads keep every task alive.
  for (size_t j = 0; j < n; ++j) {
    const float* row = status.ok() ? out.data() + j * dim : nullptr;
    const Waiter& text = pendings[j]->text;
    text.task->CompleteItem(text.index, row, status,
                            batch.formed_time - batch.items[j].enqueue_time, batch.sequence,
                            compute);
    for (const Waiter& w : joiners[j]) {
      std::chrono::nanoseconds queued = std::max<std::chrono::nanoseconds>(
          std::chrono::nanoseconds(0), batch.formed_time - w.joined);
      if (w.deadline <= batch.formed_time) {
        // As the batcher does for a text still queued at its deadline.
        w.task->CompleteItem(w.index, nullptr, Expired(), queued, 0, std::chrono::nanoseconds(0));
      } else {
        w.task->CompleteItem(w.index, row, status, queued, batch.sequence, compute);
      }
    }
  }
}

void EmbedQueue::Reject(batcher::Item item, const absl::Status& status) {
  std::shared_ptr<void> keep = std::move(item.payload);
  auto* pending = static_cast<Pending*>(keep.get());
  // Its own text's deadline or cancellation: not the joiners'. Anything else (the model shutting
  // down) is everyone's.
  const bool own_reason = status.code() == absl::StatusCode::kDeadlineExceeded ||
                          status.code() == absl::StatusCode::kCancelled;
  const batcher::TimePoint now = options_.time->Now();
  std::vector<std::pair<Waiter, absl::Status>> failed;
  {
    absl::MutexLock lock(&mu_);
    const bool was_mapped = pending->mapped;
    RemoveInFlight(pending);
    std::vector<Waiter> live;
    for (Waiter& w : pending->joiners) {
      if (!own_reason) {
        failed.emplace_back(std::move(w), status);
      } else if (w.deadline <= now) {
        failed.emplace_back(std::move(w), Expired());
      } else if (IsCancelled(*w.task)) {
        failed.emplace_back(std::move(w),
                            absl::CancelledError("cancelled while queued for a batch"));
      } else {
        live.push_back(std::move(w));
      }
    }
    pending->joiners.clear();
    if (!live.empty()) {
      // The live joiners become a computation of their own, carried by the first of the most
      // urgent lane (bulk joiners may wait on an interactive computation, never the reverse).
      std::stable_partition(live.begin(), live.end(), [](const Waiter& w) {
        return w.task->priority() == batcher::Priority::kInteractive;
      });
      auto next = std::make_shared<Pending>();
      next->text = std::move(live.front());
      next->text.joined = {};
      next->hash = pending->hash;
      next->joiners.assign(std::make_move_iterator(live.begin() + 1),
                           std::make_move_iterator(live.end()));
      if (was_mapped) AddInFlight(next.get());
      std::vector<batcher::Item> items;
      items.push_back(MakeItem(next, next_request_id_.fetch_add(1, std::memory_order_relaxed)));
      absl::Status queued = batcher_->Enqueue(std::move(items));
      if (!queued.ok()) {
        RemoveInFlight(next.get());
        failed.emplace_back(std::move(next->text), queued);
        for (Waiter& w : next->joiners) failed.emplace_back(std::move(w), queued);
      }
    }
  }
  const Waiter& text = pending->text;
  text.task->CompleteItem(text.index, nullptr, status, std::chrono::nanoseconds(0), 0,
                          std::chrono::nanoseconds(0));
  for (const auto& [w, why] : failed) {
    w.task->CompleteItem(w.index, nullptr, why, std::chrono::nanoseconds(0), 0,
                         std::chrono::nanoseconds(0));
  }
}

}  // namespace tipperary::worker
