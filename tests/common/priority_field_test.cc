#include "tipperary/common/priority_field.h"

#include <gtest/gtest.h>

namespace tipperary::common {
namespace {

TEST(UrgencyFromFieldTest, ReadsTheUrgencyMember) {
  EXPECT_EQ(UrgencyFromField("u=7"), 7);
  EXPECT_EQ(UrgencyFromField("u=0"), 0);
  EXPECT_EQ(UrgencyFromField("i, u=5"), 5);
  EXPECT_EQ(UrgencyFromField(" u=6 , i"), 6);
  EXPECT_EQ(UrgencyFromField("u=5;x=1"), 5);
  EXPECT_EQ(UrgencyFromField("u=1, u=6"), 6);  // the last wins
}

TEST(UrgencyFromFieldTest, IgnoresAnInvalidField) {
  EXPECT_EQ(UrgencyFromField(""), std::nullopt);
  EXPECT_EQ(UrgencyFromField("i"), std::nullopt);
  EXPECT_EQ(UrgencyFromField("u=8"), std::nullopt);
  EXPECT_EQ(UrgencyFromField("u=-1"), std::nullopt);
  EXPECT_EQ(UrgencyFromField("u=10"), std::nullopt);
  EXPECT_EQ(UrgencyFromField("u=x"), std::nullopt);
  EXPECT_EQ(UrgencyFromField("u=2, u=9"), std::nullopt);
}

TEST(IsBulkFieldTest, UrgencyFourAndAboveIsBulk) {
  EXPECT_TRUE(IsBulkField("u=4"));
  EXPECT_TRUE(IsBulkField("u=7, i"));
  EXPECT_FALSE(IsBulkField("u=3"));
  EXPECT_FALSE(IsBulkField("u=0"));
  EXPECT_FALSE(IsBulkField(""));      // absent: RFC 9218's default, 3
  EXPECT_FALSE(IsBulkField("u=99"));  // invalid: ignored
}

}  // namespace
}  // namespace tipperary::common
