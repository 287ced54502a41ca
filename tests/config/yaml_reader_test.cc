#include "tipperary/config/yaml_reader.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tipperary::config {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

YamlValue Parse(const std::string& text) {
  absl::StatusOr<YamlValue> value = ParseYamlDocument(text, "w.yaml");
  EXPECT_TRUE(value.ok()) << value.status();
  return *value;
}

std::string Message(const absl::Status& status) {
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  return std::string(status.message());
}

TEST(YamlReaderTest, ErrorFormat) {
  EXPECT_EQ(Message(YamlError("a.yaml", YAML::Mark(), "x.y", "bad")), "a.yaml:1:1: x.y: bad");
  EXPECT_EQ(Message(YamlError("a.yaml", YAML::Mark(), "", "bad")), "a.yaml:1:1: bad");
  EXPECT_EQ(Message(YamlError("a.yaml", YAML::Mark::null_mark(), "", "bad")), "a.yaml: bad");
}

TEST(YamlReaderTest, ReadsTypedValuesAndKeepsDefaults) {
  YamlValue root = Parse(
      "name: w\n"
      "on: true\n"
      "threads: 8\n"
      "ratio: 0.25\n"
      "timeout: 250ms\n"
      "buffer: 8MiB\n"
      "level: warn\n"
      "tags: [a, b]\n");
  absl::StatusOr<YamlMap> map = root.AsMap(
      {"name", "on", "threads", "ratio", "timeout", "buffer", "level", "tags", "absent"});
  ASSERT_TRUE(map.ok()) << map.status();
  std::string name;
  bool on = false;
  uint32_t threads = 0;
  uint32_t absent = 42;
  double ratio = 1;
  Duration timeout = seconds(1);
  uint64_t buffer = 0;
  std::string level;
  std::vector<std::string> tags;
  ASSERT_TRUE(map->ReadString("name", &name).ok());
  ASSERT_TRUE(map->ReadBool("on", &on).ok());
  ASSERT_TRUE(map->ReadUint32("threads", &threads, 1, 64).ok());
  ASSERT_TRUE(map->ReadUint32("absent", &absent, 1, 64).ok());
  ASSERT_TRUE(map->ReadDouble("ratio", &ratio, 0, 1).ok());
  ASSERT_TRUE(map->ReadDuration("timeout", &timeout).ok());
  ASSERT_TRUE(map->ReadSize("buffer", &buffer).ok());
  ASSERT_TRUE(map->ReadEnum("level", &level, {"info", "warn"}).ok());
  ASSERT_TRUE(map->ReadStringList("tags", &tags).ok());
  EXPECT_EQ(name, "w");
  EXPECT_TRUE(on);
  EXPECT_EQ(threads, 8u);
  EXPECT_EQ(absent, 42u);
  EXPECT_EQ(ratio, 0.25);
  EXPECT_EQ(timeout, milliseconds(250));
  EXPECT_EQ(buffer, 8u << 20);
  EXPECT_EQ(level, "warn");
  EXPECT_THAT(tags, testing::ElementsAre("a", "b"));
  EXPECT_TRUE(map->Has("tags"));
  EXPECT_FALSE(map->Has("absent"));
}

TEST(YamlReaderTest, UnknownKeyNamesTheKeyAndSuggests) {
  YamlValue root = Parse(
      "timeouts:\n"
      "  idle: 1s\n"
      "  tiemout: 2s\n");
  YamlMap top = *root.AsMap({"timeouts"});
  absl::Status status = top.Find("timeouts")->AsMap({"idle", "timeout"}).status();
  EXPECT_EQ(Message(status),
            "w.yaml:3:3: unknown key \"tiemout\" in timeouts (known: idle, timeout); did you mean "
            "\"timeout\"?");
  EXPECT_EQ(Message(root.AsMap({"limits", "logging"}).status()),
            "w.yaml:1:1: unknown key \"timeouts\" at the top level (known: limits, logging)");
}

TEST(YamlReaderTest, DuplicateKey) {
  YamlValue root = Parse("a: 1\nb: 2\na: 3\n");
  EXPECT_EQ(Message(root.AsMap({"a", "b"}).status()), "w.yaml:3:1: a: duplicate key");
}

TEST(YamlReaderTest, ListItemPathsAndMarks) {
  YamlValue root = Parse(
      "upstreams:\n"
      "  - endpoints: [a, b]\n"
      "  - endpoints:\n"
      "      - x\n"
      "      - [nested]\n");
  YamlMap top = *root.AsMap({"upstreams"});
  std::vector<YamlValue> items = *top.Find("upstreams")->AsList();
  ASSERT_EQ(items.size(), 2u);
  YamlMap second = *items[1].AsMap({"endpoints"});
  std::vector<std::string> endpoints;
  EXPECT_EQ(Message(second.ReadStringList("endpoints", &endpoints)),
            "w.yaml:5:9: upstreams[1].endpoints[1]: expected a string, got a list");
  EXPECT_EQ(Message(items[0].Error("boom")), "w.yaml:2:5: upstreams[0]: boom");
}

