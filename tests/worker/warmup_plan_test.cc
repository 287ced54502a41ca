// The warm-up's batch shapes: every bucket the batcher can form, within the token budget.
#include "warmup_plan.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <utility>
#include <vector>

namespace tipperary::worker {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

TEST(WarmupShapes, MinimalIsOneTinyBatchAndNoneIsNothing) {
  EXPECT_THAT(WarmupShapes("minimal", 32, 16384, 256), ElementsAre(WarmupShape{2, 2}));
  EXPECT_THAT(WarmupShapes("none", 32, 16384, 256), IsEmpty());
  EXPECT_THAT(WarmupShapes("bogus", 32, 16384, 256), IsEmpty());
}

TEST(WarmupShapes, AllIsPowersOfTwoByLengthThenBatch) {
  // Budget 64: length 16 fits 4 texts, 32 fits 2, 64 one; 8 fits 8 but the batch stops at 4.
  EXPECT_THAT(
      WarmupShapes("all", 4, 64, 64),
      ElementsAre(WarmupShape{1, 2}, WarmupShape{2, 2}, WarmupShape{4, 2}, WarmupShape{1, 4},
                  WarmupShape{2, 4}, WarmupShape{4, 4}, WarmupShape{1, 8}, WarmupShape{2, 8},
                  WarmupShape{4, 8}, WarmupShape{1, 16}, WarmupShape{2, 16}, WarmupShape{4, 16},
                  WarmupShape{1, 32}, WarmupShape{2, 32}, WarmupShape{1, 64}));
}

TEST(WarmupShapes, LimitsThatAreNoPowerOfTwoAreBucketsThemselves) {
  // max_seq_length 100 and max_batch_size 3: the longest text and the fullest batch are run.
  const std::vector<WarmupShape> shapes = WarmupShapes("all", 3, 16384, 100);
  EXPECT_EQ(shapes.back(), (WarmupShape{3, 100}));
  EXPECT_NE(std::find(shapes.begin(), shapes.end(), WarmupShape{3, 2}), shapes.end());
  EXPECT_NE(std::find(shapes.begin(), shapes.end(), WarmupShape{2, 64}), shapes.end());
  EXPECT_EQ(std::find(shapes.begin(), shapes.end(), WarmupShape{4, 64}), shapes.end());
  // The fullest batch the budget allows when it is no power of two: 1000 / 128 = 7 texts.
  const std::vector<WarmupShape> budget = WarmupShapes("all", 32, 1000, 128);
  EXPECT_EQ(budget.back(), (WarmupShape{7, 128}));
}

TEST(WarmupShapes, EveryShapeTheBatcherCanFormHasABucketNoSmallerThanIt) {
  // The defaults of config/worker.yaml and the default model's 256 tokens.
  const int max_batch = 32, budget = 16384, max_seq = 256;
  const std::vector<WarmupShape> shapes = WarmupShapes("all", max_batch, budget, max_seq);
  std::set<std::pair<int, int>> seen;
  for (const WarmupShape& s : shapes) {
    EXPECT_TRUE(seen.insert({s.length, s.batch}).second) << s.batch << "x" << s.length;
    EXPECT_GE(s.length, 2);
    EXPECT_LE(s.length, max_seq);
    EXPECT_GE(s.batch, 1);
    EXPECT_LE(s.batch, max_batch);
    EXPECT_TRUE(s.tokens() <= budget || s.batch == 1) << s.batch << "x" << s.length;
  }
  // A batch of b texts of length l (what the batcher forms: b x l within the budget, or a lone
  // text) is covered by a bucket at most twice as long and twice as many texts.
  for (int l = 2; l <= max_seq; ++l) {
    for (int b = 1; b <= max_batch && (b == 1 || b * l <= budget); ++b) {
      const bool covered = std::any_of(shapes.begin(), shapes.end(), [&](const WarmupShape& s) {
        return s.length >= l && s.length < 2 * l && s.batch >= b && s.batch < 2 * b;
      });
      EXPECT_TRUE(covered) << b << "x" << l;
    }
  }
  EXPECT_EQ(shapes.size(), 48u);  // 8 lengths 2..256 x 6 batch sizes 1..32
}

TEST(WarmupShapes, ALengthBeyondTheBudgetIsALoneText) {
  EXPECT_THAT(
      WarmupShapes("all", 8, 16, 32),
      ElementsAre(WarmupShape{1, 2}, WarmupShape{2, 2}, WarmupShape{4, 2}, WarmupShape{8, 2},
                  WarmupShape{1, 4}, WarmupShape{2, 4}, WarmupShape{4, 4}, WarmupShape{1, 8},
                  WarmupShape{2, 8}, WarmupShape{1, 16}, WarmupShape{1, 32}));
}

TEST(WarmupBatch, TextsOfTheShapeFramedBySpecialTokens) {
  const std::vector<std::vector<int32_t>> batch = WarmupBatch({3, 4}, 101, 7, 102);
  ASSERT_EQ(batch.size(), 3u);
  for (const auto& text : batch) EXPECT_THAT(text, ElementsAre(101, 7, 7, 102));
  EXPECT_THAT(WarmupBatch({1, 2}, 101, 7, 102), ElementsAre(ElementsAre(101, 102)));
}

}  // namespace
}  // namespace tipperary::worker
