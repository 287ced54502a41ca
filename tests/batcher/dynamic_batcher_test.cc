#include "tipperary/batcher/dynamic_batcher.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tipperary::batcher {
namespace {

using std::chrono::milliseconds;

// Hang guard only: every wait below is for an event that must happen.
constexpr absl::Duration kHangGuard = absl::Seconds(30);

std::vector<Item> MakeItems(uint64_t request, const std::vector<uint32_t>& lengths) {
  std::vector<Item> items;
  for (size_t i = 0; i < lengths.size(); ++i) {
    Item item;
    item.request_id = request;
    item.index = static_cast<uint32_t>(i);
    item.tokens = lengths[i];
    items.push_back(std::move(item));
  }
  return items;
}

// Records what the batcher hands out. Optionally holds execute() until Open().
class Recorder {
 public:
  void Execute(Batch batch) {
    {
      absl::MutexLock lock(&mu_);
      ++executing_;
    }
    if (gated_) gate_.WaitForNotification();
    absl::MutexLock lock(&mu_);
    --executing_;
    batches_.push_back(std::move(batch));
  }
  void Reject(Item item, absl::Status status) {
    absl::MutexLock lock(&mu_);
    rejected_.emplace_back(std::move(item), std::move(status));
  }

  void Gate() { gated_ = true; }
  void Open() { gate_.Notify(); }

  void AwaitBatches(size_t n) {
    AwaitTrue([&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return batches_.size() >= n; });
  }
  void AwaitRejected(size_t n) {
    AwaitTrue([&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return rejected_.size() >= n; });
  }
  void AwaitExecuting(size_t n) {
    AwaitTrue([&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return executing_ >= n; });
  }

  std::vector<Batch> batches() {
    absl::MutexLock lock(&mu_);
    return batches_;
  }
  std::vector<std::pair<Item, absl::Status>> rejected() {
    absl::MutexLock lock(&mu_);
    return rejected_;
  }

  std::function<void(Batch)> execute() {
    return [this](Batch b) { Execute(std::move(b)); };
  }
  std::function<void(Item, absl::Status)> reject() {
    return [this](Item i, absl::Status s) { Reject(std::move(i), std::move(s)); };
  }

 private:
  template <typename F>
  void AwaitTrue(F f) {
    absl::MutexLock lock(&mu_);
    ASSERT_TRUE(mu_.AwaitWithTimeout(absl::Condition(&f), kHangGuard));
  }

