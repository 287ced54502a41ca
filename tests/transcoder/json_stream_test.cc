#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

#include "tipperary/transcoder/json_stream_splitter.h"

namespace tipperary::transcoder {
namespace {

using ::testing::HasSubstr;

// The values of `body` fed in pieces of `piece` bytes (0: whole), or the error.
std::vector<std::string> SplitInPieces(std::string_view body, bool array_allowed, size_t piece) {
  JsonStreamSplitter splitter(array_allowed, 1 << 20);
  std::vector<std::string> values;
  auto collect = [&values](std::string_view value) {
    values.emplace_back(value);
    return absl::OkStatus();
  };
  absl::Status status;
  for (size_t i = 0; status.ok() && i < body.size(); i += piece == 0 ? body.size() : piece) {
    status = splitter.Feed(body.substr(i, piece == 0 ? body.size() : piece), collect);
  }
  if (status.ok()) status = splitter.Finish(collect);
  if (!status.ok()) return {"error: " + std::string(status.message())};
  EXPECT_EQ(splitter.count(), values.size());
  return values;
}

// Whole, and a byte at a time: a value's end is found wherever the reads cut it.
std::vector<std::string> Split(std::string_view body, bool array_allowed = true) {
  std::vector<std::string> whole = SplitInPieces(body, array_allowed, 0);
  EXPECT_EQ(SplitInPieces(body, array_allowed, 1), whole) << body;
  EXPECT_EQ(SplitInPieces(body, array_allowed, 3), whole) << body;
  return whole;
}

TEST(JsonStreamSplitterTest, NdjsonAndConcatenatedValues) {
  using V = std::vector<std::string>;
  EXPECT_EQ(Split(""), V{});
  EXPECT_EQ(Split(" \n"), V{});
  EXPECT_EQ(Split("{\"a\":1}\n{\"b\":[1,{\"c\":\"}\"}]}\n"),
            (V{"{\"a\":1}", "{\"b\":[1,{\"c\":\"}\"}]}"}));
  EXPECT_EQ(Split("{}{} {}\r\n"), (V{"{}", "{}", "{}"}));
  EXPECT_EQ(Split("{\"s\":\"a\\\"}{\"}"), (V{"{\"s\":\"a\\\"}{\"}"}));
  EXPECT_EQ(Split("\"x\" 1 true"), (V{"\"x\"", "1", "true"}));
  EXPECT_EQ(Split("{\"a\":1"), V{"error: message 1 of the stream is not a JSON value"});
  EXPECT_EQ(Split("{} }"), V{"error: message 2 of the stream is not a JSON value"});
}

TEST(JsonStreamSplitterTest, ArrayOfMessages) {
  using V = std::vector<std::string>;
  EXPECT_EQ(Split("[]"), V{});
  EXPECT_EQ(Split(" [ {\"a\":1} , {\"b\":2}]\n"), (V{"{\"a\":1}", "{\"b\":2}"}));
  EXPECT_EQ(Split("[[1,2],[3]]"), (V{"[1,2]", "[3]"}));
  EXPECT_EQ(Split("[{} {}]"), V{"error: expected ',' or ']' after message 1 of the stream"});
  EXPECT_EQ(Split("[{},"), V{"error: the JSON array never ends"});
  EXPECT_EQ(Split("[{}] {}"), V{"error: unexpected bytes after the JSON array of messages"});
  // A request type that is a JSON array itself: the array is one message.
  EXPECT_EQ(Split("[1,2]\n[3]", /*array_allowed=*/false), (V{"[1,2]", "[3]"}));
}

TEST(JsonStreamSplitterTest, ValueOverTheLimitIsResourceExhausted) {
  JsonStreamSplitter splitter(/*array_allowed=*/true, 8);
  int values = 0;
  auto count = [&values](std::string_view) {
    ++values;
    return absl::OkStatus();
  };
  EXPECT_TRUE(splitter.Feed("{\"a\":1}\n{\"b\":", count).ok());
  EXPECT_EQ(values, 1);
  absl::Status status = splitter.Feed("\"0123456789\"", count);
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(status.message()), HasSubstr("message 2 of the stream is larger"));
  // Whitespace between values is never held.
  JsonStreamSplitter spaces(/*array_allowed=*/false, 8);
  for (int i = 0; i < 100; ++i) EXPECT_TRUE(spaces.Feed("          ", count).ok());
}

TEST(JsonStreamSplitterTest, HandlerErrorStopsTheSplitter) {
  JsonStreamSplitter splitter(/*array_allowed=*/true, 1 << 10);
  auto refuse = [](std::string_view) { return absl::InvalidArgumentError("no"); };
  EXPECT_EQ(splitter.Feed("{}{}", refuse).message(), "no");
  EXPECT_EQ(splitter.Feed("{}", refuse).message(), "no");
  EXPECT_EQ(splitter.Finish(refuse).message(), "no");
  EXPECT_EQ(splitter.count(), 1u);
}

}  // namespace
}  // namespace tipperary::transcoder
