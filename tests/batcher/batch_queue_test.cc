#include "tipperary/batcher/batch_queue.h"

#include <algorithm>
#include <chrono>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tipperary::batcher {
namespace {

using std::chrono::milliseconds;
using ::testing::ElementsAre;

const TimePoint kT0 = TimePoint() + std::chrono::hours(1);

Item MakeItem(uint64_t request, uint32_t tokens, TimePoint at = kT0) {
  Item item;
  item.request_id = request;
  item.tokens = tokens;
  item.enqueue_time = at;
  return item;
}

Item Bulk(uint64_t request, uint32_t tokens, TimePoint at = kT0) {
  Item item = MakeItem(request, tokens, at);
  item.priority = Priority::kBulk;
  return item;
}

std::vector<uint32_t> Lengths(const Batch& batch) {
  std::vector<uint32_t> out;
  for (const Item& item : batch.items) out.push_back(item.tokens);
  return out;
}

std::vector<uint64_t> Requests(const Batch& batch) {
  std::vector<uint64_t> out;
  for (const Item& item : batch.items) out.push_back(item.request_id);
  return out;
}

TEST(BatchQueueTest, GroupsByClosestLengthGreedily) {
  BatcherOptions options;
  options.max_batch_size = 3;
  BatchQueue queue(options);
  // The oldest (50) must go; 51 adds 1 padded token (50 -> 51), 48 would add 2; then
  // 52 adds 2 (two items grow by one) against 48's 3.
  for (uint32_t len : {50u, 10u, 48u, 52u, 90u, 51u}) queue.Push(MakeItem(len, len));
  BatchQueue::Plan plan = queue.PlanBatch();
  EXPECT_TRUE(plan.full);
  Batch batch = queue.Take(plan, kT0);
  EXPECT_THAT(Lengths(batch), ElementsAre(50, 52, 51));  // arrival order
  EXPECT_EQ(batch.padded_length, 52u);
  EXPECT_EQ(batch.real_tokens, 153u);
  EXPECT_EQ(batch.padded_tokens, 156u);
  EXPECT_NEAR(batch.padding_ratio(), 3.0 / 156.0, 1e-12);
  EXPECT_EQ(queue.size(), 3u);
  EXPECT_EQ(queue.tokens(), 10u + 48u + 90u);
}

TEST(BatchQueueTest, IdleReleasesAPartialBatchOnlyWithDispatchWhenIdle) {
  BatcherOptions options;
  options.max_batch_size = 4;
  options.max_queue_delay = milliseconds(2);
  for (bool dispatch_when_idle : {true, false}) {
    options.dispatch_when_idle = dispatch_when_idle;
    BatchQueue queue(options);
    queue.Push(MakeItem(1, 5));
    const BatchQueue::Plan plan = queue.PlanBatch();
    ASSERT_FALSE(plan.full);
    EXPECT_EQ(queue.ShouldRelease(plan, kT0, /*draining=*/false, /*idle=*/true),
              dispatch_when_idle);
    // Something is executing: the delay applies either way.
    EXPECT_FALSE(queue.ShouldRelease(plan, kT0, /*draining=*/false, /*idle=*/false));
    EXPECT_TRUE(queue.ShouldRelease(plan, kT0 + milliseconds(2), false, false));
  }
}

TEST(BatchQueueTest, FifoTakesArrivalOrder) {
  BatcherOptions options;
  options.max_batch_size = 3;
  options.group_by_length = false;
  BatchQueue queue(options);
  for (uint32_t len : {50u, 10u, 48u, 52u}) queue.Push(MakeItem(len, len));
  Batch batch = queue.Take(queue.PlanBatch(), kT0);
  EXPECT_THAT(Lengths(batch), ElementsAre(50, 10, 48));
}

TEST(BatchQueueTest, SameLengthIsFifo) {
  BatcherOptions options;
  options.max_batch_size = 3;
  BatchQueue queue(options);
  queue.Push(MakeItem(1, 20));
  for (uint64_t r = 2; r <= 4; ++r) queue.Push(MakeItem(r, 10));  // equal waste: older first
  Batch batch = queue.Take(queue.PlanBatch(), kT0);
  EXPECT_THAT(Requests(batch), ElementsAre(1, 2, 3));
}

TEST(BatchQueueTest, PaddedTokenBudget) {
  BatcherOptions options;
  options.max_batch_tokens = 100;
  BatchQueue queue(options);
  for (uint32_t len : {10u, 40u, 40u, 10u, 10u}) queue.Push(MakeItem(len, len));
  BatchQueue::Plan first = queue.PlanBatch();
  EXPECT_TRUE(first.full);  // 4 x 40 = 160 > 100: a left-out item makes it full
  Batch a = queue.Take(first, kT0);
  EXPECT_THAT(Lengths(a), ElementsAre(10, 10, 10));
  Batch b = queue.Take(queue.PlanBatch(), kT0);
  EXPECT_THAT(Lengths(b), ElementsAre(40, 40));
  EXPECT_LE(b.padded_tokens, 100u);
  EXPECT_TRUE(queue.empty());
}

TEST(BatchQueueTest, OversizeItemAloneAndFull) {
  BatcherOptions options;
  options.max_batch_tokens = 100;
  BatchQueue queue(options);
  queue.Push(MakeItem(1, 150));
  BatchQueue::Plan plan = queue.PlanBatch();
  EXPECT_TRUE(plan.full);  // nothing could ever join it
  EXPECT_EQ(plan.keys.size(), 1u);
  EXPECT_EQ(plan.padded_tokens(), 150u);
}

TEST(BatchQueueTest, OldestIsNeverStarved) {
  // A long item followed by an endless stream of short ones: it is in the very next batch.
  BatcherOptions options;
  options.max_batch_size = 4;
  BatchQueue queue(options);
  queue.Push(MakeItem(1, 200));
  for (int i = 0; i < 20; ++i) queue.Push(MakeItem(2, 10));
  Batch batch = queue.Take(queue.PlanBatch(), kT0);
  EXPECT_EQ(batch.items.front().request_id, 1u);
  EXPECT_EQ(batch.items.size(), 4u);
}

TEST(BatchQueueTest, ReleaseRule) {
  BatcherOptions options;
  options.max_batch_size = 4;
  options.max_queue_delay = milliseconds(2);
  BatchQueue queue(options);
  EXPECT_FALSE(queue.ShouldRelease(queue.PlanBatch(), kT0, true));  // empty never releases
  queue.Push(MakeItem(1, 10, kT0));
  queue.Push(MakeItem(2, 10, kT0 + milliseconds(1)));
  const BatchQueue::Plan plan = queue.PlanBatch();
  EXPECT_FALSE(plan.full);
  EXPECT_EQ(queue.release_time(), kT0 + milliseconds(2));  // measured from the OLDEST item
  EXPECT_FALSE(queue.ShouldRelease(plan, kT0 + milliseconds(1), false));
  EXPECT_TRUE(queue.ShouldRelease(plan, kT0 + milliseconds(1), true));  // draining
  EXPECT_TRUE(queue.ShouldRelease(plan, kT0 + milliseconds(2), false));
}

TEST(BatchQueueTest, ExpiredAndCancelled) {
  BatchQueue queue(BatcherOptions{});
  Item a = MakeItem(1, 10);
  a.deadline = kT0 + milliseconds(1);
  Item b = MakeItem(2, 10);
  b.cancelled = std::make_shared<std::atomic<bool>>(false);
  auto flag = b.cancelled;
  queue.Push(std::move(a));
  queue.Push(std::move(b));
  queue.Push(MakeItem(3, 10));
  EXPECT_EQ(queue.next_deadline(), kT0 + milliseconds(1));
  std::vector<Item> out;
  EXPECT_EQ(queue.TakeExpired(kT0, &out), 0u);
  EXPECT_EQ(queue.TakeExpired(kT0 + milliseconds(1), &out), 1u);
  EXPECT_EQ(queue.next_deadline(), TimePoint::max());
  EXPECT_EQ(queue.TakeCancelled(&out), 0u);
  flag->store(true);
  EXPECT_EQ(queue.TakeCancelled(&out), 1u);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].request_id, 1u);
  EXPECT_EQ(out[1].request_id, 2u);
  EXPECT_EQ(queue.TakeAll(&out), 1u);
  EXPECT_TRUE(queue.empty());
  EXPECT_EQ(queue.tokens(), 0u);
}

}  // namespace
}  // namespace tipperary::batcher