  std::atomic<bool> gated_{false};
  absl::Notification gate_;
  absl::Mutex mu_;
  size_t executing_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<Batch> batches_ ABSL_GUARDED_BY(mu_);
  std::vector<std::pair<Item, absl::Status>> rejected_ ABSL_GUARDED_BY(mu_);
};

// Most tests below are about the max_queue_delay rule, which an idle batcher with
// dispatch_when_idle skips; the IdleDispatch tests turn it back on.
BatcherOptions Options(size_t max_batch_size) {
  BatcherOptions options;
  options.max_batch_size = max_batch_size;
  options.max_queue_delay = milliseconds(2);
  options.dispatch_when_idle = false;
  return options;
}

BatcherOptions IdleDispatchOptions(size_t max_batch_size) {
  BatcherOptions options = Options(max_batch_size);
  options.dispatch_when_idle = true;
  return options;
}

uint64_t TotalPadded(const std::vector<Batch>& batches) {
  uint64_t total = 0;
  for (const Batch& b : batches) total += b.padded_tokens;
  return total;
}

TEST(DynamicBatcherTest, FullBatchReleasedAtOnce) {
  FakeTime time;
  const TimePoint t0 = time.Now();
  Recorder rec;
  DynamicBatcher batcher(Options(4), rec.execute(), rec.reject(), &time);
  ASSERT_TRUE(batcher.Enqueue(MakeItems(1, {5, 5, 5, 5})).ok());
  batcher.AwaitQuiescent();  // no time has passed
  auto batches = rec.batches();
  ASSERT_EQ(batches.size(), 1u);
  EXPECT_EQ(batches[0].items.size(), 4u);
  EXPECT_EQ(batches[0].formed_time, t0);
  EXPECT_EQ(batches[0].items[0].enqueue_time, t0);
  EXPECT_EQ(batches[0].sequence, 1u);
  EXPECT_EQ(batcher.queue_depth(), 0u);
}

TEST(DynamicBatcherTest, PartialBatchWaitsMaxQueueDelay) {
  FakeTime time;
  const TimePoint t0 = time.Now();
  Recorder rec;
  DynamicBatcher batcher(Options(4), rec.execute(), rec.reject(), &time);
  ASSERT_TRUE(batcher.Enqueue(MakeItems(1, {5, 5})).ok());
  batcher.AwaitQuiescent();
  EXPECT_TRUE(rec.batches().empty());
  time.Advance(milliseconds(1));
  ASSERT_TRUE(batcher.Enqueue(MakeItems(2, {5})).ok());  // the delay runs from the OLDEST item
  batcher.AwaitQuiescent();
  EXPECT_TRUE(rec.batches().empty());
  EXPECT_EQ(batcher.queue_depth(), 3u);
  time.Advance(milliseconds(1));
  batcher.AwaitQuiescent();
  auto batches = rec.batches();
  ASSERT_EQ(batches.size(), 1u);
  EXPECT_EQ(batches[0].items.size(), 3u);
  EXPECT_EQ(batches[0].formed_time, t0 + milliseconds(2));
}

TEST(DynamicBatcherTest, ZeroDelayRunsAtOnce) {
  FakeTime time;
  Recorder rec;
  BatcherOptions options = Options(8);
  options.max_queue_delay = std::chrono::nanoseconds(0);
  DynamicBatcher batcher(options, rec.execute(), rec.reject(), &time);
  ASSERT_TRUE(batcher.Enqueue(MakeItems(1, {5})).ok());
  batcher.AwaitQuiescent();
  ASSERT_EQ(rec.batches().size(), 1u);
}

TEST(DynamicBatcherTest, IdleDispatchReleasesAPartialBatchAtOnce) {
  FakeTime time;
  const TimePoint t0 = time.Now();
  Recorder rec;
  DynamicBatcher batcher(IdleDispatchOptions(4), rec.execute(), rec.reject(), &time);
  ASSERT_TRUE(batcher.Enqueue(MakeItems(1, {5})).ok());
  batcher.AwaitQuiescent();  // no time has passed
  auto batches = rec.batches();
  ASSERT_EQ(batches.size(), 1u);
  EXPECT_EQ(batches[0].items.size(), 1u);
  EXPECT_EQ(batches[0].formed_time, t0);
}

TEST(DynamicBatcherTest, IdleDispatchQueuesBehindABusyInstanceThenGoesAtOnce) {
  FakeTime time;
  const TimePoint t0 = time.Now();
  Recorder rec;
  rec.Gate();
  DynamicBatcher batcher(IdleDispatchOptions(4), rec.execute(), rec.reject(), &time);
  ASSERT_TRUE(batcher.Enqueue(MakeItems(1, {5})).ok());
  rec.AwaitExecuting(1);  // idle: the lone item went at once
  ASSERT_TRUE(batcher.Enqueue(MakeItems(2, {5, 5})).ok());
  ASSERT_TRUE(batcher.Enqueue(MakeItems(3, {5})).ok());
  time.Advance(milliseconds(5));  // past max_queue_delay, but the only instance is busy
  // (AwaitQuiescent would wait for the gated batch; nothing can form while it runs anyway.)
  EXPECT_EQ(batcher.queue_depth(), 3u);
  rec.Open();  // the instance is free again: everything queued goes as one batch
  rec.AwaitBatches(2);
  batcher.AwaitQuiescent();
  auto batches = rec.batches();
  ASSERT_EQ(batches.size(), 2u);
  EXPECT_EQ(batches[0].formed_time, t0);
  EXPECT_EQ(batches[1].items.size(), 3u);
  EXPECT_EQ(batches[1].formed_time, t0 + milliseconds(5));
}

TEST(DynamicBatcherTest, IdleDispatchWaitsMaxQueueDelayWhileAnotherInstanceIsBusy) {
  FakeTime time;
  const TimePoint t0 = time.Now();
  Recorder rec;
  rec.Gate();
  DynamicBatcher batcher(IdleDispatchOptions(2), rec.execute(), rec.reject(), &time,
                         /*instances=*/2);
  ASSERT_TRUE(batcher.Enqueue(MakeItems(1, {5})).ok());
  rec.AwaitExecuting(1);  // idle: at once, on the first instance
  ASSERT_TRUE(batcher.Enqueue(MakeItems(2, {5})).ok());
  // The second instance is free, but the batcher is not idle: the partial batch waits for
  // max_queue_delay, so it is formed at t0 + 2 ms, not t0 (checked below).
  time.Advance(milliseconds(2));
  rec.AwaitExecuting(2);
  EXPECT_EQ(batcher.queue_depth(), 0u);
  rec.Open();
  rec.AwaitBatches(2);
  batcher.AwaitQuiescent();
  auto batches = rec.batches();
  ASSERT_EQ(batches.size(), 2u);
  std::vector<TimePoint> formed = {batches[0].formed_time, batches[1].formed_time};
  std::sort(formed.begin(), formed.end());
  EXPECT_EQ(formed[0], t0);
  EXPECT_EQ(formed[1], t0 + milliseconds(2));
}

TEST(DynamicBatcherTest, TokenBudgetCountsPaddedTokens) {
  FakeTime time;
  Recorder rec;
  BatcherOptions options = Options(32);
  options.max_batch_tokens = 100;
  DynamicBatcher batcher(options, rec.execute(), rec.reject(), &time);
  ASSERT_TRUE(batcher.Enqueue(MakeItems(1, std::vector<uint32_t>(10, 30))).ok());
  batcher.AwaitQuiescent();
  auto batches = rec.batches();
  ASSERT_EQ(batches.size(), 3u);  // 3 x 30 = 90 fits, 4 x 30 = 120 does not
  for (const Batch& b : batches) {
    EXPECT_EQ(b.items.size(), 3u);
    EXPECT_EQ(b.padded_tokens, 90u);
  }
  time.Advance(milliseconds(2));  // the last one waits for company, then goes
  batcher.AwaitQuiescent();
  batches = rec.batches();
  ASSERT_EQ(batches.size(), 4u);
  EXPECT_EQ(batches[3].items.size(), 1u);

  // Mixed lengths: padding counts, not the sum of lengths (10 + 40 + 40 = 90 but pads to 120).
  ASSERT_TRUE(batcher.Enqueue(MakeItems(2, {10, 40, 40})).ok());
  time.Advance(milliseconds(2));
  batcher.AwaitQuiescent();
  batches = rec.batches();
  ASSERT_EQ(batches.size(), 6u);
  for (const Batch& b : batches) EXPECT_LE(b.padded_tokens, 100u);
}

TEST(DynamicBatcherTest, GroupingByLengthLowersPadding) {
  // Short and long sequences interleaved: FIFO pads every short one to the long length.
  const std::vector<uint32_t> mix = {8,  120, 9, 100, 10, 128, 12, 110,
                                     11, 127, 9, 105, 8,  125, 10, 115};
  auto run = [&](bool group) {
    FakeTime time;
    Recorder rec;
    BatcherOptions options = Options(8);
    options.group_by_length = group;
    DynamicBatcher batcher(options, rec.execute(), rec.reject(), &time);
    EXPECT_TRUE(batcher.Enqueue(MakeItems(1, mix)).ok());
    batcher.AwaitQuiescent();
    return rec.batches();
  };
  const std::vector<Batch> grouped = run(true);
  const std::vector<Batch> fifo = run(false);
  ASSERT_EQ(grouped.size(), 2u);
  ASSERT_EQ(fifo.size(), 2u);
  for (const Batch& b : fifo) EXPECT_GT(b.padding_ratio(), 0.4);
  for (const Batch& b : grouped) EXPECT_LT(b.padding_ratio(), 0.25);
  EXPECT_EQ(grouped[0].padded_length, 12u);  // all the short ones together
  EXPECT_EQ(grouped[1].padded_length, 128u);
  // Same 1007 real tokens: 8 x 12 + 8 x 128 = 1120 padded against 8 x 128 + 8 x 127 = 2040.
  EXPECT_EQ(TotalPadded(grouped), 1120u);
  EXPECT_EQ(TotalPadded(fifo), 2040u);
}

TEST(DynamicBatcherTest, OldestItemAlwaysIncluded) {
  FakeTime time;
  Recorder rec;
  DynamicBatcher batcher(Options(4), rec.execute(), rec.reject(), &time);
  ASSERT_TRUE(batcher.Enqueue(MakeItems(1, {200})).ok());
  ASSERT_TRUE(batcher.Enqueue(MakeItems(2, std::vector<uint32_t>(11, 10))).ok());
  batcher.AwaitQuiescent();
  auto batches = rec.batches();
  ASSERT_EQ(batches.size(), 3u);  // [200,10,10,10] [10 x4] [10 x4]
  EXPECT_EQ(batches[0].items[0].request_id, 1u);
  EXPECT_EQ(batches[0].items.size(), 4u);
}

TEST(DynamicBatcherTest, OversizeItemRunsAlone) {
  FakeTime time;
  Recorder rec;
  BatcherOptions options = Options(8);
  options.max_batch_tokens = 100;
  DynamicBatcher batcher(options, rec.execute(), rec.reject(), &time);
  ASSERT_TRUE(batcher.Enqueue(MakeItems(1, {150, 10, 10})).ok());
  batcher.AwaitQuiescent();
  auto batches = rec.batches();
  ASSERT_EQ(batches.size(), 1u);  // at once: nothing could ever join it
  ASSERT_EQ(batches[0].items.size(), 1u);
  EXPECT_EQ(batches[0].padded_tokens, 150u);
  time.Advance(milliseconds(2));
  batcher.AwaitQuiescent();
  batches = rec.batches();
  ASSERT_EQ(batches.size(), 2u);
  EXPECT_EQ(batches[1].items.size(), 2u);
}

TEST(DynamicBatcherTest, QueueFullIsAllOrNothing) {
  FakeTime time;
  Recorder rec;
  BatcherOptions options = Options(32);
  options.max_queue = 10;
  DynamicBatcher batcher(options, rec.execute(), rec.reject(), &time);
  ASSERT_TRUE(batcher.Enqueue(MakeItems(1, std::vector<uint32_t>(6, 5))).ok());
  absl::Status full = batcher.Enqueue(MakeItems(2, std::vector<uint32_t>(5, 5)));
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted) << full;
  EXPECT_EQ(batcher.queue_depth(), 6u);  // none of request 2 went in
  ASSERT_TRUE(batcher.Enqueue(MakeItems(3, std::vector<uint32_t>(4, 5))).ok());
  EXPECT_EQ(batcher.queue_depth(), 10u);
  EXPECT_EQ(batcher.stats().refused_full_items, 5u);
  time.Advance(milliseconds(2));
  batcher.AwaitQuiescent();
  auto batches = rec.batches();
  ASSERT_EQ(batches.size(), 1u);
  for (const Item& item : batches[0].items) EXPECT_NE(item.request_id, 2u);
  EXPECT_TRUE(rec.rejected().empty());
}

