// The proto3 JSON mapping through the transcoder, on AllTypes.
#include <gmock/gmock.h>
#include <google/protobuf/text_format.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include "test_schema.h"
#include "tipperary/testing/v1/test_service.pb.h"
#include "tipperary/transcoder/transcoder.h"

namespace tipperary::transcoder {
namespace {

namespace v1 = ::tipperary::testing::v1;
using ::google::protobuf::util::MessageDifferencer;
using ::testing::HasSubstr;
using testing::RouteFor;
using testing::TestRoutes;
using testing::TestSchema;

v1::AllTypes Everything() {
  v1::AllTypes m;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(
      R"pb(
        f_double: 1.25
        f_float: -2.5
        f_int32: -3
        f_int64: -9007199254740993
        f_uint32: 4000000000
        f_uint64: 18446744073709551615
        f_sint32: -7
        f_sint64: -8
        f_fixed32: 9
        f_fixed64: 10
        f_sfixed32: -11
        f_sfixed64: -12
        f_bool: true
        f_string: "héllo \"q\"\n"
        f_bytes: "\000\001\377"
        f_enum: BLUE
        f_nested {
          name: "n"
          count: 1
          tags: "t"
          child { name: "c" color: RED }
        }
        r_int64: [ 1, -2 ]
        r_string: [ "a", "" ]
        r_enum: [ RED, GREEN ]
        r_nested { name: "r1" }
        r_nested { count: 2 }
        r_double: [ 0.5, -1 ]
        r_bytes: "xyz"
        m_string_int64 { key: "k" value: 5 }
        m_int32_nested {
          key: -1
          value { name: "m" }
        }
        m_bool_string { key: true value: "yes" }
        o_nested { name: "oneof" }
        opt_int32: 0
        t_timestamp { seconds: 1700000000 nanos: 123000000 }
        t_duration { seconds: -1 nanos: -500000000 }
        t_struct {
          fields {
            key: "a"
            value { number_value: 1 }
          }
          fields {
            key: "b"
            value {
              list_value {
                values { string_value: "x" }
                values { null_value: NULL_VALUE }
              }
            }
          }
          fields {
            key: "c"
            value {
              struct_value {
                fields {
                  key: "d"
                  value { bool_value: true }
                }
              }
            }
          }
        }
        t_value { string_value: "v" }
        t_list {
          values { number_value: 2 }
          values { bool_value: false }
        }
        t_field_mask { paths: "f_nested.name" paths: "camel_case_name" }
        t_empty {}
        t_null: NULL_VALUE
        w_int64 { value: -64 }
        w_uint64 { value: 64 }
        w_int32 { value: 0 }
        w_uint32 { value: 32 }
        w_double { value: 1.5 }
        w_float { value: 2.5 }
        w_bool { value: false }
        w_string { value: "" }
        w_bytes { value: "\001" }
        camel_case_name: "camel"
        custom_json: "custom"
      )pb",
      &m));
  v1::Nested packed;
  packed.set_name("packed");
  packed.set_count(7);
  m.mutable_t_any()->PackFrom(packed);
  return m;
}

class JsonMappingTest : public ::testing::Test {
 protected:
  std::string ToJson(const v1::AllTypes& m, const Transcoder& t, bool pretty = false) {
    auto out = t.BuildResponseBody(echo_, m.SerializeAsString(), ResponseFormat::kJson, pretty);
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() ? out->body : "";
  }
  absl::StatusOr<v1::AllTypes> FromJson(const std::string& json, const Transcoder& t) {
    auto bin = t.BuildRequestMessage(echo_, {}, "", json, BodyFormat::kJson, "application/json");
    if (!bin.ok()) return bin.status();
    v1::AllTypes m;
    if (!m.ParseFromString(*bin)) return absl::InternalError("unparsable");
    return m;
  }

  const Route& echo_ = RouteFor(*TestRoutes(), "POST", "/v1/echo");
  Transcoder default_{TestSchema(), TranscoderOptions{}};
};

