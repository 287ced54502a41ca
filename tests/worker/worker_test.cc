// The real worker (real model, real batcher, CPU backend) in-process on 127.0.0.1:0, driven by
// a grpc++ client.
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/codegen/client_unary_call.h>
#include <grpcpp/impl/codegen/rpc_method.h>
#include <grpcpp/impl/codegen/sync_stream.h>
#include <gtest/gtest.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "google/protobuf/util/json_util.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "grpc/health/v1/health.pb.h"
#include "tipperary/admin/v1/worker_load.pb.h"
#include "tipperary/config/worker_config.h"
#include "tipperary/embedding/v1/embedding.grpc.pb.h"
#include "tipperary/metrics/registry.h"
#include "tipperary/worker/worker_server.h"
#include "worker_test_util.h"

namespace tipperary::worker {
namespace {

namespace pb = ::tipperary::embedding::v1;
using ::grpc::health::v1::HealthCheckRequest;
using ::grpc::health::v1::HealthCheckResponse;
using test_util::Connect;
using test_util::ExpectTimingMetadata;
using test_util::HttpGet;
using test_util::InitialMetadata;
using test_util::kHangGuard;
using test_util::kModel;
using test_util::MetadataInt;
using test_util::ModelDir;
using test_util::SetDeadline;
using test_util::StartServer;
using test_util::TestConfig;
using test_util::TrailingMetadata;
using test_util::WaitFor;
using ::testing::HasSubstr;

double Norm(const float* v, int n) {
  double sum = 0;
  for (int i = 0; i < n; ++i) sum += static_cast<double>(v[i]) * v[i];
  return std::sqrt(sum);
}

double Cosine(const std::vector<float>& a, const std::vector<float>& b) {
  double dot = 0;
  for (size_t i = 0; i < a.size(); ++i) dot += static_cast<double>(a[i]) * b[i];
  return dot /
         (Norm(a.data(), static_cast<int>(a.size())) * Norm(b.data(), static_cast<int>(b.size())));
}

std::vector<float> Values(const pb::Embedding& e) { return {e.values().begin(), e.values().end()}; }

// grpc.health.v1.Health, called through the same internals generated stubs use (the repo
// generates message classes only for the standard protos).
class HealthClient {
 public:
  explicit HealthClient(std::shared_ptr<grpc::Channel> channel) : channel_(std::move(channel)) {}

  grpc::Status Check(grpc::ClientContext* context, const HealthCheckRequest& request,
                     HealthCheckResponse* response) {
    grpc::internal::RpcMethod method("/grpc.health.v1.Health/Check",
                                     grpc::internal::RpcMethod::NORMAL_RPC, channel_);
    return grpc::internal::BlockingUnaryCall<HealthCheckRequest, HealthCheckResponse>(
        channel_.get(), method, context, request, response);
  }

  std::unique_ptr<grpc::ClientReader<HealthCheckResponse>> Watch(
      grpc::ClientContext* context, const HealthCheckRequest& request) {
    grpc::internal::RpcMethod method("/grpc.health.v1.Health/Watch",
                                     grpc::internal::RpcMethod::SERVER_STREAMING, channel_);
    return std::unique_ptr<grpc::ClientReader<HealthCheckResponse>>(
        grpc::internal::ClientReaderFactory<HealthCheckResponse>::Create(channel_.get(), method,
                                                                         context, request));
  }

 private:
  std::shared_ptr<grpc::Channel> channel_;
};

class WorkerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (ModelDir().empty()) return;
    server_ = StartServer(TestConfig()).release();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override {
    if (ModelDir().empty()) GTEST_SKIP() << "TIPPERARY_MODEL_DIR is not set";
    ASSERT_NE(server_, nullptr);
    stub_ = pb::EmbeddingService::NewStub(Connect(*server_));
  }

