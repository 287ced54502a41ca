// EmbedQueue: the embedding cache in front of the real dynamic batcher and in-flight
// deduplication beside it, with a deterministic fake encoder (the real model's tests are in
// worker_test.cc) and hand-driven time.
#include "embed_queue.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "tipperary/batcher/time_source.h"
#include "tipperary/metrics/counter.h"

namespace tipperary::worker {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr int kDim = 4;
constexpr absl::Duration kHangGuard = absl::Seconds(30);  // Every wait is for a sure event.

using Ids = std::vector<int32_t>;

// The vector a model with `salt` gives `ids`: different for any other ids or salt.
std::vector<float> VectorOf(const Ids& ids, float salt = 0.0f) {
  std::vector<float> v(kDim);
  for (int d = 0; d < kDim; ++d) {
    float x = salt + static_cast<float>(d) * 0.25f;
    for (int32_t id : ids) x = x * 1.0009765625f + static_cast<float>(id) * 0.001f;
    v[d] = x;
  }
  return v;
}

bool SameBits(const float* a, const std::vector<float>& b) {
  return std::memcmp(a, b.data(), sizeof(float) * b.size()) == 0;
}

// A fake model: rows by VectorOf, counting what it computes; it can fail, or hold a batch until
// released.
class FakeEncoder {
 public:
  explicit FakeEncoder(float salt = 0.0f) : salt_(salt) {}

  EmbedQueue::Encode AsEncode() {
    return [this](const batcher::Batch&, const std::vector<Ids>& ids, std::vector<float>* out,
                  std::chrono::nanoseconds* compute) {
      {
        absl::MutexLock lock(&mu_);
        ++running_;
      }
      if (gate_ != nullptr) gate_->WaitForNotificationWithTimeout(kHangGuard);
      absl::MutexLock lock(&mu_);
      --running_;
      *compute = compute_;
      if (!fail_.ok()) return fail_;
      for (const Ids& row : ids) {
        std::vector<float> v = VectorOf(row, salt_);
        out->insert(out->end(), v.begin(), v.end());
        computed_.push_back(row);
      }
      return absl::OkStatus();
    };
  }

  void Fail(absl::Status status) {
    absl::MutexLock lock(&mu_);
    fail_ = std::move(status);
  }
  void Hold() { gate_ = std::make_unique<absl::Notification>(); }
  // The compute time the batches report (10 us unless set).
  void ReportCompute(std::chrono::nanoseconds compute) {
    absl::MutexLock lock(&mu_);
    compute_ = compute;
  }
  void Release() { gate_->Notify(); }
  void AwaitRunning(int n) {
    absl::MutexLock lock(&mu_);
    auto running = [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return running_ >= n; };
    ASSERT_TRUE(mu_.AwaitWithTimeout(absl::Condition(&running), kHangGuard));
  }
  std::vector<Ids> computed() {
    absl::MutexLock lock(&mu_);
    return computed_;
  }
  size_t rows() { return computed().size(); }

 private:
  const float salt_;
  std::unique_ptr<absl::Notification> gate_;
  absl::Mutex mu_;
  absl::Status fail_ ABSL_GUARDED_BY(mu_);
  int running_ ABSL_GUARDED_BY(mu_) = 0;
  std::chrono::nanoseconds compute_ ABSL_GUARDED_BY(mu_) = std::chrono::microseconds(10);
  std::vector<Ids> computed_ ABSL_GUARDED_BY(mu_);
};

// A submitted task and what its `done` saw.
struct Call {
  std::shared_ptr<std::atomic<bool>> cancelled = std::make_shared<std::atomic<bool>>(false);
  std::shared_ptr<EmbedTask> task;
  absl::Notification done;
  absl::Status status;
  std::vector<std::vector<float>> vectors;
  std::thread::id done_thread;