TEST(DynamicBatcherTest, DeadlineExpiryInQueueRejects) {
  FakeTime time;
  Recorder rec;
  DynamicBatcher batcher(Options(8), rec.execute(), rec.reject(), &time);
  std::vector<Item> items = MakeItems(1, {5, 5});
  items[0].deadline = time.Now() + milliseconds(1);
  ASSERT_TRUE(batcher.Enqueue(std::move(items)).ok());
  time.Advance(milliseconds(1));
  batcher.AwaitQuiescent();
  auto rejected = rec.rejected();
  ASSERT_EQ(rejected.size(), 1u);
  EXPECT_EQ(rejected[0].first.index, 0u);
  EXPECT_EQ(rejected[0].second.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(rec.batches().empty());
  time.Advance(milliseconds(1));
  batcher.AwaitQuiescent();
  auto batches = rec.batches();
  ASSERT_EQ(batches.size(), 1u);
  ASSERT_EQ(batches[0].items.size(), 1u);
  EXPECT_EQ(batches[0].items[0].index, 1u);
  EXPECT_EQ(batcher.stats().expired_items, 1u);
}

TEST(DynamicBatcherTest, CancelledItemsDroppedWithCancelled) {
  FakeTime time;
  Recorder rec;
  DynamicBatcher batcher(Options(8), rec.execute(), rec.reject(), &time);
  auto flag = std::make_shared<std::atomic<bool>>(true);
  auto late_flag = std::make_shared<std::atomic<bool>>(false);
  std::vector<Item> items = MakeItems(1, std::vector<uint32_t>(8, 5));
  items[3].cancelled = flag;
  items[5].cancelled = late_flag;
  ASSERT_TRUE(batcher.Enqueue(std::move(items)).ok());
  // A full batch was planned; the cancelled item is removed first and 7 wait for company.
  batcher.AwaitQuiescent();
  EXPECT_TRUE(rec.batches().empty());
  late_flag->store(true);  // the client goes away while queued
  time.Advance(milliseconds(2));
  batcher.AwaitQuiescent();
  auto rejected = rec.rejected();
  ASSERT_EQ(rejected.size(), 2u);
  for (const auto& [item, status] : rejected) {
    EXPECT_EQ(status.code(), absl::StatusCode::kCancelled);
    EXPECT_TRUE(item.index == 3 || item.index == 5);
  }
  auto batches = rec.batches();
  ASSERT_EQ(batches.size(), 1u);
  EXPECT_EQ(batches[0].items.size(), 6u);
  EXPECT_EQ(batcher.stats().cancelled_items, 2u);
}

TEST(DynamicBatcherTest, RequestSplitAcrossBatchesRunsEachItemOnce) {
  FakeTime time;
  Recorder rec;
  DynamicBatcher batcher(Options(8), rec.execute(), rec.reject(), &time);
  std::vector<uint32_t> lengths(30);
  for (size_t i = 0; i < lengths.size(); ++i) lengths[i] = 3 + static_cast<uint32_t>(i % 7);
  ASSERT_TRUE(batcher.Enqueue(MakeItems(42, lengths)).ok());
  batcher.AwaitQuiescent();
  EXPECT_EQ(rec.batches().size(), 3u);
  time.Advance(milliseconds(2));
  batcher.AwaitQuiescent();
  auto batches = rec.batches();
  ASSERT_EQ(batches.size(), 4u);
  std::multiset<uint32_t> seen;
  for (const Batch& b : batches) {
    EXPECT_LE(b.items.size(), 8u);
    for (const Item& item : b.items) {
      EXPECT_EQ(item.request_id, 42u);
      EXPECT_EQ(item.tokens, lengths[item.index]);
      seen.insert(item.index);
    }
  }
  ASSERT_EQ(seen.size(), 30u);
  for (uint32_t i = 0; i < 30; ++i) EXPECT_EQ(seen.count(i), 1u) << i;
  const BatcherStats stats = batcher.stats();
  EXPECT_EQ(stats.batches, 4u);
  EXPECT_EQ(stats.executed_items, 30u);
  EXPECT_EQ(stats.enqueued_items, 30u);
}

// A config reload: the next batches follow the new policy; what is queued stays queued.
TEST(DynamicBatcherTest, SetOptionsAppliesToTheNextBatches) {
  FakeTime time;
  Recorder rec;
  DynamicBatcher batcher(Options(8), rec.execute(), rec.reject(), &time);
  ASSERT_TRUE(batcher.Enqueue(MakeItems(1, {5, 5, 5})).ok());
  batcher.AwaitQuiescent();
  EXPECT_TRUE(rec.batches().empty());  // a partial batch waits max_queue_delay
  BatcherOptions smaller = Options(2);
  smaller.max_queue_delay = std::chrono::seconds(10);
  smaller.max_queue = 4;
  batcher.SetOptions(smaller);
  batcher.AwaitQuiescent();
  auto batches = rec.batches();  // full at 2 items: released at once, without time passing
  ASSERT_EQ(batches.size(), 1u);
  EXPECT_EQ(batches[0].items.size(), 2u);
  EXPECT_EQ(batcher.queue_depth(), 1u);
  EXPECT_EQ(batcher.options().max_batch_size, 2u);
  // The new max_queue counts for new items.
  EXPECT_EQ(batcher.Enqueue(MakeItems(2, {5, 5, 5, 5})).code(),
            absl::StatusCode::kResourceExhausted);
  ASSERT_TRUE(batcher.Enqueue(MakeItems(3, {5})).ok());  // full again: released
  batcher.AwaitQuiescent();
  EXPECT_EQ(rec.batches().size(), 2u);
  EXPECT_EQ(batcher.queue_depth(), 0u);
  // A shorter delay wakes the scheduler for what is queued now.
  ASSERT_TRUE(batcher.Enqueue(MakeItems(4, {5})).ok());
  batcher.AwaitQuiescent();
  EXPECT_EQ(rec.batches().size(), 2u);
  BatcherOptions at_once = smaller;
  at_once.max_queue_delay = std::chrono::nanoseconds(0);
  batcher.SetOptions(at_once);
  batcher.AwaitQuiescent();
  EXPECT_EQ(rec.batches().size(), 3u);
  EXPECT_TRUE(rec.rejected().empty());
}

TEST(DynamicBatcherTest, DrainRunsQueuedWorkThenRefuses) {
  FakeTime time;
  Recorder rec;
  DynamicBatcher batcher(Options(8), rec.execute(), rec.reject(), &time);
  ASSERT_TRUE(batcher.Enqueue(MakeItems(1, {5, 5, 5})).ok());
  batcher.Drain(time.Now() + std::chrono::seconds(1));  // no need to wait for the delay
  auto batches = rec.batches();
  ASSERT_EQ(batches.size(), 1u);
  EXPECT_EQ(batches[0].items.size(), 3u);
  EXPECT_EQ(batcher.Enqueue(MakeItems(2, {5})).code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(rec.rejected().empty());
  EXPECT_EQ(batcher.stats().refused_unavailable_items, 1u);
}

TEST(DynamicBatcherTest, DrainDeadlineRejectsLeftoversUnavailable) {
  FakeTime time;
  const TimePoint t0 = time.Now();
  Recorder rec;
  rec.Gate();
  DynamicBatcher batcher(Options(2), rec.execute(), rec.reject(), &time);
  ASSERT_TRUE(batcher.Enqueue(MakeItems(1, {5, 5, 5, 5, 5, 5})).ok());
  rec.AwaitExecuting(1);  // the first batch of 2 holds the only instance
  std::thread drainer([&] { batcher.Drain(t0 + milliseconds(10)); });
  time.Advance(milliseconds(10));
  rec.AwaitRejected(4);  // Drain has begun and its deadline passed
  rec.Open();
  drainer.join();
  EXPECT_EQ(rec.batches().size(), 1u);
  auto rejected = rec.rejected();
  ASSERT_EQ(rejected.size(), 4u);
  for (const auto& r : rejected) EXPECT_EQ(r.second.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(batcher.stats().unavailable_items, 4u);
  EXPECT_EQ(batcher.queue_depth(), 0u);
}

TEST(DynamicBatcherTest, StopIsClean) {
  FakeTime time;
  Recorder rec;
  {
    DynamicBatcher batcher(Options(8), rec.execute(), rec.reject(), &time);
    ASSERT_TRUE(batcher.Enqueue(MakeItems(1, {5, 5, 5})).ok());
    batcher.Stop();
    batcher.Stop();  // idempotent
    EXPECT_EQ(batcher.Enqueue(MakeItems(2, {5})).code(), absl::StatusCode::kUnavailable);
  }  // the destructor stops again
  EXPECT_TRUE(rec.batches().empty());
  auto rejected = rec.rejected();
  ASSERT_EQ(rejected.size(), 3u);
  for (const auto& r : rejected) EXPECT_EQ(r.second.code(), absl::StatusCode::kUnavailable);
}

TEST(DynamicBatcherTest, StopWaitsForExecutingBatch) {
  FakeTime time;
  Recorder rec;
  rec.Gate();
  auto batcher = std::make_unique<DynamicBatcher>(Options(2), rec.execute(), rec.reject(), &time);
  ASSERT_TRUE(batcher->Enqueue(MakeItems(1, {5, 5, 5})).ok());
  rec.AwaitExecuting(1);
  std::thread stopper([&] { batcher->Stop(); });
  rec.AwaitRejected(1);  // the queued item is refused at once...
  rec.Open();            // ...and the executing batch finishes
  stopper.join();
  batcher.reset();
  EXPECT_EQ(rec.batches().size(), 1u);
  EXPECT_EQ(rec.rejected().size(), 1u);
}

TEST(DynamicBatcherTest, InstancesExecuteConcurrently) {
  FakeTime time;
  Recorder rec;
  rec.Gate();
  DynamicBatcher batcher(Options(2), rec.execute(), rec.reject(), &time, /*instances=*/2);
  ASSERT_TRUE(batcher.Enqueue(MakeItems(1, {5, 5, 5, 5, 5, 5})).ok());
  rec.AwaitExecuting(2);  // two batches at the same time
  EXPECT_EQ(batcher.stats().executing_batches, 2u);
  EXPECT_EQ(batcher.queue_depth(), 2u);  // the third waits for a free instance
  rec.Open();
  rec.AwaitBatches(3);
  batcher.AwaitQuiescent();
  EXPECT_EQ(batcher.stats().batches, 3u);
}

std::vector<Item> BulkItems(uint64_t request, const std::vector<uint32_t>& lengths) {
  std::vector<Item> items = MakeItems(request, lengths);
  for (Item& item : items) item.priority = Priority::kBulk;
  return items;
}

TEST(DynamicBatcherTest, InteractiveInstanceIsKeptFromBulkBatches) {
  FakeTime time;
  Recorder rec;
  rec.Gate();
  BatcherOptions options = Options(1);
  options.interactive_instances = 1;
  DynamicBatcher batcher(options, rec.execute(), rec.reject(), &time, /*instances=*/2);
  ASSERT_TRUE(batcher.Enqueue(BulkItems(1, {5, 5})).ok());
  time.Advance(milliseconds(2));
  rec.AwaitExecuting(1);
  // The second instance is free but kept: the other bulk item waits...
  ASSERT_TRUE(batcher.Enqueue(MakeItems(2, {5})).ok());
  time.Advance(milliseconds(2));
  // ...and the interactive request runs on it at once, beside the bulk batch.
  rec.AwaitExecuting(2);
  BatcherStats stats = batcher.stats();
  EXPECT_EQ(stats.executing_batches, 2u);
  EXPECT_EQ(stats.queued_items, 1u);
  EXPECT_EQ(stats.queued_bulk_items, 1u);
  rec.Open();
  rec.AwaitBatches(3);
  batcher.AwaitQuiescent();
  stats = batcher.stats();
  EXPECT_EQ(stats.bulk_batches, 2u);
  EXPECT_EQ(stats.aged_items, 0u);
}

TEST(DynamicBatcherTest, ABulkBatchExecutingDoesNotMakeAnInteractiveOneWait) {
  // dispatch_when_idle: only interactive batches count as busy for an interactive batch, so on
  // the kept instance it goes at once instead of after max_queue_delay.
  FakeTime time;
  const TimePoint t0 = time.Now();
  Recorder rec;
  rec.Gate();
  BatcherOptions options = IdleDispatchOptions(4);
  options.interactive_instances = 1;
  DynamicBatcher batcher(options, rec.execute(), rec.reject(), &time, /*instances=*/2);
  ASSERT_TRUE(batcher.Enqueue(BulkItems(1, {5, 5})).ok());
  rec.AwaitExecuting(1);  // idle: the bulk batch at once
  ASSERT_TRUE(batcher.Enqueue(MakeItems(2, {5})).ok());
  rec.AwaitExecuting(2);  // with no time advanced
  rec.Open();
  rec.AwaitBatches(2);
  batcher.AwaitQuiescent();
  for (const Batch& b : rec.batches()) EXPECT_EQ(b.formed_time, t0);
}

TEST(DynamicBatcherTest, AgedBulkItemsMayTakeTheInteractiveInstance) {
  FakeTime time;
  const TimePoint t0 = time.Now();
  Recorder rec;
  rec.Gate();
  BatcherOptions options = Options(1);
  options.interactive_instances = 1;
  options.priority_aging = milliseconds(100);
  DynamicBatcher batcher(options, rec.execute(), rec.reject(), &time, /*instances=*/2);
  ASSERT_TRUE(batcher.Enqueue(BulkItems(1, {5, 5, 5})).ok());
  time.Advance(milliseconds(2));
  rec.AwaitExecuting(1);
  time.Advance(milliseconds(98));  // the rest have waited priority_aging: no longer held back
  rec.AwaitExecuting(2);
  EXPECT_EQ(batcher.queue_depth(), 1u);
  rec.Open();
  rec.AwaitBatches(3);
  batcher.AwaitQuiescent();
  const BatcherStats stats = batcher.stats();
  EXPECT_EQ(stats.bulk_batches, 1u);
  EXPECT_EQ(stats.aged_items, 2u);
  std::vector<TimePoint> formed;
  for (const Batch& b : rec.batches()) formed.push_back(b.formed_time);
  std::sort(formed.begin(), formed.end());
  EXPECT_EQ(formed[1], t0 + milliseconds(100));
}

TEST(DynamicBatcherTest, ConcurrentProducersRealTime) {
  constexpr int kProducers = 6;
  constexpr int kRequestsPerProducer = 300;
  BatcherOptions options;
  options.max_batch_size = 16;
  options.max_batch_tokens = 1024;
  options.max_queue_delay = std::chrono::microseconds(100);
  options.max_queue = 200;  // small enough that some requests bounce

  absl::Mutex mu;
  std::map<std::pair<uint64_t, uint32_t>, int> outcome;  // executed or rejected, each once
  uint64_t executed = 0, rejected = 0;
  bool budget_ok = true;
  DynamicBatcher batcher(
      options,
      [&](Batch batch) {
        absl::MutexLock lock(&mu);
        if (batch.items.size() > 16 || (batch.items.size() > 1 && batch.padded_tokens > 1024)) {
          budget_ok = false;
        }
        for (const Item& item : batch.items) ++outcome[{item.request_id, item.index}];
        executed += batch.items.size();
      },
      [&](Item item, absl::Status) {
        absl::MutexLock lock(&mu);
        ++outcome[{item.request_id, item.index}];
        ++rejected;
      },
      RealTime(), /*instances=*/3);

  std::atomic<uint64_t> produced{0}, refused{0};
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      std::mt19937 rng(1234 + p);
      for (int r = 0; r < kRequestsPerProducer; ++r) {
        const uint64_t id = static_cast<uint64_t>(p) * 1000000 + r;
        std::vector<uint32_t> lengths(1 + rng() % 6);
        for (uint32_t& len : lengths) len = 1 + rng() % 300;
        std::vector<Item> items = MakeItems(id, lengths);
        auto flag = std::make_shared<std::atomic<bool>>(false);
        for (Item& item : items) {
          item.cancelled = flag;
          if (rng() % 10 == 0)
            item.deadline = Clock::now() + std::chrono::microseconds(rng() % 200);
          item.payload = std::make_shared<int>(static_cast<int>(item.index));
        }
        produced += items.size();
        const size_t n = items.size();
        if (!batcher.Enqueue(std::move(items)).ok()) {
          refused += n;
          std::this_thread::yield();
        } else if (rng() % 10 == 0) {
          flag->store(true);
        }
      }
    });
  }
  for (std::thread& t : producers) t.join();
  batcher.Drain(Clock::now() + std::chrono::seconds(20));

  absl::MutexLock lock(&mu);
  EXPECT_TRUE(budget_ok);
  EXPECT_EQ(executed + rejected + refused.load(), produced.load());
  for (const auto& [key, count] : outcome) ASSERT_EQ(count, 1);
  EXPECT_EQ(outcome.size(), executed + rejected);
  const BatcherStats stats = batcher.stats();
  EXPECT_EQ(stats.executed_items, executed);
  EXPECT_EQ(stats.expired_items + stats.cancelled_items + stats.unavailable_items, rejected);
  EXPECT_EQ(stats.refused_full_items, refused.load());
  EXPECT_EQ(stats.queued_items, 0u);
}

}  // namespace
}  // namespace tipperary::batcher
