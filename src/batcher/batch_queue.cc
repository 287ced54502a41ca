#include "tipperary/batcher/batch_queue.h"

#include <algorithm>
#include <iterator>

namespace tipperary::batcher {

BatchQueue::BatchQueue(BatcherOptions options) : options_(options) {}

void BatchQueue::Push(Item item) {
  const uint64_t key = next_key_++;
  tokens_ += item.tokens;
  buckets_[item.tokens].insert(key);
  if (item.deadline != TimePoint::max()) deadlines_.emplace(item.deadline, key);
  items_.emplace_hint(items_.end(), key, std::move(item));
}

TimePoint BatchQueue::oldest_enqueue_time() const {
  return items_.empty() ? TimePoint::max() : items_.begin()->second.enqueue_time;
}

TimePoint BatchQueue::next_deadline() const {
  return deadlines_.empty() ? TimePoint::max() : deadlines_.begin()->first;
}

TimePoint BatchQueue::release_time() const {
  const TimePoint oldest = oldest_enqueue_time();
  if (oldest == TimePoint::max()) return oldest;
  const auto delay = std::chrono::duration_cast<Duration>(options_.max_queue_delay);
  if (delay <= Duration::zero()) return oldest;
  if (TimePoint::max() - oldest <= delay) return TimePoint::max();  // saturate
  return oldest + delay;
}

bool BatchQueue::Fits(size_t count, uint32_t length) const {
  return static_cast<uint64_t>(count) * length <= options_.max_batch_tokens;
}

BatchQueue::Plan BatchQueue::PlanBatch() const {
  Plan plan;
  if (items_.empty()) return plan;
  const size_t max_items = std::max<size_t>(1, options_.max_batch_size);
  // The oldest item always goes, even alone over the budget: nothing starves.
  const auto& [first_key, first] = *items_.begin();
  plan.keys.push_back(first_key);
  plan.padded_length = first.tokens;
  plan.real_tokens = first.tokens;
  bool blocked = false;  // some queued item was left out by the token budget
  if (options_.group_by_length) {
    PlanGrouped(max_items, &plan, &blocked);
  } else {
    PlanFifo(max_items, &plan, &blocked);
  }
  plan.full =
      plan.keys.size() >= max_items || blocked || !Fits(plan.keys.size() + 1, plan.padded_length);
  return plan;
}

void BatchQueue::PlanFifo(size_t max_items, Plan* plan, bool* blocked) const {
  for (auto it = std::next(items_.begin()); it != items_.end() && plan->keys.size() < max_items;
       ++it) {
    const uint32_t longest = std::max(plan->padded_length, it->second.tokens);
    if (!Fits(plan->keys.size() + 1, longest)) {
      *blocked = true;  // strict arrival order: stop at the first item that does not fit
      return;
    }
    plan->keys.push_back(it->first);
    plan->padded_length = longest;
    plan->real_tokens += it->second.tokens;
  }
}

void BatchQueue::PlanGrouped(size_t max_items, Plan* plan, bool* blocked) const {
  // Two cursors walk out from the oldest item's bucket: `up` over its own bucket (same length,
  // no added padding) and then longer buckets; `down` over shorter buckets. Within a bucket
  // keys ascend, i.e. oldest first.
  struct Cursor {
    Buckets::const_iterator bucket;
    std::set<uint64_t>::const_iterator key;
    bool done = false;
  };
  const Buckets::const_iterator home = buckets_.find(plan->padded_length);
  Cursor up{home, std::next(home->second.begin())};  // the oldest item is its bucket's first
  if (up.key == up.bucket->second.end()) {
    ++up.bucket;
    up.done = up.bucket == buckets_.end();
    if (!up.done) up.key = up.bucket->second.begin();
  }
  Cursor down{home, {}, home == buckets_.begin()};
  if (!down.done) {
    --down.bucket;
    down.key = down.bucket->second.begin();
  }

  while (plan->keys.size() < max_items && !(up.done && down.done)) {
    const size_t n = plan->keys.size();
    if (!down.done && !Fits(n + 1, plan->padded_length)) {
      // Not even a shorter item fits, so nothing does.
      *blocked = true;
      return;
    }
    if (!up.done && !Fits(n + 1, std::max(plan->padded_length, up.bucket->first))) {
      // Longer buckets only get worse; the shorter side may still fit.
      *blocked = true;
      up.done = true;
      continue;
    }
    bool take_down;
    if (up.done) {
      take_down = true;
    } else if (down.done) {
      take_down = false;
    } else {
      // Added padding: a shorter item pads itself to the current longest; a longer one pads
      // every item already in the batch up to its own length.
      const uint64_t waste_down = plan->padded_length - down.bucket->first;
      const uint64_t waste_up = n * static_cast<uint64_t>(up.bucket->first - plan->padded_length);
      take_down = waste_down < waste_up || (waste_down == waste_up && *down.key < *up.key);
    }
    Cursor& c = take_down ? down : up;
    const uint32_t length = c.bucket->first;
    plan->keys.push_back(*c.key);
    plan->padded_length = std::max(plan->padded_length, length);
    plan->real_tokens += length;
    if (++c.key == c.bucket->second.end()) {
      if (take_down) {
        if (c.bucket == buckets_.begin()) {
          c.done = true;
        } else {
          --c.bucket;
          c.key = c.bucket->second.begin();
        }
      } else {
        ++c.bucket;
        c.done = c.bucket == buckets_.end();
        if (!c.done) c.key = c.bucket->second.begin();
      }
    }
  }
}

bool BatchQueue::ShouldRelease(const Plan& plan, TimePoint now, bool draining, bool idle) const {
  if (plan.keys.empty()) return false;
  return plan.full || draining || (idle && options_.dispatch_when_idle) || now >= release_time();
}

Item BatchQueue::Remove(std::map<uint64_t, Item>::iterator it) {
  const uint64_t key = it->first;
  Item item = std::move(it->second);
  items_.erase(it);
  tokens_ -= item.tokens;
  auto bucket = buckets_.find(item.tokens);
  bucket->second.erase(key);
  if (bucket->second.empty()) buckets_.erase(bucket);
  if (item.deadline != TimePoint::max()) deadlines_.erase({item.deadline, key});
  return item;
}

Batch BatchQueue::Take(const Plan& plan, TimePoint now) {
  std::vector<uint64_t> keys = plan.keys;
  std::sort(keys.begin(), keys.end());  // arrival order in the batch
  Batch batch;
  batch.items.reserve(keys.size());
  for (uint64_t key : keys) {
    auto it = items_.find(key);
    if (it == items_.end()) continue;  // stale plan: tolerate, the totals below stay exact
    batch.items.push_back(Remove(it));
  }
  for (const Item& item : batch.items) {
    batch.padded_length = std::max(batch.padded_length, item.tokens);
    batch.real_tokens += item.tokens;
  }
  batch.padded_tokens = batch.items.size() * static_cast<uint64_t>(batch.padded_length);
  batch.formed_time = now;
  return batch;
}

size_t BatchQueue::TakeExpired(TimePoint now, std::vector<Item>* out) {
  std::vector<uint64_t> keys;
  for (auto it = deadlines_.begin(); it != deadlines_.end() && it->first <= now; ++it) {
    keys.push_back(it->second);
  }
  std::sort(keys.begin(), keys.end());
  for (uint64_t key : keys) out->push_back(Remove(items_.find(key)));
  return keys.size();
}

size_t BatchQueue::TakeCancelled(std::vector<Item>* out) {
  size_t n = 0;
  for (auto it = items_.begin(); it != items_.end();) {
    auto next = std::next(it);
    if (it->second.is_cancelled()) {
      out->push_back(Remove(it));
      ++n;
    }
    it = next;
  }
  return n;
}

size_t BatchQueue::TakeAll(std::vector<Item>* out) {
  const size_t n = items_.size();
  while (!items_.empty()) out->push_back(Remove(items_.begin()));
  return n;
}

}  // namespace tipperary::batcher
