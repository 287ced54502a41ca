// Value types shared by the dynamic batcher, its queue policy and its users: the options, one
// queued sequence (Item), a formed Batch and the counters (BatcherStats). The batcher knows no
// model: an Item is an opaque payload with a token count.
//
//   Item item;
//   item.request_id = 7; item.index = 0; item.tokens = 12;
//   item.payload = std::make_shared<MyState>(...);  // the batcher never looks inside
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "tipperary/batcher/time_source.h"

namespace tipperary::batcher {

// A request's lane. Interactive work is batched first; bulk work fills the time that is left and
// can never starve: a bulk item queued for BatcherOptions::priority_aging is batched as
// interactive.
enum class Priority : uint8_t { kInteractive = 0, kBulk = 1 };
inline constexpr size_t kPriorities = 2;

struct BatcherOptions {
  // At most this many items per batch (values below 1 are treated as 1).
  size_t max_batch_size = 32;
  // At most this many PADDED tokens per batch: items × longest item. An item longer than this
  // still runs, alone.
  size_t max_batch_tokens = 16384;
  // A batch that is not full is released once its oldest item has waited this long.
  // 0 = release whatever is queued as soon as an execution slot is free.
  std::chrono::nanoseconds max_queue_delay{std::chrono::milliseconds(2)};
  // Bound on queued (not yet executing) items; Enqueue beyond it is RESOURCE_EXHAUSTED.
  size_t max_queue = 4096;
  // Fill a batch with the items whose lengths are closest to its oldest item's (less padding)
  // instead of strictly in arrival order.
  bool group_by_length = true;
  // When no batch is executing (every instance idle), release a partial batch at once instead of
  // waiting max_queue_delay: waiting then only adds latency, since nothing else competes for the
  // model, and while the batch runs the next arrivals queue up into a fuller one. While some
  // instance is busy, a free one still waits up to max_queue_delay. With one instance the delay
  // then never applies: a batch forms whenever the instance is free, from all that queued.
  // For an interactive batch only interactive batches count as busy: bulk work does not compete
  // with it (it leaves interactive_instances free), so it does not make it wait.
  bool dispatch_when_idle = true;
  // Lanes. Batches form by priority, then by earliest urgency within a lane, where an item's
  // urgency is the earlier of its deadline and enqueue_time + priority_aging. A bulk item whose
  // enqueue_time + priority_aging has passed joins the interactive lane (aging), so bulk work
  // waits at most about that long behind a steady interactive stream.
  std::chrono::nanoseconds priority_aging{std::chrono::seconds(1)};
  // Instances that only interactive batches (including aged bulk items) may take: a bulk batch
  // is formed only while more than this many instances are free. With instances >= 2 and one
  // reserved, an interactive request never waits for a bulk batch to finish. Capped at
  // instances - 1.
  size_t interactive_instances = 0;
};

// One sequence. The worker splits a request of N texts into N items and reassembles them.
struct Item {
  uint64_t request_id = 0;
  uint32_t index = 0;   // position in its request
  uint32_t tokens = 0;  // sequence length including special tokens
  Priority priority = Priority::kInteractive;
  // Set by DynamicBatcher::Enqueue (overwritten); the max_queue_delay clock starts here.
  TimePoint enqueue_time{};
  // Items still queued at their deadline are rejected with DEADLINE_EXCEEDED.
  TimePoint deadline = TimePoint::max();  // max() = none
  // Set to true by the owner when the client goes away; may be null.
  std::shared_ptr<std::atomic<bool>> cancelled;
  // Opaque to the batcher (token ids, completion state...).
  std::shared_ptr<void> payload;

  bool is_cancelled() const { return cancelled && cancelled->load(std::memory_order_acquire); }
};

struct Batch {
  std::vector<Item> items;     // in arrival order
  uint32_t padded_length = 0;  // longest item
  uint64_t real_tokens = 0;    // sum of item tokens
  uint64_t padded_tokens = 0;  // items.size() * padded_length
  TimePoint formed_time{};
  uint64_t sequence = 0;  // 1, 2, 3... in the order batches were formed
  // The lane the batch was formed from (an aged bulk item rides in an interactive batch).
  Priority priority = Priority::kInteractive;

  // Share of padded positions that are padding: 0 = none, 0.9 = 90% wasted.
  double padding_ratio() const {
    return padded_tokens == 0
               ? 0.0
               : 1.0 - static_cast<double>(real_tokens) / static_cast<double>(padded_tokens);
  }
};

// A snapshot for metrics. Gauges describe "now"; everything else is a running total.
struct BatcherStats {
  // Gauges.
  uint64_t queued_items = 0;
  uint64_t queued_tokens = 0;
  uint64_t queued_bulk_items = 0;  // of queued_items, still in the bulk lane
  uint64_t executing_batches = 0;  // formed, handed to execute and not yet returned
  // Totals.
  uint64_t enqueued_items = 0;             // accepted by Enqueue
  uint64_t refused_full_items = 0;         // Enqueue -> RESOURCE_EXHAUSTED
  uint64_t refused_unavailable_items = 0;  // Enqueue -> UNAVAILABLE (draining / stopped)
  uint64_t batches = 0;                    // handed to execute
  uint64_t bulk_batches = 0;               // of those, formed from the bulk lane
  uint64_t aged_items = 0;                 // bulk items batched as interactive after aging
  uint64_t executed_items = 0;
  uint64_t real_tokens = 0;        // over all batches
  uint64_t padded_tokens = 0;      // over all batches
  uint64_t expired_items = 0;      // rejected DEADLINE_EXCEEDED
  uint64_t cancelled_items = 0;    // rejected CANCELLED
  uint64_t unavailable_items = 0;  // rejected UNAVAILABLE (drain deadline / Stop)
};

}  // namespace tipperary::batcher
