#include "tipperary/batcher/batch_queue.h"

#include <algorithm>
#include <iterator>

namespace tipperary::batcher {
namespace {

constexpr size_t kInteractiveLane = static_cast<size_t>(Priority::kInteractive);
constexpr size_t kBulkLane = static_cast<size_t>(Priority::kBulk);

// at + d, saturating at TimePoint::max() (an aging of hours must not wrap).
TimePoint AddSaturating(TimePoint at, std::chrono::nanoseconds d) {
  const auto delay = std::chrono::duration_cast<Duration>(d);
  if (delay <= Duration::zero()) return at;
  if (TimePoint::max() - at <= delay) return TimePoint::max();
  return at + delay;
}

}  // namespace

BatchQueue::BatchQueue(BatcherOptions options) : options_(options) {}

TimePoint BatchQueue::AgedAt(const Item& item) const {
  return AddSaturating(item.enqueue_time, options_.priority_aging);
}

void BatchQueue::Push(Item item) {
  const uint64_t key = next_key_++;
  tokens_ += item.tokens;
  if (item.deadline != TimePoint::max()) deadlines_.emplace(item.deadline, key);
  const size_t lane = item.priority == Priority::kBulk ? kBulkLane : kInteractiveLane;
  const TimePoint urgency = std::min(item.deadline, AgedAt(item));
  items_.emplace_hint(items_.end(), key, Entry{std::move(item), lane, urgency});
  Insert(key, lane);
}

void BatchQueue::Insert(uint64_t key, size_t lane) {
  const Entry& entry = items_.at(key);
  Lane& l = lanes_[lane];
  l.keys.insert(key);
  l.buckets[entry.item.tokens].insert(key);
  l.by_urgency.emplace(entry.urgency, key);
}

void BatchQueue::Erase(uint64_t key, const Entry& entry) {
  Lane& l = lanes_[entry.lane];
  l.keys.erase(key);
  auto bucket = l.buckets.find(entry.item.tokens);
  bucket->second.erase(key);
  if (bucket->second.empty()) l.buckets.erase(bucket);
  l.by_urgency.erase({entry.urgency, key});
}

size_t BatchQueue::PromoteAged(TimePoint now) {
  Lane& bulk = lanes_[kBulkLane];
  size_t promoted = 0;
  // Arrival order is enqueue_time order, so the aged items are a prefix.
  while (!bulk.keys.empty()) {
    const uint64_t key = *bulk.keys.begin();
    Entry& entry = items_.at(key);
    if (AgedAt(entry.item) > now) break;
    Erase(key, entry);
    entry.lane = kInteractiveLane;
    Insert(key, kInteractiveLane);
    ++promoted;
  }
  return promoted;
}

TimePoint BatchQueue::next_promotion() const {
  const Lane& bulk = lanes_[kBulkLane];
  return bulk.keys.empty() ? TimePoint::max() : AgedAt(items_.at(*bulk.keys.begin()).item);
}

TimePoint BatchQueue::oldest_enqueue_time() const {
  return items_.empty() ? TimePoint::max() : items_.begin()->second.item.enqueue_time;
}

TimePoint BatchQueue::next_deadline() const {
  return deadlines_.empty() ? TimePoint::max() : deadlines_.begin()->first;
}

TimePoint BatchQueue::release_time() const {
  const TimePoint oldest = oldest_enqueue_time();
  if (oldest == TimePoint::max()) return oldest;
  return AddSaturating(oldest, options_.max_queue_delay);
}

bool BatchQueue::Fits(size_t count, uint32_t length) const {
  return static_cast<uint64_t>(count) * length <= options_.max_batch_tokens;
}

BatchQueue::Plan BatchQueue::PlanBatch() const {
  Plan plan;
  if (items_.empty()) return plan;
  const size_t lane = lanes_[kInteractiveLane].keys.empty() ? kBulkLane : kInteractiveLane;
  const Lane& l = lanes_[lane];
  const size_t max_items = std::max<size_t>(1, options_.max_batch_size);
  // The most urgent item always goes, even alone over the budget.
  const uint64_t first = l.by_urgency.begin()->second;
  const Item& item = items_.at(first).item;
  plan.lane = static_cast<Priority>(lane);
  plan.keys.push_back(first);
  plan.padded_length = item.tokens;
  plan.real_tokens = item.tokens;
  bool blocked = false;  // some item of the lane was left out by the token budget
  if (options_.group_by_length) {
    PlanGrouped(l, first, max_items, &plan, &blocked);
  } else {
    PlanFifo(l, first, max_items, &plan, &blocked);
  }
  plan.full =
      plan.keys.size() >= max_items || blocked || !Fits(plan.keys.size() + 1, plan.padded_length);
  return plan;
}

void BatchQueue::PlanFifo(const Lane& lane, uint64_t first, size_t max_items, Plan* plan,
                          bool* blocked) const {
  for (auto it = lane.keys.begin(); it != lane.keys.end() && plan->keys.size() < max_items; ++it) {
    if (*it == first) continue;
    const uint32_t tokens = items_.at(*it).item.tokens;
    const uint32_t longest = std::max(plan->padded_length, tokens);
    if (!Fits(plan->keys.size() + 1, longest)) {
      *blocked = true;  // strict arrival order: stop at the first item that does not fit
      return;
    }
    plan->keys.push_back(*it);
    plan->padded_length = longest;
    plan->real_tokens += tokens;
  }
}

void BatchQueue::PlanGrouped(const Lane& lane, uint64_t first, size_t max_items, Plan* plan,
                             bool* blocked) const {
  // Two cursors walk out from the first item's bucket: `up` over its own bucket (same length,
  // no added padding; the first item itself skipped) and then longer buckets; `down` over
  // shorter buckets. Within a bucket keys ascend, i.e. oldest first.
  struct Cursor {
    Buckets::const_iterator bucket;
    std::set<uint64_t>::const_iterator key;
    bool done = false;
  };
  const Buckets& buckets = lane.buckets;
  auto settle_up = [&](Cursor& c) {
    while (!c.done) {
      if (c.key == c.bucket->second.end()) {
        if (++c.bucket == buckets.end()) {
          c.done = true;
        } else {
          c.key = c.bucket->second.begin();
        }
      } else if (*c.key == first) {
        ++c.key;
      } else {
        return;
      }
    }
  };
  auto settle_down = [&](Cursor& c) {
    while (!c.done && c.key == c.bucket->second.end()) {
      if (c.bucket == buckets.begin()) {
        c.done = true;
      } else {
        --c.bucket;
        c.key = c.bucket->second.begin();
      }
    }
  };
  const Buckets::const_iterator home = buckets.find(plan->padded_length);
  Cursor up{home, home->second.begin()};
  settle_up(up);
  Cursor down{home, {}, home == buckets.begin()};
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
    ++c.key;
    if (take_down) {
      settle_down(c);
    } else {
      settle_up(c);
    }
  }
}

bool BatchQueue::ShouldRelease(const Plan& plan, TimePoint now, bool draining, bool idle) const {
  if (plan.keys.empty()) return false;
  return plan.full || draining || (idle && options_.dispatch_when_idle) || now >= release_time();
}

Item BatchQueue::Remove(std::map<uint64_t, Entry>::iterator it) {
  const uint64_t key = it->first;
  Erase(key, it->second);
  Item item = std::move(it->second.item);
  items_.erase(it);
  tokens_ -= item.tokens;
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
  batch.priority = plan.lane;
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
    if (it->second.item.is_cancelled()) {
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