  pb::EmbedResponse Embed(const std::vector<std::string>& texts, int dimensions = 0) {
    pb::EmbedRequest request;
    for (const std::string& t : texts) request.add_inputs(t);
    request.set_dimensions(dimensions);
    pb::EmbedResponse response;
    grpc::ClientContext context;
    SetDeadline(context);
    grpc::Status status = stub_->Embed(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

  static WorkerServer* server_;
  std::unique_ptr<pb::EmbeddingService::Stub> stub_;
};

WorkerServer* WorkerTest::server_ = nullptr;

TEST_F(WorkerTest, EmbedGivesNormalizedDeterministicVectors) {
  std::vector<std::string> texts = {"A man is eating food.", "A man is eating a piece of bread.",
                                    "A man is riding a horse."};
  pb::EmbedResponse first = Embed(texts);
  ASSERT_EQ(first.embeddings_size(), 3);
  EXPECT_EQ(first.model(), kModel);
  int total = 0;
  for (int i = 0; i < 3; ++i) {
    const pb::Embedding& e = first.embeddings(i);
    EXPECT_EQ(e.index(), i);
    ASSERT_EQ(e.values_size(), 384);
    EXPECT_NEAR(Norm(e.values().data(), 384), 1.0, 1e-4);
    EXPECT_GT(e.tokens(), 2);
    EXPECT_FALSE(e.truncated());
    total += e.tokens();
  }
  EXPECT_EQ(first.metadata().total_tokens(), total);
  EXPECT_GE(first.metadata().batches(), 1);
  EXPECT_EQ(first.metadata().backend(), "cpu");

  // Same texts, one at a time (other batches, other padding): the same vectors.
  for (int i = 0; i < 3; ++i) {
    pb::EmbedResponse again = Embed({texts[static_cast<size_t>(i)]});
    ASSERT_EQ(again.embeddings_size(), 1);
    EXPECT_GT(Cosine(Values(again.embeddings(0)), Values(first.embeddings(i))), 0.99999);
  }
  // The model means something: food is closer to bread than to horses.
  EXPECT_GT(Cosine(Values(first.embeddings(0)), Values(first.embeddings(1))),
            Cosine(Values(first.embeddings(0)), Values(first.embeddings(2))));
}

TEST_F(WorkerTest, NormalizeFalseGivesRawPooledVectors) {
  pb::EmbedRequest request;
  request.add_inputs("hello world");
  request.set_normalize(false);
  pb::EmbedResponse response;
  grpc::ClientContext context;
  SetDeadline(context);
  ASSERT_TRUE(stub_->Embed(&context, request, &response).ok());
  std::vector<float> raw = Values(response.embeddings(0));
  EXPECT_GT(std::abs(Norm(raw.data(), 384) - 1.0), 1e-3);
  EXPECT_GT(Cosine(raw, Values(Embed({"hello world"}).embeddings(0))), 0.99999);
}

TEST_F(WorkerTest, DimensionsTruncateAndRenormalize) {
  std::vector<float> full = Values(Embed({"truncate me"}).embeddings(0));
  pb::EmbedResponse cut = Embed({"truncate me"}, 64);
  ASSERT_EQ(cut.embeddings(0).values_size(), 64);
  std::vector<float> head = Values(cut.embeddings(0));
  EXPECT_NEAR(Norm(head.data(), 64), 1.0, 1e-4);
  EXPECT_GT(Cosine(head, std::vector<float>(full.begin(), full.begin() + 64)), 0.99999);

  pb::EmbedRequest request;
  request.add_inputs("x");
  request.set_dimensions(385);
  pb::EmbedResponse response;
  grpc::ClientContext context;
  SetDeadline(context);
  EXPECT_EQ(stub_->Embed(&context, request, &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(WorkerTest, OpenAiFloatAndBase64Agree) {
  pb::CreateEmbeddingsRequest request;
  auto* list = request.mutable_input()->mutable_list_value();
  list->add_values()->set_string_value("first text");
  list->add_values()->set_string_value("second text");
  request.set_model(kModel);

  pb::CreateEmbeddingsResponse floats;
  {
    grpc::ClientContext context;
    SetDeadline(context);
    grpc::Status status = stub_->CreateEmbeddings(&context, request, &floats);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  request.set_encoding_format("base64");
  pb::CreateEmbeddingsResponse b64;
  {
    grpc::ClientContext context;
    SetDeadline(context);
    ASSERT_TRUE(stub_->CreateEmbeddings(&context, request, &b64).ok());
  }
  EXPECT_EQ(floats.object(), "list");
  EXPECT_EQ(floats.model(), kModel);
  ASSERT_EQ(floats.data_size(), 2);
  ASSERT_EQ(b64.data_size(), 2);
  EXPECT_EQ(floats.usage().prompt_tokens(), 4);  // "first text", "second text": no [CLS]/[SEP].
  EXPECT_EQ(floats.usage().total_tokens(), floats.usage().prompt_tokens());
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(floats.data(i).object(), "embedding");
    EXPECT_EQ(floats.data(i).index(), i);
    const auto& numbers = floats.data(i).embedding().list_value().values();
    ASSERT_EQ(numbers.size(), 384);
    std::string bytes;
    ASSERT_TRUE(absl::Base64Unescape(b64.data(i).embedding().string_value(), &bytes));
    ASSERT_EQ(bytes.size(), 384 * sizeof(float));
    std::vector<float> decoded(384);
    std::memcpy(decoded.data(), bytes.data(), bytes.size());
    std::vector<float> listed;
    for (const auto& n : numbers) listed.push_back(static_cast<float>(n.number_value()));
    EXPECT_GT(Cosine(decoded, listed), 0.99999);
    EXPECT_NEAR(Norm(decoded.data(), 384), 1.0, 1e-4);
  }

  // A single string and `dimensions`.
  pb::CreateEmbeddingsRequest one;
  one.mutable_input()->set_string_value("first text");
  one.set_dimensions(128);
  pb::CreateEmbeddingsResponse small;
  grpc::ClientContext context;
  SetDeadline(context);
  ASSERT_TRUE(stub_->CreateEmbeddings(&context, one, &small).ok());
  ASSERT_EQ(small.data_size(), 1);
  EXPECT_EQ(small.data(0).embedding().list_value().values_size(), 128);
}

TEST_F(WorkerTest, UnaryCallsSendTeisTimingMetadata) {
  // Native Embed: the tokens are the response's own count; "naïve café" is 10 characters in 12
  // bytes. Texts no other test embeds, so the model runs (no cache hit).
  pb::EmbedRequest request;
  request.add_inputs("timing metadata one");
  request.add_inputs("naïve café");
  pb::EmbedResponse response;
  grpc::ClientContext context;
  SetDeadline(context);
  grpc::Status status = stub_->Embed(&context, request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  std::map<std::string, std::string> metadata = InitialMetadata(context);
  ExpectTimingMetadata(metadata, response.metadata().total_tokens(), 19 + 10);
  EXPECT_GT(MetadataInt(metadata, "x-tokens-per-second"), 0);

  // OpenAI's API, with text and then token ids (no characters to count). The model sees the
  // [CLS] and [SEP] that usage leaves out.
  pb::CreateEmbeddingsRequest openai;
  openai.set_model(kModel);
  openai.mutable_input()->set_string_value("timing metadata two");
  pb::CreateEmbeddingsResponse created;
  {
    grpc::ClientContext c;
    SetDeadline(c);
    ASSERT_TRUE(stub_->CreateEmbeddings(&c, openai, &created).ok());
    ExpectTimingMetadata(InitialMetadata(c), created.usage().prompt_tokens() + 2, 19);
  }
  auto* ids = openai.mutable_input()->mutable_list_value();
  auto* row = ids->add_values()->mutable_list_value();
  for (int id : {2023, 2003, 1037}) row->add_values()->set_number_value(id);
  {
    grpc::ClientContext c;
    SetDeadline(c);
    grpc::Status s = stub_->CreateEmbeddings(&c, openai, &created);
    ASSERT_TRUE(s.ok()) << s.error_message();
    ExpectTimingMetadata(InitialMetadata(c), 3 + 2, -1);
  }

  // A refused call carries none.
  pb::EmbedRequest empty;
  grpc::ClientContext refused;
  SetDeadline(refused);
  EXPECT_FALSE(stub_->Embed(&refused, empty, &response).ok());
  EXPECT_EQ(InitialMetadata(refused).count("x-total-time"), 0u);
}

TEST_F(WorkerTest, BadRequestsAreRefused) {
  auto embed_code = [&](pb::EmbedRequest request) {
    pb::EmbedResponse response;
    grpc::ClientContext context;
    SetDeadline(context);
    return stub_->Embed(&context, request, &response);
  };
  pb::EmbedRequest empty;
  EXPECT_EQ(embed_code(empty).error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  pb::EmbedRequest unknown;
  unknown.add_inputs("x");
  unknown.set_model("no-such-model");
  grpc::Status status = embed_code(unknown);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(status.error_message(), HasSubstr(kModel));

  pb::EmbedRequest too_long;
  std::string text;
  for (int i = 0; i < 400; ++i) text += "word ";
  too_long.add_inputs(text);
  too_long.set_truncate(false);
  status = embed_code(too_long);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("max_seq_length"));

  // The same text with truncation (the default) is cut to max_seq_length.
  too_long.clear_truncate();
  pb::EmbedResponse response;
  grpc::ClientContext context;
  SetDeadline(context);
  ASSERT_TRUE(stub_->Embed(&context, too_long, &response).ok());
  EXPECT_TRUE(response.embeddings(0).truncated());
  EXPECT_EQ(response.embeddings(0).tokens(), 256);

  auto openai_code = [&](pb::CreateEmbeddingsRequest request) {
    pb::CreateEmbeddingsResponse out;
    grpc::ClientContext ctx;
    SetDeadline(ctx);
    return stub_->CreateEmbeddings(&ctx, request, &out).error_code();
  };
  pb::CreateEmbeddingsRequest number;
  number.mutable_input()->set_number_value(3);
  EXPECT_EQ(openai_code(number), grpc::StatusCode::INVALID_ARGUMENT);
  pb::CreateEmbeddingsRequest tokens;
  tokens.mutable_input()->mutable_list_value()->add_values()->set_number_value(30522);
  EXPECT_EQ(openai_code(tokens), grpc::StatusCode::INVALID_ARGUMENT);
  pb::CreateEmbeddingsRequest none;
  EXPECT_EQ(openai_code(none), grpc::StatusCode::INVALID_ARGUMENT);
  pb::CreateEmbeddingsRequest empty_list;
  empty_list.mutable_input()->mutable_list_value();
  EXPECT_EQ(openai_code(empty_list), grpc::StatusCode::INVALID_ARGUMENT);
  pb::CreateEmbeddingsRequest format;
  format.mutable_input()->set_string_value("x");
  format.set_encoding_format("int8");
  EXPECT_EQ(openai_code(format), grpc::StatusCode::INVALID_ARGUMENT);
  pb::CreateEmbeddingsRequest model;
  model.mutable_input()->set_string_value("x");
  model.set_model("gpt-4");
  EXPECT_EQ(openai_code(model), grpc::StatusCode::NOT_FOUND);
}

// The google.rpc.Status details of a failed call: the BadRequest field and ErrorInfo reason
// the proxy renders as OpenAI's "param" and "code".
std::pair<std::string, std::string> FieldAndReason(const grpc::Status& status) {
  google::rpc::Status details;
  std::string field, reason;
  if (!details.ParseFromString(status.error_details())) return {field, reason};
  for (const auto& any : details.details()) {
    google::rpc::BadRequest bad_request;
    google::rpc::ErrorInfo info;
    if (any.UnpackTo(&bad_request) && bad_request.field_violations_size() > 0) {
      field = bad_request.field_violations(0).field();
    } else if (any.UnpackTo(&info)) {
      reason = info.reason();
    }
  }
  return {field, reason};
}

class OpenAiTest : public WorkerTest {
 protected:
  grpc::Status Create(const pb::CreateEmbeddingsRequest& request,
                      pb::CreateEmbeddingsResponse* response) {
    grpc::ClientContext context;
    SetDeadline(context);
    return stub_->CreateEmbeddings(&context, request, response);
  }
  static pb::CreateEmbeddingsRequest FromJsonInput(const std::string& input_json) {
    pb::CreateEmbeddingsRequest request;
    std::string json = "{\"input\":" + input_json + ",\"encoding_format\":\"float\"}";
    EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(json, &request).ok()) << json;
    return request;
  }
  static std::vector<float> Vector(const pb::EmbeddingData& data) {
    std::vector<float> out;
    for (const auto& v : data.embedding().list_value().values()) {
      out.push_back(static_cast<float>(v.number_value()));
    }
    return out;
  }
};

TEST_F(OpenAiTest, TokenIdsEmbedAsTheirText) {
  // "Hello, world!" is [CLS] 7592 1010 2088 999 [SEP]; OpenAI-style ids come without the
  // special tokens, which the worker adds.
  pb::CreateEmbeddingsResponse text, ids, nested;
  ASSERT_TRUE(Create(FromJsonInput(R"("Hello, world!")"), &text).ok());
  grpc::Status status = Create(FromJsonInput("[7592, 1010, 2088, 999]"), &ids);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_TRUE(Create(FromJsonInput("[[7592, 1010, 2088, 999], [2088]]"), &nested).ok());
  ASSERT_EQ(ids.data_size(), 1);
  ASSERT_EQ(nested.data_size(), 2);
  EXPECT_GT(Cosine(Vector(text.data(0)), Vector(ids.data(0))), 0.99999);
  EXPECT_GT(Cosine(Vector(text.data(0)), Vector(nested.data(0))), 0.99999);
  // usage counts the input's tokens, not [CLS]/[SEP], the same for text and ids.
  EXPECT_EQ(text.usage().prompt_tokens(), 4);
  EXPECT_EQ(ids.usage().prompt_tokens(), 4);
  EXPECT_EQ(ids.usage().total_tokens(), 4);
  EXPECT_EQ(nested.usage().prompt_tokens(), 5);
  // Ids that carry their own [CLS]/[SEP] (Hugging Face's, TEI's and vLLM's convention) are
  // not wrapped again.
  pb::CreateEmbeddingsResponse wrapped;
  ASSERT_TRUE(Create(FromJsonInput("[101, 7592, 1010, 2088, 999, 102]"), &wrapped).ok());
  EXPECT_GT(Cosine(Vector(text.data(0)), Vector(wrapped.data(0))), 0.99999);
  EXPECT_EQ(wrapped.usage().prompt_tokens(), 4);
}

TEST_F(OpenAiTest, LongTokenIdsAreTruncatedAsTextIs) {
  std::string ids = "[";
  std::string text;
  for (int i = 0; i < 300; ++i) {
    ids += i ? ", 2088" : "2088";
    text += "world ";
  }
  ids += "]";
  pb::CreateEmbeddingsResponse from_ids, from_text;
  ASSERT_TRUE(Create(FromJsonInput(ids), &from_ids).ok());
  ASSERT_TRUE(Create(FromJsonInput("\"" + text + "\""), &from_text).ok());
  EXPECT_GT(Cosine(Vector(from_ids.data(0)), Vector(from_text.data(0))), 0.99999);
  EXPECT_EQ(from_ids.usage().prompt_tokens(), 254);  // max_seq_length 256 less [CLS]/[SEP].
  EXPECT_EQ(from_text.usage().prompt_tokens(), 254);
}

TEST_F(OpenAiTest, EmptyMixedAndOutOfVocabularyInputsAreRefused) {
  struct Case {
    const char* input;
    const char* message;
  };
  for (const Case& c : std::vector<Case>{
           {R"("")", "input is an empty string"},
           {"[]", "input is an empty array"},
           {R"([""])", "input[0] is an empty string"},
           {R"(["a", ""])", "input[1] is an empty string"},
           {"[[]]", "input[0] is an empty array"},
           {R"(["a", 1])", "mixes strings"},
           {R"([1, "a"])", "mixes token ids"},
           {"[[1], 2]", "mixes arrays of token ids"},
           {"[1.5]", "input[0] is not an integer token id"},
           {"null", "input is required"},
           {"true", "input must be a string"},
           {"[-1]", "token id -1 is outside the vocabulary"},
           {"[[101], [30522]]", "input[1][0]: token id 30522 is outside the vocabulary"},
           {"[[101, 7592, 40000, 102]]", "input[0][2]: token id 40000 is outside the vocabulary"},
       }) {
    pb::CreateEmbeddingsResponse response;
    grpc::Status status = Create(FromJsonInput(c.input), &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.input;
    EXPECT_THAT(status.error_message(), HasSubstr(c.message)) << c.input;
    EXPECT_EQ(FieldAndReason(status).first, "input") << c.input;
    if (std::string(c.message).find("vocabulary") == std::string::npos) {
      EXPECT_THAT(status.error_message(), HasSubstr("'$.input' is invalid")) << c.input;
    }
  }
}

TEST_F(OpenAiTest, DimensionsFollowOpenAi) {
  pb::CreateEmbeddingsRequest request = FromJsonInput(R"("some text")");
  pb::CreateEmbeddingsResponse response;
  request.set_dimensions(0);
  grpc::Status status = Create(request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(FieldAndReason(status).first, "dimensions");
  request.set_dimensions(385);
  status = Create(request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(FieldAndReason(status).first, "dimensions");
  request.set_dimensions(16);
  ASSERT_TRUE(Create(request, &response).ok());
  std::vector<float> cut = Vector(response.data(0));
  ASSERT_EQ(cut.size(), 16u);
  EXPECT_NEAR(Norm(cut.data(), 16), 1.0, 1e-4);
}

TEST_F(OpenAiTest, ModelsAnswerToAliasesAndTheirHuggingFaceId) {
  for (const char* name :
       {"minilm", "acme/MiniLM", "ACME/minilm", "MiniLM", "sentence-transformers/all-MiniLM-L6-v2",
        "all-MiniLM-L6-v2", "ALL-MINILM-L6-V2", kModel, ""}) {
    pb::CreateEmbeddingsRequest request = FromJsonInput(R"("x")");
    request.set_model(name);
    pb::CreateEmbeddingsResponse response;
    grpc::Status status = Create(request, &response);
    ASSERT_TRUE(status.ok()) << name << ": " << status.error_message();
    EXPECT_EQ(response.model(), kModel) << name;
  }
  pb::CreateEmbeddingsRequest request = FromJsonInput(R"("x")");
  request.set_model("text-embedding-3-small");
  pb::CreateEmbeddingsResponse response;
  grpc::Status status = Create(request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(FieldAndReason(status).second, "MODEL_NOT_FOUND");

  pb::ListModelsResponse list;
  grpc::ClientContext context;
  SetDeadline(context);
  ASSERT_TRUE(stub_->ListModels(&context, pb::ListModelsRequest(), &list).ok());
  ASSERT_EQ(list.data_size(), 1);
  EXPECT_EQ(list.data(0).id(), kModel);
  EXPECT_THAT(list.data(0).aliases(),
              ::testing::ElementsAre("minilm", "acme/MiniLM",
                                     "sentence-transformers/all-MiniLM-L6-v2", "all-MiniLM-L6-v2"));
}

TEST_F(WorkerTest, Tokenize) {
  pb::TokenizeRequest request;
  request.add_inputs("Hello, world!");
  pb::TokenizeResponse response;
  {
    grpc::ClientContext context;
    SetDeadline(context);
    ASSERT_TRUE(stub_->Tokenize(&context, request, &response).ok());
  }
  ASSERT_EQ(response.tokens_size(), 1);
  EXPECT_THAT(response.tokens(0).ids(), ::testing::ElementsAre(101, 7592, 1010, 2088, 999, 102));
  EXPECT_THAT(response.tokens(0).tokens(),
              ::testing::ElementsAre("[CLS]", "hello", ",", "world", "!", "[SEP]"));
  EXPECT_EQ(response.model(), kModel);

  request.set_add_special_tokens(false);
  grpc::ClientContext context;
  SetDeadline(context);
  ASSERT_TRUE(stub_->Tokenize(&context, request, &response).ok());
  EXPECT_THAT(response.tokens(0).ids(), ::testing::ElementsAre(7592, 1010, 2088, 999));
}

TEST_F(WorkerTest, ListAndGetModels) {
  pb::ListModelsResponse list;
  {
    grpc::ClientContext context;
    SetDeadline(context);
    ASSERT_TRUE(stub_->ListModels(&context, pb::ListModelsRequest(), &list).ok());
  }
  EXPECT_EQ(list.object(), "list");
  ASSERT_EQ(list.data_size(), 1);
  const pb::Model& m = list.data(0);
  EXPECT_EQ(m.id(), kModel);
  EXPECT_EQ(m.object(), "model");
  EXPECT_EQ(m.owned_by(), "tipperary");
  EXPECT_GT(m.created(), 0u);
  EXPECT_EQ(m.dimensions(), 384);
  EXPECT_EQ(m.max_seq_length(), 256);
  EXPECT_EQ(m.backend(), "cpu");
  EXPECT_EQ(m.dtype(), "float32");
  EXPECT_EQ(m.pooling(), "mean");
  EXPECT_TRUE(m.normalize());

  pb::GetModelRequest get;
  get.set_id(kModel);
  pb::Model one;
  {
    grpc::ClientContext context;
    SetDeadline(context);
    ASSERT_TRUE(stub_->GetModel(&context, get, &one).ok());
  }
  EXPECT_EQ(one.id(), kModel);
  get.set_id("nope");
  grpc::ClientContext context;
  SetDeadline(context);
  EXPECT_EQ(stub_->GetModel(&context, get, &one).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(WorkerTest, EmbedStreamSendsChunksInOrder) {
  pb::EmbedRequest request;
  std::vector<std::string> texts;
  for (int i = 0; i < 10; ++i) {
    texts.push_back("sentence number " + std::to_string(i));
    request.add_inputs(texts.back());
  }
  request.set_chunk_size(3);
  grpc::ClientContext context;
  SetDeadline(context);
  auto reader = stub_->EmbedStream(&context, request);
  pb::EmbedResponse chunk;
  std::vector<int> sizes;
  int next_index = 0;
  pb::EmbedResponse all = Embed(texts);
  while (reader->Read(&chunk)) {
    sizes.push_back(chunk.embeddings_size());
    for (const pb::Embedding& e : chunk.embeddings()) {
      EXPECT_EQ(e.index(), next_index);
      EXPECT_GT(Cosine(Values(e), Values(all.embeddings(next_index))), 0.99999);
      ++next_index;
    }
  }
  grpc::Status status = reader->Finish();
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_THAT(sizes, ::testing::ElementsAre(3, 3, 3, 1));
  // The stream's timing comes as trailers, summed over its 4 chunks (stream_timing.h): every
  // text's tokens and characters, the model's time at most the call's (chunks share batches).
  int64_t characters = 0;
  for (const std::string& text : texts) characters += static_cast<int64_t>(text.size());
  ExpectTimingMetadata(TrailingMetadata(context), all.metadata().total_tokens(), characters);
  EXPECT_EQ(InitialMetadata(context).count("x-total-time"), 0u);
}

TEST_F(WorkerTest, StreamTimingTrailersAddUpTheStreamsTexts) {
  // Texts no other test embeds (the model runs) in chunks of 2: queue time is the longest wait,
  // inference time the union of the chunks' batches, so within the call's total.
  pb::EmbedRequest request;
  int64_t characters = 0;
  for (int i = 0; i < 9; ++i) {
    request.add_inputs("trailer timing text " + std::to_string(i));
    characters += static_cast<int64_t>(request.inputs(i).size());
  }
  request.set_chunk_size(2);
  grpc::ClientContext context;
  SetDeadline(context);
  auto reader = stub_->EmbedStream(&context, request);
  pb::EmbedResponse chunk;
  int64_t tokens = 0;
  while (reader->Read(&chunk)) tokens += chunk.metadata().total_tokens();
  grpc::Status status = reader->Finish();
  ASSERT_TRUE(status.ok()) << status.error_message();
  std::map<std::string, std::string> trailers = TrailingMetadata(context);
  ExpectTimingMetadata(trailers, tokens, characters);
  EXPECT_GT(MetadataInt(trailers, "x-tokens-per-second"), 0);

  // A refused stream carries none.
  pb::EmbedRequest empty;
  grpc::ClientContext refused;
  SetDeadline(refused);
  auto no_texts = stub_->EmbedStream(&refused, empty);
  while (no_texts->Read(&chunk)) {
  }
  EXPECT_EQ(no_texts->Finish().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(TrailingMetadata(refused).count("x-total-time"), 0u);
}

TEST_F(WorkerTest, EmbedBidiAnswersEachMessageInOrder) {
  grpc::ClientContext context;
  SetDeadline(context);
  auto stream = stub_->EmbedBidi(&context);
  for (int i = 0; i < 3; ++i) {
    pb::EmbedRequest request;
    for (int j = 0; j <= i; ++j) request.add_inputs("message " + std::to_string(i));
    ASSERT_TRUE(stream->Write(request));
  }
  stream->WritesDone();
  pb::EmbedResponse response;
  int64_t tokens = 0;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(stream->Read(&response));
    EXPECT_EQ(response.embeddings_size(), i + 1);
    tokens += response.metadata().total_tokens();
  }
  EXPECT_FALSE(stream->Read(&response));
  EXPECT_TRUE(stream->Finish().ok());
  // Timing trailers over the 3 messages: 6 texts of 9 characters.
  ExpectTimingMetadata(TrailingMetadata(context), tokens, 6 * 9);
}

TEST_F(WorkerTest, AdminPortServesHealthReadinessAndMetrics) {
  Embed({"for the metrics"});
  EXPECT_EQ(HttpGet(server_->admin_address(), "/healthz").first, 200);
  EXPECT_EQ(HttpGet(server_->admin_address(), "/readyz").first, 200);
  auto [code, body] = HttpGet(server_->admin_address(), "/metrics");
  EXPECT_EQ(code, 200);
  for (const char* name :
       {"tipperary_worker_batch_size_bucket{model=\"all-minilm-l6-v2\"",
        "tipperary_worker_batch_tokens_count", "tipperary_worker_padding_ratio_count",
        "tipperary_worker_queue_depth{model=\"all-minilm-l6-v2\"}",
        "tipperary_worker_queue_duration_seconds_count",
        "tipperary_worker_compute_duration_seconds_sum",
        "tipperary_worker_requests_total{code=\"OK\",model=\"all-minilm-l6-v2\"}",
        "tipperary_worker_inputs_total", "tipperary_worker_tokens_total",
        "process_cpu_seconds_total", "tipperary_worker_ready 1"}) {
    EXPECT_THAT(body, HasSubstr(name));
  }
  EXPECT_EQ(HttpGet(server_->admin_address(), "/nope").first, 404);
}

// ------------------------------------------------------------------------------------------
// Servers with their own settings.

class WorkerLifecycleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (ModelDir().empty()) GTEST_SKIP() << "TIPPERARY_MODEL_DIR is not set";
  }
};

TEST_F(WorkerLifecycleTest, HealthTurnsServingAfterWarmUpAndNotServingOnDrain) {
  config::WorkerConfig config = TestConfig();
  config.drain = std::chrono::seconds(2);
  std::unique_ptr<WorkerServer> server = StartServer(config, /*load=*/false);
  ASSERT_NE(server, nullptr);
  auto channel = Connect(*server);
  auto health = std::make_unique<HealthClient>(channel);
  auto stub = pb::EmbeddingService::NewStub(channel);
  auto check = [&](const std::string& service) {
    HealthCheckRequest request;
    request.set_service(service);
    HealthCheckResponse response;
    grpc::ClientContext context;
    SetDeadline(context);
    grpc::Status status = health->Check(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.status();
  };
  EXPECT_EQ(check(""), HealthCheckResponse::NOT_SERVING);
  EXPECT_FALSE(server->ready());
  EXPECT_EQ(HttpGet(server->admin_address(), "/readyz").first, 503);
  {
    pb::EmbedRequest request;
    request.add_inputs("too early");
    pb::EmbedResponse response;
    grpc::ClientContext context;
    SetDeadline(context);
    EXPECT_EQ(stub->Embed(&context, request, &response).error_code(),
              grpc::StatusCode::UNAVAILABLE);
  }

  ASSERT_TRUE(server->LoadModels().ok());
  EXPECT_EQ(check(""), HealthCheckResponse::SERVING);
  EXPECT_EQ(check("tipperary.embedding.v1.EmbeddingService"), HealthCheckResponse::SERVING);
  EXPECT_TRUE(server->ready());

  // A Watch stream and an idle bidi stream, both opened before the drain, see it happen.
  grpc::ClientContext watch_context;
  SetDeadline(watch_context);
  HealthCheckRequest watch_request;
  auto watch = health->Watch(&watch_context, watch_request);
  HealthCheckResponse update;
  ASSERT_TRUE(watch->Read(&update));
  EXPECT_EQ(update.status(), HealthCheckResponse::SERVING);

  grpc::ClientContext bidi_context;
  SetDeadline(bidi_context);
  auto bidi = stub->EmbedBidi(&bidi_context);
  pb::EmbedRequest request;
  request.add_inputs("before the drain");
  ASSERT_TRUE(bidi->Write(request));
  pb::EmbedResponse response;
  ASSERT_TRUE(bidi->Read(&response));

  std::thread shutdown([&] { server->Shutdown(); });
  ASSERT_TRUE(watch->Read(&update));
  EXPECT_EQ(update.status(), HealthCheckResponse::NOT_SERVING);
  EXPECT_FALSE(server->ready());
  // New work on the open stream is refused while draining.
  request.set_inputs(0, "during the drain");
  bidi->Write(request);
  EXPECT_FALSE(bidi->Read(&response));
  grpc::Status bidi_status = bidi->Finish();
  EXPECT_EQ(bidi_status.error_code(), grpc::StatusCode::UNAVAILABLE) << bidi_status.error_message();
  watch_context.TryCancel();
  watch->Finish();
  shutdown.join();
}

TEST_F(WorkerLifecycleTest, QueueFullIsResourceExhausted) {
  config::WorkerConfig config = TestConfig();
  config.batching.max_queue = 2;
  std::unique_ptr<WorkerServer> server = StartServer(config);
  ASSERT_NE(server, nullptr);
  auto stub = pb::EmbeddingService::NewStub(Connect(*server));
  pb::EmbedRequest request;
  for (const char* text : {"one of three", "two of three", "three of three"}) {
    request.add_inputs(text);
  }
  pb::EmbedResponse response;
  grpc::ClientContext context;
  SetDeadline(context);
  grpc::Status status = stub->Embed(&context, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();

  // Two texts fit.
  request.mutable_inputs()->RemoveLast();
  grpc::ClientContext ok_context;
  SetDeadline(ok_context);
  EXPECT_TRUE(stub->Embed(&ok_context, request, &response).ok());
  // Identical texts are one computation (cache.dedup): three take one place in the queue.
  pb::EmbedRequest same;
  for (int i = 0; i < 3; ++i) same.add_inputs("the same text");
  grpc::ClientContext same_context;
  SetDeadline(same_context);
  pb::EmbedResponse same_response;
  EXPECT_TRUE(stub->Embed(&same_context, same, &same_response).ok());
  ASSERT_EQ(same_response.embeddings_size(), 3);
  for (int i = 1; i < 3; ++i) {
    EXPECT_EQ(Values(same_response.embeddings(i)), Values(same_response.embeddings(0)));
  }
  std::string metrics = server->registry().Serialize();
  EXPECT_THAT(metrics, HasSubstr("tipperary_worker_requests_total{code=\"RESOURCE_EXHAUSTED\","
                                 "model=\"all-minilm-l6-v2\"} 1"));
  EXPECT_THAT(metrics,
              HasSubstr("tipperary_worker_dedup_joins_total{model=\"all-minilm-l6-v2\"} 2"));
}

// With cache.max_bytes set, a repeated text is answered from the cache with the very bits a
// worker without a cache computes for it, whatever `dimensions` and `normalize` ask (they apply
// after the cache), and the cache's metrics count it.
TEST_F(WorkerLifecycleTest, CacheHitsAreTheBitsAFreshComputationGives) {
  config::WorkerConfig config = TestConfig();
  config.cache.max_bytes = 1 << 20;
  std::unique_ptr<WorkerServer> cached = StartServer(config);
  std::unique_ptr<WorkerServer> plain = StartServer(TestConfig());  // No cache: the default.
  ASSERT_NE(cached, nullptr);
  ASSERT_NE(plain, nullptr);
  auto cached_stub = pb::EmbeddingService::NewStub(Connect(*cached));
  auto plain_stub = pb::EmbeddingService::NewStub(Connect(*plain));
  auto embed = [](pb::EmbeddingService::Stub& stub, const pb::EmbedRequest& request) {
    pb::EmbedResponse response;
    grpc::ClientContext context;
    SetDeadline(context);
    grpc::Status status = stub.Embed(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(response.embeddings_size(), 1);
    return response.embeddings_size() == 1 ? Values(response.embeddings(0)) : std::vector<float>();
  };
  auto same_bits = [](const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
  };
  std::vector<pb::EmbedRequest> requests(3);
  requests[1].set_dimensions(32);
  requests[2].set_normalize(false);
  for (pb::EmbedRequest& request : requests) request.add_inputs("A text the cache keeps.");
  for (const pb::EmbedRequest& request : requests) {
    std::vector<float> fresh = embed(*plain_stub, request);
    std::vector<float> first = embed(*cached_stub, request);  // A miss the first time only.
    std::vector<float> again = embed(*cached_stub, request);  // A hit.
    ASSERT_EQ(fresh.size(), request.dimensions() > 0 ? 32u : 384u);
    EXPECT_TRUE(same_bits(first, fresh)) << request.ShortDebugString();
    EXPECT_TRUE(same_bits(again, fresh)) << request.ShortDebugString();
  }
  const std::string label = "{model=\"all-minilm-l6-v2\"}";
  std::string metrics = HttpGet(cached->admin_address(), "/metrics").second;
  EXPECT_THAT(metrics, HasSubstr("tipperary_worker_cache_hits_total" + label + " 5"));
  EXPECT_THAT(metrics, HasSubstr("tipperary_worker_cache_misses_total" + label + " 1"));
  EXPECT_THAT(metrics, HasSubstr("tipperary_worker_cache_entries" + label + " 1"));
  EXPECT_THAT(metrics, HasSubstr("tipperary_worker_cache_evictions_total" + label + " 0"));
  EXPECT_THAT(metrics, HasSubstr("tipperary_worker_cache_bytes" + label));
  EXPECT_THAT(metrics, HasSubstr("tipperary_worker_cache_max_bytes 1048576"));
  // Without a cache nothing is looked up, so nothing is counted either way.
  std::string plain_metrics = HttpGet(plain->admin_address(), "/metrics").second;
  EXPECT_THAT(plain_metrics, HasSubstr("tipperary_worker_cache_hits_total" + label + " 0"));
  EXPECT_THAT(plain_metrics, HasSubstr("tipperary_worker_cache_misses_total" + label + " 0"));
  EXPECT_THAT(plain_metrics, HasSubstr("tipperary_worker_cache_max_bytes 0"));
}

TEST_F(WorkerLifecycleTest, DeadlineInQueueIsExceededWithoutCompute) {
  config::WorkerConfig config = TestConfig();
  // A partial batch would wait far longer than the request's deadline (even on an idle worker).
  config.batching.max_queue_delay = std::chrono::seconds(20);
  config.batching.dispatch_when_idle = false;
  config.batching.max_batch_size = 64;
  std::unique_ptr<WorkerServer> server = StartServer(config);
  ASSERT_NE(server, nullptr);
  auto stub = pb::EmbeddingService::NewStub(Connect(*server));
  pb::EmbedRequest request;
  request.add_inputs("waits forever");
  pb::EmbedResponse response;
  grpc::ClientContext context;
  SetDeadline(context, std::chrono::milliseconds(300));
  EXPECT_EQ(stub->Embed(&context, request, &response).error_code(),
            grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_TRUE(WaitFor([&] {
    return server->registry().Serialize().find(
               "tipperary_worker_requests_total{code=\"DEADLINE_EXCEEDED\",model=\"all-minilm-l6-"
               "v2\"} 1") != std::string::npos;
  })) << server->registry().Serialize();
  EXPECT_THAT(server->registry().Serialize(),
              HasSubstr("tipperary_worker_batch_size_count{model=\"all-minilm-l6-v2\"} 0"));
}

// The backlog is defined before any batch ran: the warm-up seeds the rate, and a queued text's
// tokens over that rate are its backlog, in /autoscaling and in the metrics.
TEST_F(WorkerLifecycleTest, BacklogIsDefinedFromTheWarmUpBeforeAnyBatch) {
  config::WorkerConfig config = TestConfig();
  config.batching.max_queue_delay = std::chrono::seconds(20);  // Only the drain releases it.
  config.batching.dispatch_when_idle = false;
  config.batching.max_batch_size = 64;
  std::unique_ptr<WorkerServer> server = StartServer(config);
  ASSERT_NE(server, nullptr);
  auto load_now = [&] {
    admin::v1::WorkerLoad load;
    auto [code, body] = HttpGet(server->admin_address(), "/autoscaling");
    EXPECT_EQ(code, 200);
    EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(body, &load).ok()) << body;
    return load;
  };
  admin::v1::WorkerLoad idle = load_now();
  ASSERT_EQ(idle.models().count(kModel), 1u);
  const admin::v1::ModelLoad& idle_model = idle.models().at(kModel);
  ASSERT_TRUE(idle_model.has_tokens_per_second());
  EXPECT_GT(idle_model.tokens_per_second(), 0);
  EXPECT_EQ(idle_model.queued_tokens(), 0);
  EXPECT_EQ(idle_model.backlog_seconds(), 0);
  ASSERT_TRUE(idle.has_backlog_seconds());
  EXPECT_EQ(idle.backlog_seconds(), 0);

  auto stub = pb::EmbeddingService::NewStub(Connect(*server));
  pb::EmbedRequest request;
  request.add_inputs("hello world");  // [CLS] hello world [SEP]: 4 tokens.
  pb::EmbedResponse response;
  grpc::ClientContext context;
  SetDeadline(context);
  grpc::Status status;
  std::thread call([&] { status = stub->Embed(&context, request, &response); });
  ASSERT_TRUE(WaitFor([&] { return load_now().queue_depth() == 1; }));
  admin::v1::WorkerLoad busy = load_now();
  const admin::v1::ModelLoad& model = busy.models().at(kModel);
  EXPECT_EQ(model.queued_tokens(), 4);
  EXPECT_EQ(busy.queued_tokens(), 4);
  // No batch has run: the rate is still the warm-up's.
  EXPECT_EQ(model.batches_total(), 0);
  EXPECT_EQ(model.tokens_per_second(), idle_model.tokens_per_second());
  ASSERT_TRUE(model.has_backlog_seconds());
  EXPECT_DOUBLE_EQ(model.backlog_seconds(), 4 / model.tokens_per_second());
  EXPECT_DOUBLE_EQ(busy.backlog_seconds(), model.backlog_seconds());
  const std::string metrics = server->registry().Serialize();
  EXPECT_THAT(metrics, HasSubstr("tipperary_worker_queued_tokens{model=\"all-minilm-l6-v2\"} 4"));
  EXPECT_THAT(metrics, HasSubstr("tipperary_worker_tokens_per_second{model=\"all-minilm-l6-v2\"}"));
  EXPECT_THAT(metrics, HasSubstr("tipperary_worker_backlog_seconds{model=\"all-minilm-l6-v2\"}"));
  server->Shutdown();
  call.join();
  EXPECT_TRUE(status.ok()) << status.error_message();
}

TEST_F(WorkerLifecycleTest, ShutdownLetsQueuedWorkFinish) {
  config::WorkerConfig config = TestConfig();
  config.batching.max_queue_delay = std::chrono::seconds(20);  // Only the drain releases it.
  config.batching.dispatch_when_idle = false;
  config.batching.max_batch_size = 64;
  std::unique_ptr<WorkerServer> server = StartServer(config);
  ASSERT_NE(server, nullptr);
  auto stub = pb::EmbeddingService::NewStub(Connect(*server));
  pb::EmbedRequest request;
  request.add_inputs("queued before the drain");
  pb::EmbedResponse response;
  grpc::ClientContext context;
  SetDeadline(context);
  grpc::Status status;
  std::thread call([&] { status = stub->Embed(&context, request, &response); });
  ASSERT_TRUE(WaitFor([&] {
    return server->registry().Serialize().find(
               "tipperary_worker_queue_depth{model=\"all-minilm-l6-v2\"} 1") != std::string::npos;
  }));
  server->Shutdown();
  call.join();
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.embeddings_size(), 1);
}

}  // namespace
}  // namespace tipperary::worker