TEST_F(JsonMappingTest, RoundTripsEveryType) {
  v1::AllTypes m = Everything();
  std::string json = ToJson(m, default_);
  for (
      const char* piece :
      {R"("fInt64":"-9007199254740993")",
       R"("fUint64":"18446744073709551615")",
       R"("fUint32":4000000000)",
       R"("fBytes":"AAH/")",
       R"("fEnum":"BLUE")",
       R"("rInt64":["1","-2"])",
       R"("mStringInt64":{"k":"5"})",
       R"("mInt32Nested":{"-1":{"name":"m"}})",
       R"("mBoolString":{"true":"yes"})",
       R"("tTimestamp":"2023-11-14T22:13:20.123Z")",
       R"("tDuration":"-1.500s")",
       R"("tAny":{"@type":"type.googleapis.com/tipperary.testing.v1.Nested","name":"packed","count":"7"})",
       R"("a":1)",
       R"("b":["x",null])",
       R"("c":{"d":true})",
       R"("tValue":"v")",
       R"("tList":[2,false])",
       R"("tFieldMask":"fNested.name,camelCaseName")",
       R"("tEmpty":{})",
       R"("wInt64":"-64")",
       R"("wInt32":0)",
       R"("wBool":false)",
       R"("wString":"")",
       R"("wBytes":"AQ==")",
       R"("camelCaseName":"camel")",
       R"("customJSON":"custom")",
       R"("optInt32":0)",
       R"("oNested":{"name":"oneof"})",
       R"("fString":"héllo \"q\"\n")"}) {
    EXPECT_THAT(json, HasSubstr(piece));
  }
  absl::StatusOr<v1::AllTypes> back = FromJson(json, default_);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(MessageDifferencer::Equals(*back, m)) << back->DebugString() << "\nvs\n"
                                                    << m.DebugString();

  // The binary path gives the same message.
  auto bin = default_.BuildRequestMessage(echo_, {}, "", m.SerializeAsString(),
                                          BodyFormat::kProtobuf, "application/x-protobuf");
  ASSERT_TRUE(bin.ok());
  v1::AllTypes from_bin;
  ASSERT_TRUE(from_bin.ParseFromString(*bin));
  EXPECT_TRUE(MessageDifferencer::Equals(from_bin, m));
}

TEST_F(JsonMappingTest, AcceptsAlternativeForms) {
  absl::StatusOr<v1::AllTypes> m = FromJson(
      R"({"f_int64": 12, "fUint64": "13", "fBytes": "-_8", "fEnum": 2, "f_nested": {"count": "3"},
          "tNull": null, "fDouble": "NaN", "fFloat": "-Infinity", "customJSON": "c",
          "custom_json": "c2", "wInt32": 5, "rEnum": ["RED", 3], "fBool": true})",
      default_);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->f_int64(), 12);
  EXPECT_EQ(m->f_uint64(), 13u);
  EXPECT_EQ(m->f_bytes(), "\xfb\xff");
  EXPECT_EQ(m->f_enum(), v1::GREEN);
  EXPECT_EQ(m->f_nested().count(), 3);
  EXPECT_TRUE(std::isnan(m->f_double()));
  EXPECT_TRUE(std::isinf(m->f_float()));
  EXPECT_EQ(m->w_int32().value(), 5);
  EXPECT_EQ(m->r_enum(1), v1::BLUE);
}

TEST_F(JsonMappingTest, UnknownFields) {
  absl::StatusOr<v1::AllTypes> strict = FromJson(R"({"fString":"x","nope":1})", default_);
  ASSERT_FALSE(strict.ok());
  EXPECT_EQ(strict.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(strict.status().message()), HasSubstr("nope"));

  TranscoderOptions options;
  options.ignore_unknown_fields = true;
  Transcoder lenient(TestSchema(), options);
  absl::StatusOr<v1::AllTypes> ok = FromJson(R"({"fString":"x","nope":{"a":[1]}})", lenient);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->f_string(), "x");
}

TEST_F(JsonMappingTest, PrintOptions) {
  v1::AllTypes m;
  m.set_f_enum(v1::RED);
  m.set_camel_case_name("c");
  EXPECT_EQ(ToJson(m, default_), R"({"fEnum":"RED","camelCaseName":"c"})");

  TranscoderOptions options;
  options.preserve_proto_field_names = true;
  options.enums_as_ints = true;
  Transcoder names(TestSchema(), options);
  EXPECT_EQ(ToJson(m, names), R"({"f_enum":1,"camel_case_name":"c"})");

  TranscoderOptions all;
  all.always_print_primitive_fields = true;
  Transcoder prim(TestSchema(), all);
  std::string json = ToJson(v1::AllTypes(), prim);
  EXPECT_THAT(json, HasSubstr(R"("fInt64":"0")"));
  EXPECT_THAT(json, HasSubstr(R"("rString":[])"));
  EXPECT_THAT(json, HasSubstr(R"("fEnum":"COLOR_UNSPECIFIED")"));

  EXPECT_EQ(ToJson(m, default_, true), "{\n \"fEnum\": \"RED\",\n \"camelCaseName\": \"c\"\n}\n");
}

}  // namespace
}  // namespace tipperary::transcoder