  explicit Call(std::vector<Ids> texts) {
    std::vector<bool> truncated(texts.size(), false);
    task = std::make_shared<EmbedTask>(std::move(texts), std::move(truncated), cancelled,
                                       [this](EmbedTask& t) {
                                         status = t.status();
                                         for (size_t i = 0; i < t.size(); ++i) {
                                           vectors.emplace_back(t.vector(i), t.vector(i) + kDim);
                                         }
                                         done_thread = std::this_thread::get_id();
                                         done.Notify();
                                       });
  }
  bool Wait() { return done.WaitForNotificationWithTimeout(kHangGuard); }
  bool Finished() const { return done.HasBeenNotified(); }
};

class EmbedQueueTest : public ::testing::Test {
 protected:
  // A partial batch waits for time to move (no idle dispatch) unless `eager`.
  std::unique_ptr<EmbedQueue> MakeQueue(FakeEncoder& encoder, bool eager = false,
                                        uint64_t cache_bytes = 0, bool dedup = true) {
    EmbedQueue::Options options;
    options.batching.max_batch_size = 64;
    options.batching.max_queue_delay = seconds(1);
    options.batching.dispatch_when_idle = eager;
    options.batching.max_queue = max_queue_;
    options.dim = kDim;
    options.dedup = dedup;
    if (cache_bytes > 0 && cache_ == nullptr) {
      cache_ = std::make_shared<EmbeddingCache>(
          EmbeddingCache::Options{.max_bytes = cache_bytes, .shards = 4, .hash = hash_});
    }
    options.cache = cache_;
    options.metrics = {&hits_, &misses_, &joins_};
    options.hash = hash_;
    options.time = &time_;
    return std::make_unique<EmbedQueue>(std::move(options), encoder.AsEncode());
  }

  // Moves time past max_queue_delay and lets the batcher act on it.
  void Tick(EmbedQueue& queue, std::chrono::nanoseconds by = seconds(1)) {
    queue.AwaitQuiescent();
    time_.Advance(std::chrono::duration_cast<batcher::Duration>(by));
    queue.AwaitQuiescent();
  }

