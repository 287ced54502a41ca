// The fast JSON path against protobuf's converter: whenever the fast path takes an input, its
// output must be byte for byte protobuf's; inputs it does not take are protobuf's to judge.
#include "fast_json.h"

#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "test_schema.h"
#include "tipperary/testing/v1/test_service.pb.h"

namespace tipperary::transcoder {
namespace {

namespace pb = google::protobuf;
using internal::FastBinaryToJson;
using internal::FastJsonToBinary;
using internal::FastPrintOptions;
using tipperary::testing::v1::AllTypes;

constexpr size_t kMaxDepth = 32;

const pb::Descriptor* AllTypesDescriptor() {
  return ::tipperary::transcoder::testing::TestSchema()->FindMessage(
      "tipperary.testing.v1.AllTypes");
}

pb::util::TypeResolver* Resolver() {
  return ::tipperary::transcoder::testing::TestSchema()->type_resolver();
}

const std::string kUrl = "type.googleapis.com/tipperary.testing.v1.AllTypes";

// Returns whether the fast path took the input; checks it against protobuf when it did.
bool CheckJson(const std::string& json) {
  std::string fast;
  if (!FastJsonToBinary(AllTypesDescriptor(), json, kMaxDepth, &fast)) return false;
  std::string slow;
  pb::util::Status s = pb::util::JsonToBinaryString(Resolver(), kUrl, json, &slow);
  EXPECT_TRUE(s.ok()) << json << ": fast path took what protobuf rejects: " << s.ToString();
  EXPECT_EQ(fast, slow) << json;
  return true;
}

bool CheckBinary(const std::string& bin, const FastPrintOptions& options = {}) {
  std::string fast = "unchanged";
  if (!FastBinaryToJson(AllTypesDescriptor(), bin, options, kMaxDepth, &fast)) {
    EXPECT_EQ(fast, "unchanged");  // No partial output.
    return false;
  }
  fast.erase(0, 9);
  pb::util::JsonPrintOptions print;
  print.preserve_proto_field_names = options.preserve_proto_field_names;
  print.always_print_enums_as_ints = options.enums_as_ints;
  std::string slow;
  pb::util::Status s = pb::util::BinaryToJsonString(Resolver(), kUrl, bin, &slow, print);
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(fast, slow);
  return true;
}

TEST(FastJsonTest, TakesTheCommonShapes) {
  EXPECT_TRUE(CheckJson(R"({"fString":"hello","fInt64":"42","rString":["a","b"]})"));
  EXPECT_TRUE(CheckJson("{}"));
  EXPECT_TRUE(CheckJson(" {\n\t\"f_string\" : \"x\" , \"fInt32\":-5 }\r\n"));
  EXPECT_TRUE(CheckJson(R"({"customJSON":"c","camelCaseName":"d"})"));
  EXPECT_TRUE(CheckJson(R"({"fInt32":-2147483648,"fUint32":4294967295,"fSint32":-7})"));
  EXPECT_TRUE(CheckJson(R"({"fInt64":"-9223372036854775808","fUint64":18446744073709551615})"));
  EXPECT_TRUE(CheckJson(R"({"fSint64":"-3","fFixed32":7,"fFixed64":"8","fSfixed32":-9})"));
  EXPECT_TRUE(CheckJson(R"({"fSfixed64":-10,"fBool":true,"fEnum":"BLUE","rEnum":["RED"]})"));
  EXPECT_TRUE(CheckJson(R"({"rInt64":[1,"2",-3],"rString":[],"fNested":{}})"));
  EXPECT_TRUE(
      CheckJson(R"({"fNested":{"name":"n","count":"3","tags":["t"],"child":{"color":"GREEN"}}})"));
  EXPECT_TRUE(CheckJson(R"({"rNested":[{"name":"a"},{}],"fString":"<a href='x'>&</a>"})"));
}

TEST(FastJsonTest, LeavesTheRestToProtobuf) {
  for (const char* json : {R"({"fString":"caf\u00e9"})",
                           "{\"fString\":\"caf\xc3\xa9\"}",
                           R"({"fString":"a\nb"})",
                           R"({"fDouble":1.5})",
                           R"({"fBytes":"AAE="})",
                           R"({"oString":"x"})",
                           R"({"optInt32":1})",
                           R"({"mStringInt64":{"a":"1"}})",
                           R"({"tTimestamp":"2020-01-01T00:00:00Z"})",
                           R"({"wInt64":"1"})",
                           R"({"fString":null})",
                           R"({"fInt32":1.0})",
                           R"({"fInt32":"042"})",
                           R"({"fInt32":-0})",
                           R"({"fInt32":2147483648})",
                           R"({"fUint32":-1})",
                           R"({"fInt32":1e2})",
                           R"({"fBool":"true"})",
                           R"({"fEnum":1})",
                           R"({"fEnum":"PURPLE"})",
                           R"({"unknown":1})",
                           R"({"customJson":"x"})",
                           R"({"fString":"a","f_string":"b"})",
                           R"({"fString":"a",})",
                           R"({"fString":"a"} x)",
                           R"({"fString":"a")",
                           R"([])",
                           R"({"fNested":[]})",
                           R"({"rString":"a"})",
                           R"({"rString":["a",null]})",
                           R"({"fBool":truex})",
                           R"({'fString':'a'})"}) {
    EXPECT_FALSE(CheckJson(json)) << json;
  }
}

TEST(FastJsonTest, RandomJsonMatchesProtobuf) {
  const std::vector<std::string> keys = {
      "fString",  "f_string", "fInt32",    "fInt64",     "fUint32", "fUint64", "fSint32", "fSint64",
      "fFixed32", "fFixed64", "fSfixed32", "fSfixed64",  "fBool",   "fEnum",   "rInt64",  "rString",
      "rEnum",    "fNested",  "rNested",   "customJSON", "fDouble", "oString", "nope"};
  const std::vector<std::string> values = {"0",
                                           "1",
                                           "-1",
                                           "\"7\"",
                                           "2147483647",
                                           "-2147483648",
                                           "4294967296",
                                           "9223372036854775807",
                                           "-9223372036854775809",
                                           "18446744073709551616",
                                           "\"x\"",
                                           "\"\"",
                                           "\"RED\"",
                                           "true",
                                           "false",
                                           "null",
                                           "[]",
                                           "[1,2]",
                                           "[\"a\"]",
                                           "[\"RED\",\"BLUE\"]",
                                           "{}",
                                           "{\"name\":\"q\"}",
                                           "[{}]",
                                           "1.5",
                                           "\"<>\\\"\"",
                                           "01",
                                           "-0",
                                           "\"-5\""};
  std::mt19937 rng(12345);
  int taken = 0;
  for (int i = 0; i < 4000; ++i) {
    std::string json = "{";
    int fields = static_cast<int>(rng() % 4);
    for (int j = 0; j < fields; ++j) {
      if (j > 0) json += rng() % 2 ? "," : " , ";
      json += "\"" + keys[rng() % keys.size()] + "\":" + values[rng() % values.size()];
    }
    json += "}";
    if (CheckJson(json)) ++taken;
  }
  EXPECT_GT(taken, 200);  // The comparison is not vacuous.
}

TEST(FastJsonTest, PrintsTheCommonShapes) {
  AllTypes m;
  m.set_f_string("hello");
  m.set_f_int64(42);
  m.add_r_string("a");
  m.add_r_string("b");
  EXPECT_TRUE(CheckBinary(m.SerializeAsString()));
  m.set_f_int32(-1);
  m.set_f_uint32(4000000000u);
  m.set_f_sint32(-3);
  m.set_f_sint64(-4);
  m.set_f_fixed32(5);
  m.set_f_fixed64(6);
  m.set_f_sfixed32(-7);
  m.set_f_sfixed64(-8);
  m.set_f_uint64(18446744073709551615ull);
  m.set_f_bool(true);
  m.set_f_enum(tipperary::testing::v1::GREEN);
  m.add_r_int64(-1);
  m.add_r_int64(2);
  m.add_r_enum(tipperary::testing::v1::RED);
  m.mutable_f_nested()->set_name("n<\"\\>");
  m.mutable_f_nested()->mutable_child();
  m.add_r_nested()->add_tags("t");
  m.add_r_nested();
  m.set_custom_json("c");
  m.set_camel_case_name("d");
  EXPECT_TRUE(CheckBinary(m.SerializeAsString()));
  EXPECT_TRUE(CheckBinary(m.SerializeAsString(), {.preserve_proto_field_names = true}));
  EXPECT_TRUE(CheckBinary(m.SerializeAsString(), {.enums_as_ints = true}));
  EXPECT_TRUE(CheckBinary(""));
  // Unpacked repeated scalars, and explicit zero values.
  EXPECT_TRUE(CheckBinary(std::string("\xa0\x01\x01\xa0\x01\x02\x20\x00", 8)));
  // Packed with no elements.
  EXPECT_TRUE(CheckBinary(std::string("\xa2\x01\x00", 3)));
}

TEST(FastJsonTest, PrintsFloatsAndDoublesAsProtobufDoes) {
  // Values whose %.6g (%.15g) reads back, values that need 9 (17) digits, exponents on both
  // sides of %g's switch to e-notation, subnormals, the extremes, signed zeros, and the
  // non-finite values protobuf quotes.
  const std::vector<double> specials = {0.0,
                                        -0.0,
                                        1.5,
                                        0.1,
                                        -0.2,
                                        1.0 / 3,
                                        123456.0,
                                        1234567.0,
                                        1e-4,
                                        1e-5,
                                        0.00012345678,
                                        1e15,
                                        1e16,
                                        1e17,
                                        3.4028234663852886e38,
                                        1.17549435e-38,
                                        1.4e-45,
                                        5e-324,
                                        2.2250738585072014e-308,
                                        1.7976931348623157e308,
                                        std::numeric_limits<double>::infinity(),
                                        -std::numeric_limits<double>::infinity(),
                                        std::numeric_limits<double>::quiet_NaN()};
  for (double v : specials) {
    AllTypes m;
    m.set_f_double(v);
    m.set_f_float(static_cast<float>(v));
    m.add_r_double(v);
    m.add_r_float(static_cast<float>(v));
    m.add_r_float(-static_cast<float>(v));
    EXPECT_TRUE(CheckBinary(m.SerializeAsString())) << v;
  }
  // Random bit patterns: every exponent, every kind of mantissa.
  std::mt19937_64 rng(2026);
  AllTypes m;
  for (int i = 0; i < 20000; ++i) {
    const uint64_t bits = rng();
    m.add_r_float(std::bit_cast<float>(static_cast<uint32_t>(bits)));
    m.add_r_double(std::bit_cast<double>(bits));
  }
  // Around the smallest normal float, where strtof's ERANGE decides protobuf's form.
  float up = std::numeric_limits<float>::min() / 4;
  float down = std::numeric_limits<float>::min();
  for (int i = 0; i < 2000; ++i) {
    m.add_r_float(up = std::nextafter(up, 1.0f));
    m.add_r_float(down = std::nextafter(down, 0.0f));
  }
  // Embedding-like values: small, most needing 9 digits.
  std::normal_distribution<float> normal(0.0f, 0.05f);
  for (int i = 0; i < 4000; ++i) m.add_r_float(normal(rng));
  EXPECT_TRUE(CheckBinary(m.SerializeAsString()));
  // Unpacked floats (wire type 5), as an older peer may send them.
  EXPECT_TRUE(CheckBinary(std::string("\xd5\x01\x00\x00\xc0\x3f\xd5\x01\xcd\xcc\xcc\x3d", 12)));
  // JSON numbers into float fields stay protobuf's to parse (ranges, "NaN", quoted numbers).
  EXPECT_FALSE(CheckJson(R"({"fFloat": 1.5})"));
  EXPECT_FALSE(CheckJson(R"({"rDouble": [1, 2]})"));
}

TEST(FastJsonTest, PrintsOptionalFieldsDurationsAndJsonValuesAsProtobufDoes) {
  // The shapes of the embedding responses: proto3 optional counters, a Duration, a
  // google.protobuf.Value holding a list of numbers (OpenAI's "embedding").
  for (int32_t opt : {0, 1, -5}) {
    AllTypes m;
    m.set_opt_int32(opt);
    EXPECT_TRUE(CheckBinary(m.SerializeAsString())) << opt;
  }
  const std::vector<std::pair<int64_t, int32_t>> durations = {{0, 0},
                                                              {1, 0},
                                                              {0, 500000000},
                                                              {0, -500000000},
                                                              {-3, -1000},
                                                              {12, 345},
                                                              {12, 345000},
                                                              {7, 1},
                                                              {-1, 0},
                                                              {315576000000, 999999999},
                                                              {-315576000000, -999999999}};
  for (auto [seconds, nanos] : durations) {
    AllTypes m;
    m.mutable_t_duration()->set_seconds(seconds);
    m.mutable_t_duration()->set_nanos(nanos);
    EXPECT_TRUE(CheckBinary(m.SerializeAsString())) << seconds << " " << nanos;
  }
  AllTypes m;
  pb::ListValue* list = m.mutable_t_value()->mutable_list_value();
  for (double v : {0.0, -0.0, 0.1, 1e300, 2.5e-310, -0.0123456789012345678}) {
    list->add_values()->set_number_value(v);
  }
  list->add_values()->set_number_value(static_cast<float>(0.0123456789));  // a float, widened
  list->add_values()->set_string_value("s<>");
  list->add_values()->set_bool_value(true);
  list->add_values()->set_bool_value(false);
  list->add_values()->set_null_value(pb::NULL_VALUE);
  list->add_values()->mutable_list_value();
  list->add_values()->mutable_list_value()->add_values()->set_number_value(3);
  m.mutable_t_list()->add_values()->set_string_value("x");
  EXPECT_TRUE(CheckBinary(m.SerializeAsString()));
  m.Clear();
  m.mutable_t_list();
  m.mutable_t_value()->set_number_value(42);
  EXPECT_TRUE(CheckBinary(m.SerializeAsString()));
}

TEST(FastJsonTest, LeavesOddMessagesToProtobuf) {
  AllTypes m;
  m.add_r_bytes()->push_back(1);
  EXPECT_FALSE(CheckBinary(m.SerializeAsString()));
  m.Clear();
  m.set_f_string("caf\xc3\xa9");
  EXPECT_FALSE(CheckBinary(m.SerializeAsString()));
  m.Clear();
  m.set_f_string("a\nb");
  EXPECT_FALSE(CheckBinary(m.SerializeAsString()));
  m.Clear();
  m.set_o_string("x");
  EXPECT_FALSE(CheckBinary(m.SerializeAsString()));
  // Values protobuf rejects or reads its own way: an empty Value, a non-finite number, a
  // Struct, a Duration out of range or with mixed signs.
  m.Clear();
  m.mutable_t_value();
  EXPECT_FALSE(CheckBinary(m.SerializeAsString()));
  m.mutable_t_value()->set_number_value(std::numeric_limits<double>::infinity());
  EXPECT_FALSE(CheckBinary(m.SerializeAsString()));
  m.Clear();
  (*m.mutable_t_struct()->mutable_fields())["a"].set_bool_value(true);
  EXPECT_FALSE(CheckBinary(m.SerializeAsString()));
  m.Clear();
  m.mutable_t_duration()->set_seconds(315576000001);
  EXPECT_FALSE(CheckBinary(m.SerializeAsString()));
  m.mutable_t_duration()->set_seconds(-1);
  m.mutable_t_duration()->set_nanos(5);
  EXPECT_FALSE(CheckBinary(m.SerializeAsString()));
  m.Clear();
  (*m.mutable_m_string_int64())["a"] = 1;
  EXPECT_FALSE(CheckBinary(m.SerializeAsString()));
  m.Clear();
  m.set_f_enum(static_cast<tipperary::testing::v1::Color>(77));
  EXPECT_FALSE(CheckBinary(m.SerializeAsString()));
  // A singular field twice, a repeated field split, an unknown field, truncation.
  EXPECT_FALSE(CheckBinary(std::string("\x18\x01\x72\x01\x61\x18\x02", 7)));
  EXPECT_FALSE(CheckBinary(std::string("\xa0\x01\x01\x18\x01\xa0\x01\x02", 8)));
  EXPECT_FALSE(CheckBinary(std::string("\xf8\x07\x01", 3)));
  EXPECT_FALSE(CheckBinary(std::string("\x72\x05\x61", 3)));
  EXPECT_FALSE(CheckBinary(std::string("\x18", 1)));
}

TEST(FastJsonTest, RandomMessagesMatchProtobuf) {
  std::mt19937 rng(54321);
  const std::vector<std::string> strings = {"",      "a",         "hello world",
                                            "<tag>", "q\"uote\\", "~!@#$%^&*()_+`-={}|[]:;'?,./"};
  int taken = 0;
  for (int i = 0; i < 2000; ++i) {
    AllTypes m;
    int fields = static_cast<int>(rng() % 6);
    for (int j = 0; j < fields; ++j) {
      switch (rng() % 12) {
        case 0:
          m.set_f_string(strings[rng() % strings.size()]);
          break;
        case 1:
          m.set_f_int32(static_cast<int32_t>(rng()));
          break;
        case 2:
          m.set_f_int64(static_cast<int64_t>(uint64_t{rng()} << 33 | rng()));
          break;
        case 3:
          m.set_f_sint64(-static_cast<int64_t>(rng()));
          break;
        case 4:
          m.add_r_string(strings[rng() % strings.size()]);
          break;
        case 5:
          m.add_r_int64(static_cast<int32_t>(rng()));
          break;
        case 6:
          m.add_r_enum(static_cast<tipperary::testing::v1::Color>(rng() % 4));
          break;
        case 7:
          m.mutable_f_nested()->set_count(static_cast<int32_t>(rng()));
          break;
        case 8:
          m.add_r_nested()->mutable_child()->add_tags(strings[rng() % strings.size()]);
          break;
        case 9:
          m.set_f_bool(rng() % 2 == 0);
          break;
        case 10:
          m.set_f_fixed64(uint64_t{rng()} << 32 | rng());
          break;
        default:
          m.add_r_bytes()->push_back(0x62);
          break;
      }
    }
    std::string bin = m.SerializeAsString();
    if (CheckBinary(bin)) ++taken;
    // Each binary also round-trips through the fast JSON encoder when both take it.
    std::string json;
    if (FastBinaryToJson(AllTypesDescriptor(), bin, {}, kMaxDepth, &json)) CheckJson(json);
  }
  EXPECT_GT(taken, 500);
}

}  // namespace
}  // namespace tipperary::transcoder
