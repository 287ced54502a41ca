#include "tipperary/config/reload_report.h"

#include <gtest/gtest.h>

namespace tipperary::config {
namespace {

TEST(ConfigHashTest, IsSha256OfTheDump) {
  // sha256("abc"), FIPS 180-2 appendix B.1.
  EXPECT_EQ(ConfigHash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_NE(ConfigHash("threads: 1\n"), ConfigHash("threads: 2\n"));
}

TEST(ChangedKeysTest, NamesChangedKeysOfSectionsAndWholeListsAndScalars) {
  const char* before =
      "threads: 2\nlimits:\n  max_header_bytes: 100\n  max_body: 5\nupstreams:\n  - name: a\n"
      "logging:\n  level: info\n";
  const char* after =
      "threads: 4\nlimits:\n  max_header_bytes: 200\n  max_body: 5\nupstreams:\n  - name: b\n"
      "logging:\n  level: info\ncors:\n  enabled: true\n";
  EXPECT_EQ(ChangedKeys(before, after),
            (std::vector<std::string>{"cors", "limits.max_header_bytes", "threads", "upstreams"}));
  EXPECT_TRUE(ChangedKeys(before, before).empty());
}

TEST(ReloadReportTest, JsonAndStatus) {
  ReloadReport report;
  report.result = ReloadReport::Result::kRejected;
  report.config_hash = "ab";
  report.error = "p.yaml:3:5: limits.max_header_bytes: \"x\" is not a size";
  EXPECT_EQ(report.HttpStatus(), 422);
  EXPECT_EQ(
      report.ToJson(),
      "{\"result\":\"rejected\",\"config_hash\":\"ab\",\"changed\":[],\"restart_required\":[],"
      "\"error\":\"p.yaml:3:5: limits.max_header_bytes: \\\"x\\\" is not a size\"}\n");
  report.result = ReloadReport::Result::kApplied;
  report.error.clear();
  report.changed = {"limits.max_header_bytes"};
  report.restart_required = {"threads"};
  EXPECT_EQ(report.HttpStatus(), 200);
  EXPECT_EQ(report.ResultName(), "applied");
  EXPECT_EQ(
      report.ToJson(),
      "{\"result\":\"applied\",\"config_hash\":\"ab\",\"changed\":[\"limits.max_header_bytes\"],"
      "\"restart_required\":[\"threads\"]}\n");
}

}  // namespace
}  // namespace tipperary::config
