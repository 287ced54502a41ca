#include "tipperary/config/units.h"

#include <chrono>
#include <limits>

#include "gtest/gtest.h"

namespace tipperary::config {
namespace {

using std::chrono::hours;
using std::chrono::microseconds;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::nanoseconds;
using std::chrono::seconds;

TEST(ParseDurationTest, AcceptsEveryUnit) {
  EXPECT_EQ(*ParseDuration("250ms"), milliseconds(250));
  EXPECT_EQ(*ParseDuration("2s"), seconds(2));
  EXPECT_EQ(*ParseDuration("1.5s"), milliseconds(1500));
  EXPECT_EQ(*ParseDuration("1m"), minutes(1));
  EXPECT_EQ(*ParseDuration("1h"), hours(1));
  EXPECT_EQ(*ParseDuration("500us"), microseconds(500));
  EXPECT_EQ(*ParseDuration("500\xC2\xB5s"), microseconds(500));
  EXPECT_EQ(*ParseDuration("100ns"), nanoseconds(100));
  EXPECT_EQ(*ParseDuration("0"), nanoseconds(0));
  EXPECT_EQ(*ParseDuration("0s"), nanoseconds(0));
  EXPECT_EQ(*ParseDuration("1m30s"), seconds(90));
  EXPECT_EQ(*ParseDuration("0.001ms"), microseconds(1));
}

TEST(ParseDurationTest, RejectsJunkWithAHint) {
  EXPECT_EQ(ParseDuration("2 parsecs").status().message(),
            "bad duration \"2 parsecs\" (use e.g. 250ms, 2s, 1m)");
  for (const char* junk : {"", "s", "2", "2 s", "2S", "2sec", "1.s", ".5s", "+1s", "1e3s", "ms",
                           "2s ", " 2s", "0x10s", "1d"}) {
    EXPECT_FALSE(ParseDuration(junk).ok()) << junk;
  }
}

TEST(ParseDurationTest, ExplainsMissingUnitNegativeAndOverflow) {
  EXPECT_EQ(ParseDuration("30").status().message(),
            "bad duration \"30\": missing unit (use e.g. 250ms, 2s, 1m)");
  EXPECT_EQ(ParseDuration("-1s").status().message(), "bad duration \"-1s\": must not be negative");
  EXPECT_EQ(ParseDuration("0.5ns").status().message(), "bad duration \"0.5ns\": finer than 1ns");
  EXPECT_EQ(ParseDuration("3000000h").status().message(),
            "bad duration \"3000000h\": too large (at most about 292 years)");
  EXPECT_FALSE(ParseDuration("99999999999999999999999h").ok());
  EXPECT_EQ(*ParseDuration("9223372036854775807ns"), nanoseconds::max());
  EXPECT_FALSE(ParseDuration("9223372036854775808ns").ok());
}

TEST(FormatDurationTest, UsesTheLargestExactUnitAndRoundTrips) {
  EXPECT_EQ(FormatDuration(nanoseconds(0)), "0s");
  EXPECT_EQ(FormatDuration(hours(2)), "2h");
  EXPECT_EQ(FormatDuration(minutes(90)), "90m");
  EXPECT_EQ(FormatDuration(seconds(90)), "90s");
  EXPECT_EQ(FormatDuration(milliseconds(1500)), "1500ms");
  EXPECT_EQ(FormatDuration(microseconds(3)), "3us");
  EXPECT_EQ(FormatDuration(nanoseconds(7)), "7ns");
  EXPECT_EQ(FormatDuration(seconds(-2)), "-2s");
  for (nanoseconds value : {nanoseconds(1), nanoseconds(1001), nanoseconds(123456789012345),
                            nanoseconds::max(), nanoseconds(hours(24))}) {
    EXPECT_EQ(*ParseDuration(FormatDuration(value)), value) << FormatDuration(value);
  }
}

TEST(ParseSizeTest, AcceptsUnits) {
  EXPECT_EQ(*ParseSize("8MiB"), 8u << 20);
  EXPECT_EQ(*ParseSize("512KiB"), 512u << 10);
  EXPECT_EQ(*ParseSize("1GiB"), 1u << 30);
  EXPECT_EQ(*ParseSize("2TiB"), uint64_t{2} << 40);
  EXPECT_EQ(*ParseSize("100KB"), 100000u);
  EXPECT_EQ(*ParseSize("1MB"), 1000000u);
  EXPECT_EQ(*ParseSize("3GB"), 3000000000u);
  EXPECT_EQ(*ParseSize("4096"), 4096u);
  EXPECT_EQ(*ParseSize("4096B"), 4096u);
  EXPECT_EQ(*ParseSize("0"), 0u);
  EXPECT_EQ(*ParseSize("1.5KiB"), 1536u);
  EXPECT_EQ(*ParseSize("18446744073709551615"), std::numeric_limits<uint64_t>::max());
}

TEST(ParseSizeTest, RejectsJunkNegativesFractionsAndOverflow) {
  EXPECT_EQ(ParseSize("12 apples").status().message(),
            "bad size \"12 apples\" (use e.g. 4096, 512KiB, 8MiB, 1GB)");
  for (const char* junk : {"", "MiB", "8mib", "8 MiB", "8M", "8k", "1.MiB", "0x10", "8MiBs"}) {
    EXPECT_FALSE(ParseSize(junk).ok()) << junk;
  }
  EXPECT_EQ(ParseSize("-1").status().message(), "bad size \"-1\": must not be negative");
  EXPECT_EQ(ParseSize("1.5").status().message(), "bad size \"1.5\": not a whole number of bytes");
  EXPECT_EQ(ParseSize("18446744073709551616").status().message(),
            "bad size \"18446744073709551616\": too large");
  EXPECT_EQ(ParseSize("17179869184GiB").status().message(),
            "bad size \"17179869184GiB\": too large");
  EXPECT_FALSE(ParseSize("123456789012345678901").ok());
}

TEST(FormatSizeTest, PrefersBinaryUnitsAndRoundTrips) {
  EXPECT_EQ(FormatSize(0), "0");
  EXPECT_EQ(FormatSize(64u << 20), "64MiB");
  EXPECT_EQ(FormatSize(16 * 1024), "16KiB");
  EXPECT_EQ(FormatSize(100000), "100KB");
  EXPECT_EQ(FormatSize(65535), "65535");
  EXPECT_EQ(FormatSize(uint64_t{3} << 40), "3TiB");
  for (uint64_t value : {uint64_t{1}, uint64_t{1023}, uint64_t{1} << 20, uint64_t{4000000},
                         std::numeric_limits<uint64_t>::max()}) {
    EXPECT_EQ(*ParseSize(FormatSize(value)), value) << FormatSize(value);
  }
}

}  // namespace
}  // namespace tipperary::config