  batcher::FakeTime time_;
  size_t max_queue_ = 4096;
  EmbeddingCache::HashFunction hash_;
  std::shared_ptr<EmbeddingCache> cache_;
  metrics::Counter hits_, misses_, joins_;
};

TEST_F(EmbedQueueTest, CacheHitIsBitIdenticalToAFreshComputation) {
  FakeEncoder encoder;
  auto queue = MakeQueue(encoder, /*eager=*/true, /*cache_bytes=*/1 << 20);
  Ids a = {101, 7, 8, 102}, b = {101, 9, 102};
  Call first({a});
  ASSERT_TRUE(queue->Submit(first.task, batcher::TimePoint::max()).ok());
  ASSERT_TRUE(first.Wait());
  Call second({b, a});  // a from the cache, b computed.
  ASSERT_TRUE(queue->Submit(second.task, batcher::TimePoint::max()).ok());
  ASSERT_TRUE(second.Wait());
  Call third({a});  // All from the cache.
  ASSERT_TRUE(queue->Submit(third.task, batcher::TimePoint::max()).ok());
  ASSERT_TRUE(third.Wait());
  EXPECT_THAT(encoder.computed(), ::testing::ElementsAre(a, b));
  for (const Call* call : {&first, &third}) {
    ASSERT_TRUE(call->status.ok()) << call->status;
    EXPECT_TRUE(SameBits(call->vectors[0].data(), VectorOf(a)));
  }
  EXPECT_TRUE(second.status.ok());
  EXPECT_TRUE(SameBits(second.vectors[0].data(), VectorOf(b)));
  EXPECT_TRUE(SameBits(second.vectors[1].data(), VectorOf(a)));
  EXPECT_EQ(hits_.Value(), 2);
  EXPECT_EQ(misses_.Value(), 2);
  EXPECT_EQ(third.task->batches(), 0);  // Never went near the model.
}

TEST_F(EmbedQueueTest, TaskAnsweredByTheCacheAloneFinishesOffTheSubmittingThread) {
  // The streaming reactors call Submit holding the lock their `done` takes.
  FakeEncoder encoder;
  auto queue = MakeQueue(encoder, /*eager=*/true, /*cache_bytes=*/1 << 20);
  Call warm({Ids{1, 2}, Ids{3, 4}});
  ASSERT_TRUE(queue->Submit(warm.task, batcher::TimePoint::max()).ok());
  ASSERT_TRUE(warm.Wait());
  absl::Mutex reactor_mu;
  Call call({Ids{3, 4}, Ids{1, 2}});
  {
    absl::MutexLock lock(&reactor_mu);
    ASSERT_TRUE(queue->Submit(call.task, batcher::TimePoint::max()).ok());
  }
  ASSERT_TRUE(call.Wait());
  // Not inside Submit, under our lock (a reactor's `done` would deadlock there).
  EXPECT_NE(call.done_thread, std::this_thread::get_id());
  EXPECT_TRUE(SameBits(call.vectors[0].data(), VectorOf({3, 4})));
  EXPECT_TRUE(SameBits(call.vectors[1].data(), VectorOf({1, 2})));
}

TEST_F(EmbedQueueTest, CollidingHashesNeverConfuseInputs) {
  hash_ = [](uint64_t, std::span<const int32_t>) { return uint64_t{7}; };
  FakeEncoder encoder;
  auto queue = MakeQueue(encoder, /*eager=*/false, /*cache_bytes=*/1 << 20);
  std::vector<Ids> texts;
  for (int32_t k = 0; k < 20; ++k) texts.push_back({101, k, 102});
  texts.push_back({101, 102});
  texts.push_back({101, 0, 0, 102});
  Call one(texts);
  std::vector<Ids> reversed(texts.rbegin(), texts.rend());
  Call two(reversed);  // Every text joins its twin in `one`, none another.
  ASSERT_TRUE(queue->Submit(one.task, batcher::TimePoint::max()).ok());
  ASSERT_TRUE(queue->Submit(two.task, batcher::TimePoint::max()).ok());
  EXPECT_EQ(queue->queue_depth(), texts.size());
  EXPECT_EQ(joins_.Value(), static_cast<double>(texts.size()));
  Tick(*queue);
  ASSERT_TRUE(one.Wait());
  ASSERT_TRUE(two.Wait());
  Call three(texts);  // And every one from the cache, each its own.
  ASSERT_TRUE(queue->Submit(three.task, batcher::TimePoint::max()).ok());
  ASSERT_TRUE(three.Wait());
  EXPECT_EQ(hits_.Value(), static_cast<double>(texts.size()));
  EXPECT_EQ(encoder.rows(), texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    EXPECT_TRUE(SameBits(one.vectors[i].data(), VectorOf(texts[i]))) << i;
    EXPECT_TRUE(SameBits(two.vectors[i].data(), VectorOf(reversed[i]))) << i;
    EXPECT_TRUE(SameBits(three.vectors[i].data(), VectorOf(texts[i]))) << i;
  }
}

TEST_F(EmbedQueueTest, IdenticalQueuedTextsAreComputedOnceAndFannedOut) {
  FakeEncoder encoder;
  auto queue = MakeQueue(encoder);
  Ids a = {101, 1, 102}, b = {101, 2, 102};
  Call one({a});
  Call two({a, b, a});  // Joins one's a, twice.
  Call three({b});      // Joins two's b.
  for (Call* call : {&one, &two, &three}) {
    ASSERT_TRUE(queue->Submit(call->task, batcher::TimePoint::max()).ok());
  }
  EXPECT_EQ(queue->queue_depth(), 2u);  // The batcher holds one computation per distinct text.
  EXPECT_EQ(queue->in_flight(), 2u);
  EXPECT_EQ(joins_.Value(), 3);
  Tick(*queue);
  for (Call* call : {&one, &two, &three}) {
    ASSERT_TRUE(call->Wait());
    ASSERT_TRUE(call->status.ok()) << call->status;
  }
  EXPECT_THAT(encoder.computed(), ::testing::UnorderedElementsAre(a, b));
  EXPECT_TRUE(SameBits(one.vectors[0].data(), VectorOf(a)));
  EXPECT_TRUE(SameBits(two.vectors[0].data(), VectorOf(a)));
  EXPECT_TRUE(SameBits(two.vectors[1].data(), VectorOf(b)));
  EXPECT_TRUE(SameBits(two.vectors[2].data(), VectorOf(a)));
  EXPECT_TRUE(SameBits(three.vectors[0].data(), VectorOf(b)));
  EXPECT_EQ(queue->in_flight(), 0u);
  // Computed and gone: the next one is computed again (no cache here).
  Call four({a});
  ASSERT_TRUE(queue->Submit(four.task, batcher::TimePoint::max()).ok());
  Tick(*queue);
  ASSERT_TRUE(four.Wait());
  EXPECT_EQ(encoder.rows(), 3u);
}

TEST_F(EmbedQueueTest, ATextJoinsOneAlreadyExecuting) {
  FakeEncoder encoder;
  encoder.Hold();
  auto queue = MakeQueue(encoder, /*eager=*/true);
  Ids a = {101, 1, 102};
  Call one({a});
  ASSERT_TRUE(queue->Submit(one.task, batcher::TimePoint::max()).ok());
  encoder.AwaitRunning(1);
  Call two({a});
  ASSERT_TRUE(queue->Submit(two.task, batcher::TimePoint::max()).ok());
  EXPECT_EQ(queue->queue_depth(), 0u);
  EXPECT_EQ(joins_.Value(), 1);
  encoder.Release();
  ASSERT_TRUE(one.Wait());
  ASSERT_TRUE(two.Wait());
  EXPECT_EQ(encoder.rows(), 1u);
  EXPECT_TRUE(SameBits(two.vectors[0].data(), VectorOf(a)));
}

TEST_F(EmbedQueueTest, AJoinerSharesTheRunningBatchOnlyFromItsOwnStart) {
  // A batch reported as an hour long: the first call's span is cut at its task's creation, the
  // joiner's at its own, which came later (the stream/unary timing keys must stay within the
  // call: CI once saw x-inference-time 19 ms in a 12 ms stream whose chunks joined a unary
  // call's batch).
  FakeEncoder encoder;
  encoder.Hold();
  encoder.ReportCompute(std::chrono::hours(1));
  auto queue = MakeQueue(encoder, /*eager=*/true);
  Ids a = {101, 7, 102};
  Call one({a});
  ASSERT_TRUE(queue->Submit(one.task, batcher::TimePoint::max()).ok());
  encoder.AwaitRunning(1);
  std::this_thread::sleep_for(milliseconds(20));
  const auto before_two = std::chrono::steady_clock::now();
  Call two({a});
  ASSERT_TRUE(queue->Submit(two.task, batcher::TimePoint::max()).ok());
  EXPECT_EQ(joins_.Value(), 1);
  encoder.Release();
  ASSERT_TRUE(one.Wait());
  ASSERT_TRUE(two.Wait());
  const auto after = std::chrono::steady_clock::now();
  EXPECT_EQ(two.task->batches(), 1);
  EXPECT_LE(two.task->inference_span(), after - before_two);
  EXPECT_GE(two.task->inference_start(), before_two);
  EXPECT_LT(one.task->inference_span(), std::chrono::minutes(1));
  EXPECT_GE(one.task->inference_span() - two.task->inference_span(), milliseconds(20));
}

TEST_F(EmbedQueueTest, DedupOffComputesEveryText) {
  FakeEncoder encoder;
  auto queue = MakeQueue(encoder, /*eager=*/false, /*cache_bytes=*/0, /*dedup=*/false);
  Call call({Ids{1}, Ids{1}, Ids{1}});
  ASSERT_TRUE(queue->Submit(call.task, batcher::TimePoint::max()).ok());
  EXPECT_EQ(queue->queue_depth(), 3u);
  Tick(*queue);
  ASSERT_TRUE(call.Wait());
  EXPECT_EQ(encoder.rows(), 3u);
  EXPECT_EQ(joins_.Value(), 0);
  queue->SetDedup(true);  // Live: from the next submission on.
  Call again({Ids{1}, Ids{1}, Ids{1}});
  ASSERT_TRUE(queue->Submit(again.task, batcher::TimePoint::max()).ok());
  EXPECT_EQ(queue->queue_depth(), 1u);
  Tick(*queue);
  ASSERT_TRUE(again.Wait());
  EXPECT_EQ(encoder.rows(), 4u);
}

TEST_F(EmbedQueueTest, CancellingTheFirstCallLeavesALiveJoinerItsOwnComputation) {
  FakeEncoder encoder;
  auto queue = MakeQueue(encoder);
  Ids a = {101, 1, 102};
  Call first({a});
  Call joiner({a});
  ASSERT_TRUE(queue->Submit(first.task, batcher::TimePoint::max()).ok());
  ASSERT_TRUE(queue->Submit(joiner.task, batcher::TimePoint::max()).ok());
  ASSERT_EQ(joins_.Value(), 1);
  first.cancelled->store(true);  // The first client goes away.
  Tick(*queue);                  // Its text is dropped; the joiner's is queued anew...
  ASSERT_TRUE(first.Wait());
  EXPECT_EQ(first.status.code(), absl::StatusCode::kCancelled);
  EXPECT_FALSE(joiner.Finished());
  EXPECT_EQ(queue->queue_depth(), 1u);
  EXPECT_EQ(queue->in_flight(), 1u);  // ...and can be joined in turn.
  Call late({a});
  ASSERT_TRUE(queue->Submit(late.task, batcher::TimePoint::max()).ok());
  EXPECT_EQ(queue->queue_depth(), 1u);
  Tick(*queue);
  ASSERT_TRUE(joiner.Wait());
  ASSERT_TRUE(late.Wait());
  ASSERT_TRUE(joiner.status.ok()) << joiner.status;
  ASSERT_TRUE(late.status.ok()) << late.status;
  EXPECT_TRUE(SameBits(joiner.vectors[0].data(), VectorOf(a)));
  EXPECT_TRUE(SameBits(late.vectors[0].data(), VectorOf(a)));
  EXPECT_EQ(encoder.rows(), 1u);  // Only the live calls' computation ran.
}

TEST_F(EmbedQueueTest, WhenEveryCallIsCancelledNothingIsComputed) {
  FakeEncoder encoder;
  auto queue = MakeQueue(encoder);
  Call first({Ids{5}});
  Call joiner({Ids{5}});
  ASSERT_TRUE(queue->Submit(first.task, batcher::TimePoint::max()).ok());
  ASSERT_TRUE(queue->Submit(joiner.task, batcher::TimePoint::max()).ok());
  first.cancelled->store(true);
  joiner.cancelled->store(true);
  Tick(*queue);
  ASSERT_TRUE(first.Wait());
  ASSERT_TRUE(joiner.Wait());
  EXPECT_EQ(first.status.code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(joiner.status.code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(encoder.rows(), 0u);
  EXPECT_EQ(queue->queue_depth(), 0u);
  EXPECT_EQ(queue->in_flight(), 0u);
}

TEST_F(EmbedQueueTest, TheFirstCallsDeadlineIsNotTheJoinersOwn) {
  FakeEncoder encoder;
  auto queue = MakeQueue(encoder);
  Call first({Ids{5}});
  Call joiner({Ids{5}});
  ASSERT_TRUE(queue->Submit(first.task, time_.Now() + milliseconds(10)).ok());
  ASSERT_TRUE(queue->Submit(joiner.task, batcher::TimePoint::max()).ok());
  Tick(*queue, milliseconds(20));  // Past the first deadline, before max_queue_delay.
  ASSERT_TRUE(first.Wait());
  EXPECT_EQ(first.status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_FALSE(joiner.Finished());
  Tick(*queue);
  ASSERT_TRUE(joiner.Wait());
  EXPECT_TRUE(joiner.status.ok()) << joiner.status;
  EXPECT_TRUE(SameBits(joiner.vectors[0].data(), VectorOf({5})));
  EXPECT_EQ(encoder.rows(), 1u);
}

TEST_F(EmbedQueueTest, AJoinersOwnDeadlineStillHolds) {
  FakeEncoder encoder;
  auto queue = MakeQueue(encoder);
  Call first({Ids{5}});
  Call hurried({Ids{5}});
  ASSERT_TRUE(queue->Submit(first.task, batcher::TimePoint::max()).ok());
  ASSERT_TRUE(queue->Submit(hurried.task, time_.Now() + milliseconds(10)).ok());
  Tick(*queue);  // The batch forms after the joiner's deadline.
  ASSERT_TRUE(first.Wait());
  ASSERT_TRUE(hurried.Wait());
  EXPECT_TRUE(first.status.ok()) << first.status;
  EXPECT_EQ(hurried.status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(encoder.rows(), 1u);
}

TEST_F(EmbedQueueTest, AJoinerPastItsDeadlineWhenTheFirstIsDroppedExpires) {
  FakeEncoder encoder;
  auto queue = MakeQueue(encoder);
  Call first({Ids{5}});
  Call joiner({Ids{5}});
  ASSERT_TRUE(queue->Submit(first.task, time_.Now() + milliseconds(10)).ok());
  ASSERT_TRUE(queue->Submit(joiner.task, time_.Now() + milliseconds(5)).ok());
  Tick(*queue, milliseconds(20));
  ASSERT_TRUE(first.Wait());
  ASSERT_TRUE(joiner.Wait());
  EXPECT_EQ(first.status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(joiner.status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(queue->queue_depth(), 0u);
  EXPECT_EQ(encoder.rows(), 0u);
}

TEST_F(EmbedQueueTest, AnEncoderFailureReachesEveryJoiner) {
  FakeEncoder encoder;
  encoder.Fail(absl::InternalError("out of memory"));
  auto queue = MakeQueue(encoder, /*eager=*/false, /*cache_bytes=*/1 << 20);
  Call one({Ids{5}, Ids{6}});
  Call two({Ids{6}});
  ASSERT_TRUE(queue->Submit(one.task, batcher::TimePoint::max()).ok());
  ASSERT_TRUE(queue->Submit(two.task, batcher::TimePoint::max()).ok());
  Tick(*queue);
  ASSERT_TRUE(one.Wait());
  ASSERT_TRUE(two.Wait());
  EXPECT_EQ(one.status.code(), absl::StatusCode::kInternal);
  EXPECT_EQ(two.status.code(), absl::StatusCode::kInternal);
  EXPECT_EQ(cache_->stats().entries, 0u);  // Nothing cached from a failed batch.
}

TEST_F(EmbedQueueTest, StoppingFailsQueuedTextsAndTheirJoiners) {
  FakeEncoder encoder;
  auto queue = MakeQueue(encoder, /*eager=*/false, /*cache_bytes=*/1 << 20);
  Call one({Ids{5}});
  Call two({Ids{5}});
  ASSERT_TRUE(queue->Submit(one.task, batcher::TimePoint::max()).ok());
  ASSERT_TRUE(queue->Submit(two.task, batcher::TimePoint::max()).ok());
  queue->Stop();
  ASSERT_TRUE(one.Wait());
  ASSERT_TRUE(two.Wait());
  EXPECT_EQ(one.status.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(two.status.code(), absl::StatusCode::kUnavailable);
  Call three({Ids{5}});
  EXPECT_EQ(queue->Submit(three.task, batcher::TimePoint::max()).code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(encoder.rows(), 0u);
}

TEST_F(EmbedQueueTest, AStoppedQueueRefusesEvenWhatTheCacheHolds) {
  FakeEncoder encoder;
  auto queue = MakeQueue(encoder, /*eager=*/true, /*cache_bytes=*/1 << 20);
  Call one({Ids{5}});
  ASSERT_TRUE(queue->Submit(one.task, batcher::TimePoint::max()).ok());
  ASSERT_TRUE(one.Wait());
  queue->Drain(time_.Now());
  Call two({Ids{5}});
  EXPECT_EQ(queue->Submit(two.task, batcher::TimePoint::max()).code(),
            absl::StatusCode::kUnavailable);
}

TEST_F(EmbedQueueTest, AFullQueueTakesNothingOfTheTaskNotEvenItsJoins) {
  max_queue_ = 1;
  FakeEncoder encoder;
  auto queue = MakeQueue(encoder);
  Call one({Ids{5}});
  ASSERT_TRUE(queue->Submit(one.task, batcher::TimePoint::max()).ok());
  Call two({Ids{6}, Ids{5}});  // 6 does not fit; 5 would have joined.
  EXPECT_EQ(queue->Submit(two.task, batcher::TimePoint::max()).code(),
            absl::StatusCode::kResourceExhausted);
  Call three({Ids{5}, Ids{5}});  // Duplicates take no room: both join.
  EXPECT_TRUE(queue->Submit(three.task, batcher::TimePoint::max()).ok());
  Tick(*queue);
  ASSERT_TRUE(one.Wait());
  ASSERT_TRUE(three.Wait());
  EXPECT_TRUE(three.status.ok());
  EXPECT_FALSE(two.Finished());  // Its `done` never runs: the caller answered the error.
  EXPECT_EQ(joins_.Value(), 2);  // two's join was not counted (nor kept).
  EXPECT_EQ(encoder.rows(), 1u);
}

TEST_F(EmbedQueueTest, AReplacedModelNeverAnswersWithTheOldOnesVectors) {
  // Two runtimes of "the same model" (a reload that swaps its files) share the cache.
  FakeEncoder old_model(0.0f), new_model(1.0f);
  auto old_queue = MakeQueue(old_model, /*eager=*/true, /*cache_bytes=*/1 << 20);
  auto new_queue = MakeQueue(new_model, /*eager=*/true);
  EXPECT_NE(old_queue->cache_model_id(), new_queue->cache_model_id());
  Call before({Ids{5}});
  ASSERT_TRUE(old_queue->Submit(before.task, batcher::TimePoint::max()).ok());
  ASSERT_TRUE(before.Wait());
  Call after({Ids{5}});
  ASSERT_TRUE(new_queue->Submit(after.task, batcher::TimePoint::max()).ok());
  ASSERT_TRUE(after.Wait());
  EXPECT_TRUE(SameBits(before.vectors[0].data(), VectorOf({5}, 0.0f)));
  EXPECT_TRUE(SameBits(after.vectors[0].data(), VectorOf({5}, 1.0f)));
  EXPECT_EQ(new_model.rows(), 1u);
  EXPECT_EQ(cache_->stats().entries, 2u);
  old_queue.reset();  // Unloaded: its entries go with it.
  EXPECT_EQ(cache_->stats().entries, 1u);
}

TEST_F(EmbedQueueTest, ConcurrentCallsAlwaysGetTheirOwnTextsVectors) {
  // Real time, eager batches, cache and dedup on, a small vocabulary so that texts collide in
  // flight and in the cache, and a cache small enough to evict.
  batcher::TimeSource* real = batcher::RealTime();
  FakeEncoder encoder;
  EmbedQueue::Options options;
  options.batching.max_batch_size = 8;
  options.batching.max_queue_delay = std::chrono::microseconds(200);
  options.instances = 2;
  options.dim = kDim;
  options.cache = std::make_shared<EmbeddingCache>(EmbeddingCache::Options{.max_bytes = 16 << 10});
  options.metrics = {&hits_, &misses_, &joins_};
  options.time = real;
  EmbedQueue queue(std::move(options), encoder.AsEncode());
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(t);
      std::uniform_int_distribution<int32_t> word(0, 40);
      for (int i = 0; i < 200; ++i) {
        std::vector<Ids> texts;
        for (int k = 0; k < 1 + i % 5; ++k) texts.push_back({101, word(rng), word(rng) % 3, 102});
        Call call(texts);
        if (i % 7 == 3) call.cancelled->store(true);
        absl::Status s = queue.Submit(call.task, batcher::TimePoint::max());
        if (!s.ok() || !call.Wait()) {
          ++wrong;
          continue;
        }
        if (!call.status.ok()) {
          if (call.status.code() != absl::StatusCode::kCancelled) ++wrong;
          continue;
        }
        for (size_t k = 0; k < texts.size(); ++k) {
          if (!SameBits(call.vectors[k].data(), VectorOf(texts[k]))) ++wrong;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_GT(hits_.Value() + joins_.Value(), 0);
  EXPECT_EQ(queue.in_flight(), 0u);
}

}  // namespace
}  // namespace tipperary::worker
