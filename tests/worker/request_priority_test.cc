#include "request_priority.h"

#include "gtest/gtest.h"

namespace tipperary::worker {
namespace {

using batcher::Priority;

TEST(RequestPriorityTest, Rfc9218UrgencyFourAndAboveIsBulk) {
  EXPECT_EQ(PriorityFromField("u=7"), Priority::kBulk);
  EXPECT_EQ(PriorityFromField("u=4"), Priority::kBulk);
  EXPECT_EQ(PriorityFromField("u=3"), Priority::kInteractive);
  EXPECT_EQ(PriorityFromField("u=0"), Priority::kInteractive);
  EXPECT_EQ(PriorityFromField("i, u=5"), Priority::kBulk);
  EXPECT_EQ(PriorityFromField(" u=6 , i"), Priority::kBulk);
  EXPECT_EQ(PriorityFromField("u=5;x=1"), Priority::kBulk);
  EXPECT_EQ(PriorityFromField("u=1, u=6"), Priority::kBulk);  // the last one wins
}

TEST(RequestPriorityTest, InvalidOrAbsentUrgencyIsIgnored) {
  EXPECT_EQ(PriorityFromField(""), std::nullopt);
  EXPECT_EQ(PriorityFromField("i"), std::nullopt);
  EXPECT_EQ(PriorityFromField("u=8"), std::nullopt);
  EXPECT_EQ(PriorityFromField("u=-1"), std::nullopt);
  EXPECT_EQ(PriorityFromField("u=bulk"), std::nullopt);
  EXPECT_EQ(PriorityFromField("u=44"), std::nullopt);
  EXPECT_EQ(PriorityFromField("u=5, u=x"), std::nullopt);
}

TEST(RequestPriorityTest, TheRequestsOwnFieldWinsThenMetadataThenInteractive) {
  std::multimap<grpc::string_ref, grpc::string_ref> metadata;
  EXPECT_EQ(ResolvePriority(std::nullopt, metadata), Priority::kInteractive);
  metadata.emplace("priority", "u=7");
  EXPECT_EQ(ResolvePriority(std::nullopt, metadata), Priority::kBulk);
  EXPECT_EQ(ResolvePriority(Priority::kInteractive, metadata), Priority::kInteractive);
  std::multimap<grpc::string_ref, grpc::string_ref> invalid{{"priority", "u=9"}};
  EXPECT_EQ(ResolvePriority(std::nullopt, invalid), Priority::kInteractive);
}

}  // namespace
}  // namespace tipperary::worker
