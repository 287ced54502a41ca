// TEI's request shapes as the worker reads them (tei_inputs.h): what TEI's untagged enums accept,
// its batch size limit and its errors, with their error_type.
#include "tei_inputs.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "google/protobuf/util/json_util.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "status_details.h"

namespace tipperary::worker {
namespace {

using google::protobuf::Value;
using ::testing::HasSubstr;

Value Json(const std::string& json) {
  Value v;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(json, &v).ok()) << json;
  return v;
}

// The ErrorInfo reason a refusal carries to the proxy.
std::string Reason(const absl::Status& status) {
  google::rpc::Status details;
  if (!details.ParseFromString(SerializedDetails(status))) return "";
  for (const auto& any : details.details()) {
    google::rpc::ErrorInfo info;
    if (any.UnpackTo(&info)) return info.reason();
  }
  return "";
}

TEST(TeiInputs, EmbedInputsTakeTeisShapes) {
  auto ok = [](const std::string& json) {
    absl::StatusOr<std::vector<TeiInput>> inputs = TeiEmbedInputs(Json(json), 3);
    EXPECT_TRUE(inputs.ok()) << json << ": " << inputs.status();
    return inputs.ok() ? *inputs : std::vector<TeiInput>{};
  };
  std::vector<TeiInput> one = ok(R"("hello")");
  ASSERT_EQ(one.size(), 1u);
  EXPECT_FALSE(one[0].is_ids);
  EXPECT_EQ(one[0].text, "hello");
  // An array of numbers is one input of ids; arrays of strings and id arrays mix.
  std::vector<TeiInput> ids = ok("[101, 4294967295]");
  ASSERT_EQ(ids.size(), 1u);
  EXPECT_TRUE(ids[0].is_ids);
  EXPECT_EQ(ids[0].ids, (std::vector<int64_t>{101, 4294967295}));
  std::vector<TeiInput> mixed = ok(R"(["a", [1, 2], ""])");
  ASSERT_EQ(mixed.size(), 3u);
  EXPECT_EQ(mixed[0].text, "a");
  EXPECT_EQ(mixed[1].ids, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(mixed[2].text, "");  // Refused when tokenised, as TEI does.
  // A single input is never a batch: 4 ids pass a batch limit of 3.
  EXPECT_EQ(ok("[1, 2, 3, 4]")[0].ids.size(), 4u);
}

TEST(TeiInputs, EmbedInputsRefuseWithTeisErrors) {
  struct Case {
    const char* json;
    const char* reason;
    const char* message;
  };
  for (const Case& c : std::vector<Case>{
           {"[]", "EMPTY", "`inputs` cannot be empty"},
           {R"(["a", "b", "c", "d"])", "VALIDATION", "batch size 4 > maximum allowed batch size 3"},
           {"5", "VALIDATION", "`inputs` must be a string, an array of token ids"},
           {"null", "VALIDATION", "`inputs` is required"},
           {R"({"a": 1})", "VALIDATION", "`inputs` must be a string"},
           {R"(["a", 5])", "VALIDATION", "(inputs[1] is neither)"},
           {"[1, -2]", "VALIDATION", "inputs[1] must be a token id"},
           {"[1.5]", "VALIDATION", "inputs[0] must be a token id"},
           {"[4294967296]", "VALIDATION", "inputs[0] must be a token id"},
           {R"(["a", [1, "b"]])", "VALIDATION", "inputs[1][1] must be a token id"},
       }) {
    absl::StatusOr<std::vector<TeiInput>> inputs = TeiEmbedInputs(Json(c.json), 3);
    ASSERT_FALSE(inputs.ok()) << c.json;
    EXPECT_EQ(inputs.status().code(), absl::StatusCode::kInvalidArgument) << c.json;
    EXPECT_EQ(Reason(inputs.status()), c.reason) << c.json;
    EXPECT_THAT(std::string(inputs.status().message()), HasSubstr(c.message)) << c.json;
  }
}

TEST(TeiInputs, TokenizeInputsAreAStringOrStrings) {
  EXPECT_EQ(*TeiTokenizeInputs(Json(R"("a")"), 2), (std::vector<std::string>{"a"}));
  EXPECT_EQ(*TeiTokenizeInputs(Json(R"(["a", "b"])"), 2), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(Reason(TeiTokenizeInputs(Json("[]"), 2).status()), "EMPTY");
  EXPECT_EQ(Reason(TeiTokenizeInputs(Json(R"(["a", "b", "c"])"), 2).status()), "VALIDATION");
  EXPECT_EQ(Reason(TeiTokenizeInputs(Json("[1]"), 2).status()), "VALIDATION");
  EXPECT_EQ(Reason(TeiTokenizeInputs(Json("1"), 2).status()), "VALIDATION");
}

TEST(TeiInputs, DecodeIdsAreAListOrLists) {
  EXPECT_EQ(*TeiDecodeIds(Json("[1, 2]"), 2), (std::vector<std::vector<int64_t>>{{1, 2}}));
  EXPECT_EQ(*TeiDecodeIds(Json("[[1], [2, 3]]"), 2),
            (std::vector<std::vector<int64_t>>{{1}, {2, 3}}));
  absl::Status empty = TeiDecodeIds(Json("[]"), 2).status();
  EXPECT_EQ(Reason(empty), "EMPTY");
  EXPECT_EQ(empty.message(), "`input_ids` cannot be empty");
  EXPECT_EQ(Reason(TeiDecodeIds(Json("[[1], []]"), 2).status()), "EMPTY");
  EXPECT_EQ(Reason(TeiDecodeIds(Json("[[1], [2], [3]]"), 2).status()), "VALIDATION");
  EXPECT_EQ(Reason(TeiDecodeIds(Json("[[1], 2]"), 2).status()), "VALIDATION");
  EXPECT_EQ(Reason(TeiDecodeIds(Json(R"("12")"), 2).status()), "VALIDATION");
  EXPECT_EQ(Reason(TeiDecodeIds(Json("[0.5]"), 2).status()), "VALIDATION");
}

TEST(TeiInputs, ErrorsCarryTheirTypeAndCode) {
  EXPECT_EQ(TeiValidation("x").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Reason(TeiValidation("x")), "VALIDATION");
  EXPECT_EQ(TeiEmpty("x").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Reason(TeiEmpty("x")), "EMPTY");
  EXPECT_EQ(TeiUnhealthy("x").code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(Reason(TeiUnhealthy("x")), "UNHEALTHY");
}

}  // namespace
}  // namespace tipperary::worker