TEST(YamlReaderTest, BadScalars) {
  YamlValue root = Parse(
      "flag: yes\n"
      "count: 1.5\n"
      "small: 0\n"
      "ratio: 1.5\n"
      "nan: .nan\n"
      "wait: 2 parsecs\n"
      "short: 1ms\n"
      "size: 12 apples\n"
      "tiny: 12\n"
      "level: loud\n"
      "empty:\n"
      "map: {a: 1}\n");
  YamlMap map = *root.AsMap({"flag", "count", "small", "ratio", "nan", "wait", "short", "size",
                             "tiny", "level", "empty", "map"});
  bool flag;
  uint32_t count;
  double ratio;
  Duration wait;
  uint64_t size;
  std::string text;
  EXPECT_EQ(Message(map.ReadBool("flag", &flag)),
            "w.yaml:1:7: flag: bad boolean \"yes\" (use true or false)");
  EXPECT_EQ(Message(map.ReadUint32("count", &count, 0, 10)),
            "w.yaml:2:8: count: bad integer \"1.5\"");
  EXPECT_EQ(Message(map.ReadUint32("small", &count, 1, 64)),
            "w.yaml:3:8: small: 0 is out of range (1..64)");
  EXPECT_EQ(Message(map.ReadDouble("ratio", &ratio, 0, 1)),
            "w.yaml:4:8: ratio: 1.5 is out of range (0..1)");
  EXPECT_EQ(Message(map.ReadDouble("nan", &ratio, 0, 1)), "w.yaml:5:6: nan: bad number \".nan\"");
  EXPECT_EQ(Message(map.ReadDuration("wait", &wait)),
            "w.yaml:6:7: wait: bad duration \"2 parsecs\" (use e.g. 250ms, 2s, 1m)");
  EXPECT_EQ(Message(map.ReadDuration("short", &wait, seconds(1))),
            "w.yaml:7:8: short: 1ms is out of range (must be at least 1s)");
  EXPECT_EQ(Message(map.ReadSize("size", &size)),
            "w.yaml:8:7: size: bad size \"12 apples\" (use e.g. 4096, 512KiB, 8MiB, 1GB)");
  EXPECT_EQ(Message(map.ReadSize("tiny", &size, 1024, 1 << 20)),
            "w.yaml:9:7: tiny: 12 is out of range (1KiB..1MiB)");
  EXPECT_EQ(Message(map.ReadEnum("level", &text, {"info", "warn"})),
            "w.yaml:10:8: level: bad value \"loud\" (use one of: info, warn)");
  EXPECT_EQ(Message(map.ReadString("empty", &text)),
            "w.yaml:11:1: empty: expected a string, got nothing (null)");
  EXPECT_EQ(Message(map.ReadString("map", &text)),
            "w.yaml:12:6: map: expected a string, got a map");
}

TEST(YamlReaderTest, NullReadsAsEmptyContainer) {
  YamlValue root = Parse("section:\nlist:\n");
  YamlMap map = *root.AsMap({"section", "list"});
  absl::StatusOr<YamlMap> section = map.Find("section")->AsMap({"x"});
  ASSERT_TRUE(section.ok());
  EXPECT_FALSE(section->Has("x"));
  EXPECT_TRUE(map.Find("list")->AsList()->empty());
  EXPECT_EQ(Message(map.Require({"section", "other"})),
            "w.yaml:1:1: missing required key \"other\"");
}

TEST(YamlReaderTest, SyntaxErrorsEmptyAndMultipleDocuments) {
  EXPECT_EQ(Message(ParseYamlDocument("a: [1, 2\nb: 3\n", "w.yaml").status()),
            "w.yaml:2:2: YAML syntax error: end of sequence flow not found");
  EXPECT_EQ(Message(ParseYamlDocument("", "w.yaml").status()), "w.yaml:1:1: the file is empty");
  EXPECT_EQ(Message(ParseYamlDocument("# only a comment\n", "w.yaml").status()),
            "w.yaml:1:1: the file is empty");
  EXPECT_EQ(Message(ParseYamlDocument("a: 1\n---\nb: 2\n", "w.yaml").status()),
            "w.yaml:3:1: more than one YAML document (remove the extra \"---\")");
  EXPECT_EQ(Message(ParseYamlDocument("a: 1\n...\nb: 2\n", "w.yaml").status()),
            "w.yaml:3:1: more than one YAML document (remove the extra \"---\")");
}

// yaml-cpp 0.7's YAML::LoadAll never returns on a ',' outside a flow collection, allocating an
// empty document per turn (found by tests/fuzz/config): an error instead.
TEST(YamlReaderTest, StrayCommaIsASyntaxErrorNotAHang) {
  EXPECT_EQ(Message(ParseYamlDocument(",", "w.yaml").status()),
            "w.yaml:1:1: YAML syntax error: unexpected \",\"");
  EXPECT_EQ(Message(ParseYamlDocument("models: [a]\n,\n", "w.yaml").status()),
            "w.yaml:2:1: YAML syntax error: end of map not found");
  EXPECT_EQ(Message(ParseYamlDocument("[a]\n  , b\n", "w.yaml").status()),
            "w.yaml:2:3: YAML syntax error: unexpected \",\"");
  EXPECT_EQ(Message(ParseYamlDocument("--- ,i: 1}\nmodels: []\n", "w.yaml").status()),
            "w.yaml:1:5: YAML syntax error: unexpected \",\"");
  EXPECT_TRUE(ParseYamlDocument("a: [1, 2]\nb: {c: ','}\n", "w.yaml").ok());
}

}  // namespace
}  // namespace tipperary::config
