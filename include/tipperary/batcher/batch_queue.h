// The batching policy: the queue of waiting items and the rule that turns them into batches.
// Not thread-safe and never blocks: DynamicBatcher owns one under its mutex and drives it from
// its scheduler thread; tests can drive it directly with explicit time points.
//
//   BatchQueue queue(options);
//   queue.Push(item);                                   // the queue now owns the item
//   BatchQueue::Plan plan = queue.PlanBatch();
//   if (queue.ShouldRelease(plan, now, /*draining=*/false)) Batch b = queue.Take(plan, now);
//
// The rule (exact):
//  * Lanes. Every item is in a lane, interactive or bulk (Item::priority). PromoteAged(now) moves
//    a bulk item into the interactive lane once enqueue_time + priority_aging has passed. The
//    next batch comes from the interactive lane while it has items, else from the bulk lane, and
//    holds items of that lane only.
//  * Selection. Within the lane, the most URGENT item is always in the next batch: urgency is
//    the earlier of its deadline and enqueue_time + priority_aging, ties to the older item (so
//    without deadlines, the oldest goes, and an item is overtaken by a tighter deadline only
//    until it has waited priority_aging: nothing starves). With group_by_length the batch then
//    grows greedily, one item at a time, from the lane's length buckets next to that item's,
//    choosing the neighbour that adds the least padding (a shorter item adds `longest - its
//    length`, a longer one raises the padding of every item already in), ties to the older
//    item, and FIFO within a length. Without grouping it takes the lane's other items in arrival
//    order and stops at the first that does not fit.
//  * Budget. A batch holds at most max_batch_size items and at most max_batch_tokens PADDED
//    tokens (items × longest). The first item is taken even when it alone exceeds the budget:
//    it then runs alone.
//  * Full. A planned batch is full when it has max_batch_size items, or when some item of its
//    lane was left out because it would break the token budget, or when not even one more item
//    of the current longest length could fit.
//  * Release. A planned batch is released when it is full, or when the oldest queued item (any
//    lane) has waited max_queue_delay (so 0 means at once), or when the batcher is draining, or
//    — with dispatch_when_idle — when no batch is executing at all (the caller says so:
//    `idle`). The caller only asks when an execution slot is free, so while every model instance
//    is busy, items accumulate into fuller batches (as Triton's dynamic batcher does); it also
//    keeps interactive_instances slots for interactive batches (dynamic_batcher.h).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <set>
#include <utility>
#include <vector>

#include "tipperary/batcher/batch.h"
#include "tipperary/batcher/time_source.h"

namespace tipperary::batcher {

class BatchQueue {
 public:
  // What the next batch would be, computed without changing the queue.
  struct Plan {
    std::vector<uint64_t> keys;  // queue keys of the chosen items; empty when the queue is
    uint32_t padded_length = 0;
    uint64_t real_tokens = 0;
    bool full = false;
    Priority lane = Priority::kInteractive;

    uint64_t padded_tokens() const { return keys.size() * static_cast<uint64_t>(padded_length); }
  };

  explicit BatchQueue(BatcherOptions options);

  // A new policy (a config reload) for every batch planned from now on; queued items stay, a
  // smaller max_queue is the caller's business (it checks capacity on Push).
  void SetOptions(const BatcherOptions& options) { options_ = options; }
  const BatcherOptions& options() const { return options_; }

  BatchQueue(const BatchQueue&) = delete;
  BatchQueue& operator=(const BatchQueue&) = delete;

  // Takes ownership of `item` until it comes back out through Take/TakeExpired/TakeCancelled/
  // TakeAll. Capacity (max_queue) is the caller's business.
  void Push(Item item);

  // Moves bulk items queued since enqueue_time + priority_aging <= now into the interactive lane;
  // returns how many. The batcher calls it before every PlanBatch.
  size_t PromoteAged(TimePoint now);
  // When the oldest bulk item ages (TimePoint::max() when the bulk lane is empty).
  TimePoint next_promotion() const;

  size_t size() const { return items_.size(); }
  size_t bulk_size() const { return lanes_[1].keys.size(); }
  bool empty() const { return items_.empty(); }
  uint64_t tokens() const { return tokens_; }
  // TimePoint::max() when empty / when no queued item has a deadline.
  TimePoint oldest_enqueue_time() const;
  TimePoint next_deadline() const;
  // When the current oldest item's max_queue_delay runs out (TimePoint::max() when empty).
  TimePoint release_time() const;

  Plan PlanBatch() const;
  // `idle`: no batch of this queue is executing (every model instance is free).
  bool ShouldRelease(const Plan& plan, TimePoint now, bool draining, bool idle = false) const;
  // Removes the planned items (the plan must come from PlanBatch with no change in between).
  Batch Take(const Plan& plan, TimePoint now);

  // Each appends the removed items to `out`, in arrival order, and returns how many.
  size_t TakeExpired(TimePoint now, std::vector<Item>* out);  // deadline <= now
  size_t TakeCancelled(std::vector<Item>* out);               // O(size())
  size_t TakeAll(std::vector<Item>* out);

 private:
  using Buckets = std::map<uint32_t, std::set<uint64_t>>;  // length -> keys (= arrival order)
  using Urgency = std::pair<TimePoint, uint64_t>;          // (urgency, key)

  struct Entry {
    Item item;
    size_t lane = 0;
    TimePoint urgency{};  // kept: the aging it was computed with may change (SetOptions)
  };
  struct Lane {
    std::set<uint64_t> keys;  // arrival order
    Buckets buckets;
    std::set<Urgency> by_urgency;  // begin() = the next batch's first item
  };

  void Insert(uint64_t key, size_t lane);  // into lane's indexes
  void Erase(uint64_t key, const Entry& entry);
  Item Remove(std::map<uint64_t, Entry>::iterator it);
  void PlanGrouped(const Lane& lane, uint64_t first, size_t max_items, Plan* plan,
                   bool* blocked) const;
  void PlanFifo(const Lane& lane, uint64_t first, size_t max_items, Plan* plan,
                bool* blocked) const;
  bool Fits(size_t count, uint32_t length) const;
  TimePoint AgedAt(const Item& item) const;

  BatcherOptions options_;
  uint64_t next_key_ = 0;
  uint64_t tokens_ = 0;
  std::map<uint64_t, Entry> items_;  // key (arrival order) -> item
  std::array<Lane, kPriorities> lanes_;
  std::set<std::pair<TimePoint, uint64_t>> deadlines_;  // only items that have one
};

}  // namespace tipperary::batcher
