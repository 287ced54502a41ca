#include "tipperary/common/qvalue.h"

#include <gtest/gtest.h>

namespace tipperary::common {
namespace {

TEST(QValueTest, RfcGrammar) {
  EXPECT_EQ(ParseQValue("0"), 0);
  EXPECT_EQ(ParseQValue("1"), 1000);
  EXPECT_EQ(ParseQValue("0.5"), 500);
  EXPECT_EQ(ParseQValue("0.125"), 125);
  EXPECT_EQ(ParseQValue("1.000"), 1000);
  EXPECT_EQ(ParseQValue("1."), 1000);
  for (const char* bad : {"", "2", "0.1234", "1.001", "0,5", ".5", "0.x", "-0", " 1"}) {
    EXPECT_EQ(ParseQValue(bad), -1) << bad;
  }
}

}  // namespace
}  // namespace tipperary::common