namespace tipperary::batcher {
namespace {

TEST(BatchQueueLanesTest, InteractiveLaneGoesFirstAndAloneThenBulk) {
  BatcherOptions options;
  options.max_batch_size = 8;
  BatchQueue queue(options);
  queue.Push(Bulk(1, 10));
  queue.Push(Bulk(2, 10));
  queue.Push(MakeItem(3, 10, kT0 + milliseconds(1)));
  EXPECT_EQ(queue.bulk_size(), 2u);
  BatchQueue::Plan plan = queue.PlanBatch();
  EXPECT_EQ(plan.lane, Priority::kInteractive);
  Batch first = queue.Take(plan, kT0 + milliseconds(1));
  // Room for more, but bulk items do not ride in an interactive batch.
  EXPECT_THAT(Requests(first), ElementsAre(3));
  EXPECT_EQ(first.priority, Priority::kInteractive);
  plan = queue.PlanBatch();
  EXPECT_EQ(plan.lane, Priority::kBulk);
  EXPECT_THAT(Requests(queue.Take(plan, kT0)), ElementsAre(1, 2));
  EXPECT_TRUE(queue.empty());
}

TEST(BatchQueueLanesTest, BulkAgesIntoTheInteractiveLane) {
  BatcherOptions options;
  options.max_batch_size = 1;
  options.priority_aging = milliseconds(1000);
  BatchQueue queue(options);
  queue.Push(Bulk(1, 10));
  queue.Push(MakeItem(2, 10, kT0 + milliseconds(500)));
  EXPECT_EQ(queue.next_promotion(), kT0 + milliseconds(1000));
  EXPECT_EQ(queue.PromoteAged(kT0 + milliseconds(999)), 0u);
  EXPECT_THAT(Requests(queue.Take(queue.PlanBatch(), kT0)), ElementsAre(2));
  queue.Push(MakeItem(3, 10, kT0 + milliseconds(600)));
  EXPECT_EQ(queue.PromoteAged(kT0 + milliseconds(1000)), 1u);
  EXPECT_EQ(queue.bulk_size(), 0u);
  EXPECT_EQ(queue.next_promotion(), TimePoint::max());
  // Aged, it is the most urgent (enqueued at T0) ahead of a newer interactive item.
  BatchQueue::Plan plan = queue.PlanBatch();
  EXPECT_EQ(plan.lane, Priority::kInteractive);
  EXPECT_THAT(Requests(queue.Take(plan, kT0)), ElementsAre(1));
  EXPECT_THAT(Requests(queue.Take(queue.PlanBatch(), kT0)), ElementsAre(3));
}

TEST(BatchQueueLanesTest, EarliestDeadlineFirstUntilAnItemHasWaitedTheAging) {
  BatcherOptions options;
  options.max_batch_size = 1;
  options.priority_aging = milliseconds(1000);
  BatchQueue queue(options);
  queue.Push(MakeItem(1, 10));  // no deadline: urgency T0 + 1 s
  Item tight = MakeItem(2, 10, kT0 + milliseconds(10));
  tight.deadline = kT0 + milliseconds(100);
  queue.Push(std::move(tight));
  Item loose = MakeItem(3, 10, kT0 + milliseconds(20));
  loose.deadline = kT0 + milliseconds(5000);  // later than request 1's aging
  queue.Push(std::move(loose));
  EXPECT_THAT(Requests(queue.Take(queue.PlanBatch(), kT0)), ElementsAre(2));
  EXPECT_THAT(Requests(queue.Take(queue.PlanBatch(), kT0)), ElementsAre(1));
  EXPECT_THAT(Requests(queue.Take(queue.PlanBatch(), kT0)), ElementsAre(3));
}

TEST(BatchQueueLanesTest, GroupingGrowsFromTheMostUrgentItem) {
  BatcherOptions options;
  options.max_batch_size = 2;
  BatchQueue queue(options);
  queue.Push(MakeItem(1, 40));
  queue.Push(MakeItem(2, 10));
  Item urgent = MakeItem(3, 10);
  urgent.deadline = kT0 + milliseconds(50);
  queue.Push(std::move(urgent));
  // Request 3 goes first; its neighbour is request 2 (same length, no padding), not the older 40.
  BatchQueue::Plan plan = queue.PlanBatch();
  EXPECT_THAT(Requests(queue.Take(plan, kT0)), ElementsAre(2, 3));
  EXPECT_THAT(Requests(queue.Take(queue.PlanBatch(), kT0)), ElementsAre(1));
}

TEST(BatchQueueLanesTest, FifoWithinTheLaneSkipsTheFirstItem) {
  BatcherOptions options;
  options.max_batch_size = 3;
  options.group_by_length = false;
  BatchQueue queue(options);
  queue.Push(Bulk(1, 10));
  queue.Push(MakeItem(2, 10));
  queue.Push(MakeItem(3, 20));
  Item urgent = MakeItem(4, 5);
  urgent.deadline = kT0 + milliseconds(50);
  queue.Push(std::move(urgent));
  BatchQueue::Plan plan = queue.PlanBatch();
  EXPECT_EQ(plan.keys.size(), 3u);
  EXPECT_EQ(plan.padded_length, 20u);
  EXPECT_THAT(Requests(queue.Take(plan, kT0)), ElementsAre(2, 3, 4));
  EXPECT_EQ(queue.bulk_size(), 1u);
}

}  // namespace
}  // namespace tipperary::batcher
