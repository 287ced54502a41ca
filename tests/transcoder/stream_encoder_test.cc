#include "tipperary/transcoder/stream_encoder.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "accept.h"
#include "google/rpc/status.pb.h"
#include "test_schema.h"
#include "tipperary/testing/v1/test_service.pb.h"

namespace tipperary::transcoder {
namespace {

using internal::AcceptQuality;
using testing::RouteFor;
using testing::TestRoutes;
namespace v1 = ::tipperary::testing::v1;

std::string Thing(const std::string& name, int64_t size) {
  v1::Thing thing;
  thing.set_name(name);
  thing.set_size(size);
  return thing.SerializeAsString();
}

class StreamEncoderTest : public ::testing::Test {
 protected:
  StreamEncoder Encoder(StreamFormat format, bool pretty = false) {
    return StreamEncoder(transcoder_, route_, format, pretty);
  }
  Transcoder transcoder_{testing::TestSchema(), TranscoderOptions{}};
  const Route& route_ = RouteFor(*TestRoutes(), "GET", "/v1/stream");
};

TEST_F(StreamEncoderTest, JsonArray) {
  StreamEncoder e = Encoder(StreamFormat::kJsonArray);
  EXPECT_EQ(e.ContentType(""), "application/json");
  EXPECT_EQ(*e.Message(Thing("a", 1)), R"([{"name":"a","size":"1"})");
  EXPECT_EQ(*e.Message(Thing("b", 2)), R"(,{"name":"b","size":"2"})");
  EXPECT_EQ(e.End(absl::StatusCode::kOk, "", ""), "]");
  EXPECT_EQ(e.messages(), 2u);
  EXPECT_EQ(Encoder(StreamFormat::kJsonArray).End(absl::StatusCode::kOk, "", ""), "[]");
}

TEST_F(StreamEncoderTest, JsonArrayFailureLeavesTheArrayOpen) {
  StreamEncoder e = Encoder(StreamFormat::kJsonArray);
  ASSERT_TRUE(e.Message(Thing("a", 1)).ok());
  EXPECT_EQ(e.End(absl::StatusCode::kAborted, "gone", ""),
            "\n{\"error\":{\"code\":10,\"message\":\"gone\",\"details\":[]}}\n");
}

TEST_F(StreamEncoderTest, JsonArrayPretty) {
  StreamEncoder e = Encoder(StreamFormat::kJsonArray, /*pretty=*/true);
  std::string body = *e.Message(Thing("a", 1));
  body += e.End(absl::StatusCode::kOk, "", "");
  EXPECT_EQ(body, "[\n{\n \"name\": \"a\",\n \"size\": \"1\"\n}\n]\n");
}

TEST_F(StreamEncoderTest, GrpcGatewayEnvelope) {
  StreamEncoder e = Encoder(StreamFormat::kJsonEnvelope);
  EXPECT_EQ(e.ContentType(""), "application/json");
  EXPECT_EQ(*e.Message(Thing("a", 1)), "{\"result\":{\"name\":\"a\",\"size\":\"1\"}}\n");
  EXPECT_EQ(e.End(absl::StatusCode::kOk, "", ""), "");
  EXPECT_EQ(e.End(absl::StatusCode::kFailedPrecondition, "stop", ""),
            "{\"error\":{\"code\":9,\"message\":\"stop\",\"details\":[]}}\n");
  StreamEncoder pretty = Encoder(StreamFormat::kJsonEnvelope, /*pretty=*/true);
  EXPECT_EQ(*pretty.Message(Thing("a", 1)),
            "{\n \"result\": {\n  \"name\": \"a\",\n  \"size\": \"1\"\n }\n}\n");
}

TEST_F(StreamEncoderTest, NdjsonIsOneMessagePerLineEvenWhenPretty) {
  StreamEncoder e = Encoder(StreamFormat::kNdjson, /*pretty=*/true);
  EXPECT_EQ(e.ContentType(""), "application/x-ndjson");
  EXPECT_EQ(*e.Message(Thing("a", 1)), "{\"name\":\"a\",\"size\":\"1\"}\n");
  EXPECT_EQ(e.End(absl::StatusCode::kOk, "", ""), "");
  EXPECT_EQ(e.End(absl::StatusCode::kInternal, "x", ""),
            "{\"error\":{\"code\":13,\"message\":\"x\",\"details\":[]}}\n");
  EXPECT_EQ(e.Heartbeat(), "");
}

TEST_F(StreamEncoderTest, ServerSentEvents) {
  StreamEncoder e = Encoder(StreamFormat::kSse, /*pretty=*/true);
  EXPECT_EQ(e.ContentType(""), "text/event-stream");
  EXPECT_EQ(*e.Message(Thing("a", 1)), "data: {\"name\":\"a\",\"size\":\"1\"}\n\n");
  EXPECT_EQ(e.Heartbeat(), ": heartbeat\n\n");
  EXPECT_EQ(e.End(absl::StatusCode::kOk, "", ""),
            "event: end\ndata: {\"code\":0,\"message\":\"\",\"details\":[]}\n\n");
  // A message with a line break stays on the data line: JSON escapes it.
  EXPECT_EQ(e.End(absl::StatusCode::kUnavailable, "two\nlines", ""),
            "event: error\ndata: {\"code\":14,\"message\":\"two\\nlines\",\"details\":[]}\n\n");
}

TEST_F(StreamEncoderTest, ProtobufFrames) {
  StreamEncoder e = Encoder(StreamFormat::kProtobuf);
  EXPECT_EQ(e.ContentType(""), kProtobufStreamContentType);
  const std::string bytes = Thing("a", 1);
  std::string chunk = *e.Message(bytes);
  // varint(len(frame)) + StreamFrame{message (field 1) = the serialized Thing}.
  ASSERT_LT(bytes.size(), 126u);
  EXPECT_EQ(static_cast<size_t>(chunk[0]), bytes.size() + 2);
  EXPECT_EQ(chunk[1], '\x0a');
  EXPECT_EQ(static_cast<size_t>(chunk[2]), bytes.size());
  EXPECT_EQ(chunk.substr(3), bytes);
  // Always a status frame at the end: varint(len) + StreamFrame{status (field 2)}.
  google::rpc::Status status;
  status.set_code(9);
  status.set_message("stop");
  const std::string status_bytes = status.SerializeAsString();
  EXPECT_EQ(e.End(absl::StatusCode::kFailedPrecondition, "stop", ""),
            std::string(1, static_cast<char>(status_bytes.size() + 2)) + "\x12" +
                std::string(1, static_cast<char>(status_bytes.size())) + status_bytes);
  EXPECT_EQ(e.End(absl::StatusCode::kOk, "", ""), std::string("\x02\x12\x00", 3));
  EXPECT_EQ(e.Heartbeat(), "");
}

TEST_F(StreamEncoderTest, BadMessagesFailInEveryFormat) {
  for (StreamFormat f : {StreamFormat::kJsonArray, StreamFormat::kJsonEnvelope,
                         StreamFormat::kNdjson, StreamFormat::kSse}) {
    StreamEncoder e = Encoder(f);
    EXPECT_FALSE(e.Message("\xff\xff\xff\xff\xff").ok());
    EXPECT_EQ(e.messages(), 0u);
  }
}

TEST(AcceptTest, Quality) {
  EXPECT_EQ(AcceptQuality("application/json", "application/json"), 1000);
  EXPECT_EQ(AcceptQuality("Application/JSON", "application/json"), 1000);
  EXPECT_EQ(AcceptQuality("text/html", "application/json"), -1);
  EXPECT_EQ(AcceptQuality("*/*;q=0.1", "application/json"), 100);
  EXPECT_EQ(AcceptQuality("application/*;q=0.5, */*;q=0.1", "application/json"), 500);
  // The most specific range wins, whatever its order or weight.
  EXPECT_EQ(AcceptQuality("application/json;q=0, */*", "application/json"), 0);
  EXPECT_EQ(AcceptQuality("*/*;q=0, text/event-stream", "text/event-stream"), 1000);
  EXPECT_EQ(AcceptQuality("text/event-stream; charset=utf-8; q=0.7", "text/event-stream"), 700);
  EXPECT_EQ(AcceptQuality("text/event-stream;Q=0.25", "text/event-stream"), 250);
  // Quoted parameter values may hold separators.
  EXPECT_EQ(
      AcceptQuality("text/plain;x=\"a,b;q=0\";q=0.3, text/event-stream;q=0.2", "text/event-stream"),
      200);
  // Malformed elements are skipped, never fatal.
  EXPECT_EQ(
      AcceptQuality(",,, ;q=1, /json, application/, text/event-stream;q=2", "text/event-stream"),
      -1);
  EXPECT_EQ(AcceptQuality("text/event-stream;q=0.0001", "text/event-stream"), -1);
  EXPECT_EQ(AcceptQuality("text/event-stream;q=1.000", "text/event-stream"), 1000);
  EXPECT_EQ(AcceptQuality("text/event-stream;q=1.001", "text/event-stream"), -1);
  EXPECT_EQ(AcceptQuality("", "text/event-stream"), -1);
}

TEST(AcceptTest, StreamFormat) {
  const auto array = JsonStreamFormat::kArray;
  EXPECT_EQ(StreamFormatFor("", array), StreamFormat::kJsonArray);
  EXPECT_EQ(StreamFormatFor("", JsonStreamFormat::kGrpcGatewayEnvelope),
            StreamFormat::kJsonEnvelope);
  EXPECT_EQ(StreamFormatFor("*/*", array), StreamFormat::kJsonArray);
  EXPECT_EQ(StreamFormatFor("text/event-stream", array), StreamFormat::kSse);
  EXPECT_EQ(StreamFormatFor("application/x-ndjson", array), StreamFormat::kNdjson);
  EXPECT_EQ(StreamFormatFor("application/jsonl", array), StreamFormat::kNdjson);
  EXPECT_EQ(StreamFormatFor("application/x-protobuf", array), StreamFormat::kProtobuf);
  EXPECT_EQ(StreamFormatFor("application/vnd.google.protobuf", array), StreamFormat::kProtobuf);
  EXPECT_EQ(StreamFormatFor("application/json, text/event-stream;q=0.9", array),
            StreamFormat::kJsonArray);
  EXPECT_EQ(StreamFormatFor("application/json;q=0.5, text/event-stream", array),
            StreamFormat::kSse);
  // A browser's default Accept: */* among others, nothing streaming named: JSON.
  EXPECT_EQ(
      StreamFormatFor("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", array),
      StreamFormat::kJsonArray);
  // Nothing acceptable: JSON anyway (RFC 9110 §12.5.1 lets a server ignore Accept).
  EXPECT_EQ(StreamFormatFor("image/png", array), StreamFormat::kJsonArray);
  EXPECT_EQ(StreamFormatFor("application/json;q=0", array), StreamFormat::kJsonArray);
  EXPECT_EQ(StreamFormatFor("*/*;q=0, application/x-ndjson;q=0.1", array), StreamFormat::kNdjson);
}

TEST(AcceptTest, ResponseFormat) {
  EXPECT_EQ(ResponseFormatFor(""), ResponseFormat::kJson);
  EXPECT_EQ(ResponseFormatFor("application/x-protobuf"), ResponseFormat::kProtobuf);
  EXPECT_EQ(ResponseFormatFor("application/protobuf, application/json;q=0.5"),
            ResponseFormat::kProtobuf);
  EXPECT_EQ(ResponseFormatFor("application/x-protobuf;q=0.5, application/json"),
            ResponseFormat::kJson);
  // The substring match this replaces took q=0 for a yes.
  EXPECT_EQ(ResponseFormatFor("application/x-protobuf;q=0, */*"), ResponseFormat::kJson);
  EXPECT_EQ(ResponseFormatFor("*/*"), ResponseFormat::kJson);
  EXPECT_EQ(ResponseFormatFor("text/event-stream"), ResponseFormat::kJson);
}

}  // namespace
}  // namespace tipperary::transcoder
