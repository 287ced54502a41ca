// tipperary.embedding.v1.TextEmbeddingsInference (TEI's API) on the real worker in-process (real
// model, CPU, float32), driven over gRPC: TEI's input shapes and defaults, its tokenisation
// (prompts, truncation_direction, token ids as the whole input), /tokenize's offsets, /decode,
// /info's figures and /health, and the error_type every refusal carries for the proxy.
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/json_util.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "tipperary/embedding/v1/embedding.grpc.pb.h"
#include "tipperary/embedding/v1/tei.grpc.pb.h"
#include "tipperary/model/tokenizer.h"
#include "worker_test_util.h"

namespace tipperary::worker {
namespace {

namespace fs = std::filesystem;
namespace pb = ::tipperary::embedding::v1;
using google::protobuf::ListValue;
using google::protobuf::Value;
using test_util::Connect;
using test_util::ExpectTimingMetadata;
using test_util::InitialMetadata;
using test_util::kModel;
using test_util::ModelDir;
using test_util::SetDeadline;
using test_util::StartServer;
using test_util::TestConfig;
using ::testing::HasSubstr;

constexpr char kPrompted[] = "prompted";  // The default model's files with prompts added.

// A Value from JSON text (google.protobuf.Value's JSON mapping), as the proxy would make it.
Value Json(const std::string& json) {
  Value v;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(json, &v).ok()) << json;
  return v;
}

// The google.rpc.ErrorInfo reason of a failed call ("" without one).
std::string Reason(const grpc::Status& status) {
  google::rpc::Status details;
  if (!details.ParseFromString(status.error_details())) return "";
  for (const auto& any : details.details()) {
    google::rpc::ErrorInfo info;
    if (any.UnpackTo(&info)) return info.reason();
  }
  return "";
}

std::vector<float> Floats(const ListValue& list) {
  std::vector<float> out;
  for (const Value& v : list.values()) out.push_back(static_cast<float>(v.number_value()));
  return out;
}

double Norm(const std::vector<float>& v) {
  double sum = 0;
  for (float x : v) sum += static_cast<double>(x) * x;
  return std::sqrt(sum);
}

class TeiServiceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (ModelDir().empty()) return;
    // The default model's files, plus the prompts all-MiniLM-L6-v2 does not ship.
    // One directory per process: ctest runs each test of this suite in its own, in parallel.
    std::string pattern = (fs::path(::testing::TempDir()) / "tei_prompted_model.XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr) << pattern;
    prompted_dir_ = new fs::path(pattern);
    for (const fs::directory_entry& entry : fs::directory_iterator(ModelDir())) {
      if (entry.path().filename() == "config_sentence_transformers.json") continue;
      fs::create_symlink(entry.path(), *prompted_dir_ / entry.path().filename());
    }
    std::ofstream(*prompted_dir_ / "config_sentence_transformers.json")
        << R"({"prompts": {"query": "query: ", "passage": "passage: "}})";
    config::WorkerConfig config = TestConfig();
    config::WorkerModelConfig prompted = config.models[0];
    prompted.name = kPrompted;
    prompted.path = prompted_dir_->string();
    prompted.aliases = {};
    prompted.huggingface_aliases = false;
    prompted.is_default = false;
    config.models.push_back(prompted);
    server_ = StartServer(config).release();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
    if (prompted_dir_ != nullptr) fs::remove_all(*prompted_dir_);
    delete prompted_dir_;
    prompted_dir_ = nullptr;
  }
  void SetUp() override {
    if (ModelDir().empty()) GTEST_SKIP() << "TIPPERARY_MODEL_DIR is not set";
    ASSERT_NE(server_, nullptr);
    stub_ = pb::TextEmbeddingsInference::NewStub(Connect(*server_));
    native_ = pb::EmbeddingService::NewStub(Connect(*server_));
  }

  // TeiEmbedRequest from text format; the response's vectors, or a failed status.
  grpc::Status Embed(const std::string& request_text, std::vector<std::vector<float>>* out) {
    pb::TeiEmbedRequest request;
    EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(request_text, &request));
    return Embed(request, out);
  }
  grpc::Status Embed(const pb::TeiEmbedRequest& request, std::vector<std::vector<float>>* out) {
    pb::TeiEmbedResponse response;
    grpc::ClientContext context;
    SetDeadline(context);
    grpc::Status status = stub_->Embed(&context, request, &response);
    out->clear();
    for (const ListValue& list : response.embeddings()) out->push_back(Floats(list));
    return status;
  }
  std::vector<std::vector<float>> EmbedOk(const pb::TeiEmbedRequest& request) {
    std::vector<std::vector<float>> out;
    grpc::Status status = Embed(request, &out);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return out;
  }
  pb::TeiEmbedRequest Request(const std::string& inputs_json) {
    pb::TeiEmbedRequest request;
    *request.mutable_inputs() = Json(inputs_json);
    return request;
  }
  // The native API's vectors, for comparison.
  std::vector<std::vector<float>> Native(const std::vector<std::string>& texts,
                                         bool normalize = true) {
    pb::EmbedRequest request;
    for (const std::string& t : texts) request.add_inputs(t);
    request.set_normalize(normalize);
    pb::EmbedResponse response;
    grpc::ClientContext context;
    SetDeadline(context);
    EXPECT_TRUE(native_->Embed(&context, request, &response).ok());
    std::vector<std::vector<float>> out;
    for (const auto& e : response.embeddings())
      out.emplace_back(e.values().begin(), e.values().end());
    return out;
  }
  const model::Tokenizer& Tok() {
    static const model::Tokenizer* tok = new model::Tokenizer(*model::Tokenizer::Load(ModelDir()));
    return *tok;
  }

  static WorkerServer* server_;
  static fs::path* prompted_dir_;
  std::unique_ptr<pb::TextEmbeddingsInference::Stub> stub_;
  std::unique_ptr<pb::EmbeddingService::Stub> native_;
};

WorkerServer* TeiServiceTest::server_ = nullptr;
fs::path* TeiServiceTest::prompted_dir_ = nullptr;

std::string LongText() {
  std::string text;
  for (int i = 0; i < 300; ++i) absl::StrAppend(&text, "word", i % 7 == 0 ? "s " : " ");
  return text + "the very end";
}

TEST_F(TeiServiceTest, EmbedTakesTeisShapesWithTeisDefaults) {
  // A string, and an array: the native API's vectors to the last bit (shortest decimals read
  // back as the same floats), normalised by default.
  std::vector<std::vector<float>> single = EmbedOk(Request(R"("Hello, world!")"));
  ASSERT_EQ(single.size(), 1u);
  EXPECT_EQ(single[0], Native({"Hello, world!"})[0]);
  EXPECT_NEAR(Norm(single[0]), 1.0, 1e-5);
  std::vector<std::vector<float>> batch = EmbedOk(Request(R"(["a man", "a dog"])"));
  EXPECT_EQ(batch, Native({"a man", "a dog"}));

  pb::TeiEmbedRequest raw = Request(R"("Hello, world!")");
  raw.set_normalize(false);
  EXPECT_EQ(EmbedOk(raw), Native({"Hello, world!"}, false));

  // Token ids are the whole input: with the text's [CLS] ... [SEP] the text's vector; a mixed
  // array of texts and ids.
  const std::vector<int32_t> ids = Tok().Encode("Hello, world!", 256).ids;
  std::string ids_json = absl::StrCat("[", absl::StrJoin(ids, ","), "]");
  EXPECT_EQ(EmbedOk(Request(ids_json))[0], single[0]);
  std::vector<std::vector<float>> mixed =
      EmbedOk(Request(absl::StrCat(R"(["a dog", )", ids_json, "]")));
  ASSERT_EQ(mixed.size(), 2u);
  EXPECT_EQ(mixed[0], batch[1]);
  EXPECT_EQ(mixed[1], single[0]);
  // Without them the model sees no [CLS]/[SEP] (as TEI feeds ids): another vector.
  std::string bare = absl::StrCat("[", absl::StrJoin(ids.begin() + 1, ids.end() - 1, ","), "]");
  EXPECT_NE(EmbedOk(Request(bare))[0], single[0]);

  pb::TeiEmbedRequest cut = Request(R"("Hello, world!")");
  cut.set_dimensions(16);
  std::vector<float> sixteen = EmbedOk(cut)[0];
  ASSERT_EQ(sixteen.size(), 16u);
  EXPECT_NEAR(Norm(sixteen), 1.0, 1e-5);
}

TEST_F(TeiServiceTest, EmbedSendsTeisTimingHeaders) {
  // Texts: x-compute-characters counts them ("é" is one); the tokens are what the model saw.
  pb::TeiEmbedRequest request = Request(R"(["tei timing one", "déjà vu"])");
  pb::TeiEmbedResponse response;
  grpc::ClientContext context;
  SetDeadline(context);
  grpc::Status status = stub_->Embed(&context, request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  const int64_t tokens = static_cast<int64_t>(Tok().Encode("tei timing one", 256).ids.size() +
                                              Tok().Encode("déjà vu", 256).ids.size());
  ExpectTimingMetadata(InitialMetadata(context), tokens, 14 + 7);

  // Token ids: nothing to count as characters.
  const std::vector<int32_t> ids = Tok().Encode("tei timing two", 256).ids;
  grpc::ClientContext by_ids;
  SetDeadline(by_ids);
  ASSERT_TRUE(
      stub_->Embed(&by_ids, Request(absl::StrCat("[", absl::StrJoin(ids, ","), "]")), &response)
          .ok());
  ExpectTimingMetadata(InitialMetadata(by_ids), static_cast<int64_t>(ids.size()), -1);
}

TEST_F(TeiServiceTest, TruncateAndTruncationDirection) {
  const std::string text = LongText();
  pb::TeiEmbedRequest request = Request(absl::StrCat("\"", text, "\""));
  std::vector<float> right = EmbedOk(request)[0];  // truncate unset: auto_truncate (true)
  EXPECT_EQ(right, Native({text})[0]);
  request.set_truncation_direction("Left");
  std::vector<float> left = EmbedOk(request)[0];
  EXPECT_NE(left, right);
  // The left cut is the text's last 254 tokens between [CLS] and [SEP].
  model::Tokenizer::Encoding tail =
      Tok().Encode(text, 256, true, model::Tokenizer::Truncation::kLeft);
  EXPECT_EQ(EmbedOk(Request(absl::StrCat("[", absl::StrJoin(tail.ids, ","), "]")))[0], left);
  request.set_truncation_direction("left");
  EXPECT_EQ(EmbedOk(request)[0], left);

  request.set_truncate(false);
  std::vector<std::vector<float>> out;
  grpc::Status status = Embed(request, &out);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Reason(status), "VALIDATION");
  const size_t tokens = Tok().Encode(text, 0).ids.size();
  EXPECT_EQ(status.error_message(),
            absl::StrCat("`inputs` must have less than 256 tokens. Given: ", tokens));
  request.set_truncation_direction("Up");
  request.set_truncate(true);
  status = Embed(request, &out);
  EXPECT_EQ(Reason(status), "VALIDATION");
  EXPECT_THAT(status.error_message(), HasSubstr("truncation_direction"));
}

TEST_F(TeiServiceTest, PromptsComeFromTheModelsSentenceTransformersConfig) {
  pb::TeiEmbedRequest request = Request(R"(["What is TEI?"])");
  request.set_model(kPrompted);
  request.set_prompt_name("query");
  EXPECT_EQ(EmbedOk(request)[0], Native({"query: What is TEI?"})[0]);
  request.set_prompt_name("passage");
  EXPECT_EQ(EmbedOk(request)[0], Native({"passage: What is TEI?"})[0]);

  std::vector<std::vector<float>> out;
  request.set_prompt_name("document");
  grpc::Status status = Embed(request, &out);
  EXPECT_EQ(Reason(status), "VALIDATION");
  EXPECT_THAT(status.error_message(), HasSubstr("Available prompts: [\"passage\", \"query\"]"));
  request.clear_model();  // all-MiniLM-L6-v2 ships none.
  request.set_prompt_name("query");
  status = Embed(request, &out);
  EXPECT_EQ(Reason(status), "VALIDATION");
  EXPECT_THAT(status.error_message(), HasSubstr("no prompts were found"));
}

TEST_F(TeiServiceTest, RefusalsCarryTeisErrorType) {
  struct Case {
    const char* request;
    const char* reason;
    const char* message;
  };
  for (const Case& c : std::vector<Case>{
           {R"pb(inputs { string_value: "" })pb", "EMPTY", "`inputs` cannot be empty"},
           {R"pb(inputs { list_value {} })pb", "EMPTY", "`inputs` cannot be empty"},
           {R"pb(inputs {
                   list_value {
                     values { string_value: "a" }
                     values { list_value {} }
                   }
                 })pb",
            "EMPTY", "`inputs` cannot be empty"},
           {R"pb(inputs { number_value: 5 })pb", "VALIDATION", "`inputs` must be a string"},
           {R"pb(inputs { list_value { values { number_value: 1.5 } } })pb", "VALIDATION",
            "inputs[0] must be a token id"},
           {R"pb(inputs { list_value { values { number_value: 99999 } } })pb", "VALIDATION",
            "token id 99999 is outside the vocabulary"},
           {R"pb(inputs { string_value: "a" }
                 dimensions: 0)pb",
            "VALIDATION", "`dimensions` should be positive"},
           {R"pb(inputs { string_value: "a" }
                 dimensions: 385)pb",
            "VALIDATION", "`dimensions` should be smaller than the maximum embedding dimension."},
       }) {
    std::vector<std::vector<float>> out;
    grpc::Status status = Embed(c.request, &out);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.request;
    EXPECT_EQ(Reason(status), c.reason) << c.request;
    EXPECT_THAT(status.error_message(), HasSubstr(c.message)) << c.request;
  }
  std::vector<std::vector<float>> out;
  grpc::Status status = Embed(R"pb(inputs { string_value: "a" }
                                   model: "gpt-4")pb",
                              &out);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(TeiServiceTest, TokenizeGivesTeisTokensWithByteOffsets) {
  pb::TeiTokenizeRequest request;
  *request.mutable_inputs() = Json(R"(["Café, world!", "x"])");
  pb::TeiTokenizeResponse response;
  grpc::ClientContext context;
  SetDeadline(context);
  ASSERT_TRUE(stub_->Tokenize(&context, request, &response).ok());
  ASSERT_EQ(response.tokens_size(), 2);
  std::string json;
  ASSERT_TRUE(google::protobuf::util::MessageToJsonString(response.tokens(0), &json).ok());
  const ListValue& tokens = response.tokens(0);
  ASSERT_EQ(tokens.values_size(), 6) << json;  // [CLS] cafe , world ! [SEP]
  auto field = [&](int i, const char* name) -> const Value& {
    return tokens.values(i).struct_value().fields().at(name);
  };
  EXPECT_EQ(field(0, "id").number_value(), 101);
  EXPECT_EQ(field(0, "text").string_value(), "[CLS]");
  EXPECT_TRUE(field(0, "special").bool_value());
  EXPECT_TRUE(field(0, "start").has_null_value());
  EXPECT_TRUE(field(0, "stop").has_null_value());
  EXPECT_EQ(field(1, "text").string_value(), "Café");  // The input's bytes, not the token.
  EXPECT_EQ(field(1, "start").number_value(), 0);
  EXPECT_EQ(field(1, "stop").number_value(), 5);  // Bytes: "é" is two.
  EXPECT_FALSE(field(1, "special").bool_value());
  EXPECT_EQ(field(2, "text").string_value(), ",");
  EXPECT_EQ(field(2, "start").number_value(), 5);
  EXPECT_EQ(field(5, "text").string_value(), "[SEP]");

  // Without special tokens; with a prompt, offsets count in the prompted text.
  request.set_add_special_tokens(false);
  request.set_model(kPrompted);
  request.set_prompt_name("query");
  *request.mutable_inputs() = Json(R"("Hi")");
  grpc::ClientContext prompted_context;
  SetDeadline(prompted_context);
  ASSERT_TRUE(stub_->Tokenize(&prompted_context, request, &response).ok());
  ASSERT_EQ(response.tokens_size(), 1);
  const ListValue& prompted = response.tokens(0);
  ASSERT_EQ(prompted.values_size(), 3);  // query : hi
  EXPECT_EQ(prompted.values(2).struct_value().fields().at("text").string_value(), "Hi");
  EXPECT_EQ(prompted.values(2).struct_value().fields().at("start").number_value(), 7);

  *request.mutable_inputs() = Json(R"(["a", ""])");
  grpc::ClientContext empty_context;
  SetDeadline(empty_context);
  grpc::Status status = stub_->Tokenize(&empty_context, request, &response);
  EXPECT_EQ(Reason(status), "EMPTY");
}

TEST_F(TeiServiceTest, DecodeAsHuggingFaceTokenizersDoes) {
  auto decode = [&](const std::string& ids_json, std::optional<bool> skip,
                    pb::TeiDecodeResponse* response) {
    pb::TeiDecodeRequest request;
    *request.mutable_ids() = Json(ids_json);
    if (skip) request.set_skip_special_tokens(*skip);
    grpc::ClientContext context;
    SetDeadline(context);
    return stub_->Decode(&context, request, response);
  };
  pb::TeiDecodeResponse response;
  ASSERT_TRUE(decode("[101, 7592, 1010, 2088, 999, 102]", std::nullopt, &response).ok());
  EXPECT_THAT(response.texts(), ::testing::ElementsAre("hello, world!"));
  ASSERT_TRUE(decode("[[101, 7592, 102], [2088, 4294967295]]", false, &response).ok());
  EXPECT_THAT(response.texts(), ::testing::ElementsAre("[CLS] hello [SEP]", "world"));
  EXPECT_EQ(Reason(decode("[]", std::nullopt, &response)), "EMPTY");
  EXPECT_EQ(Reason(decode("[[1], []]", std::nullopt, &response)), "EMPTY");
  EXPECT_EQ(Reason(decode("[-1]", std::nullopt, &response)), "VALIDATION");
  EXPECT_EQ(Reason(decode(R"("hello")", std::nullopt, &response)), "VALIDATION");
}

TEST_F(TeiServiceTest, InfoReportsTheWorkersRealFigures) {
  auto info = [&](const std::string& model) {
    pb::TeiInfoRequest request;
    request.set_model(model);
    pb::TeiInfo response;
    grpc::ClientContext context;
    SetDeadline(context);
    EXPECT_TRUE(stub_->Info(&context, request, &response).ok());
    return response;
  };
  const config::WorkerConfig config = TestConfig();
  pb::TeiInfo i = info("");
  EXPECT_EQ(i.model_id(), "sentence-transformers/all-MiniLM-L6-v2");
  EXPECT_EQ(i.served_model_name(), kModel);
  EXPECT_EQ(i.model_dtype(), "float32");
  EXPECT_EQ(i.model_type().embedding().pooling(), "mean");
  EXPECT_EQ(i.max_input_length(), 256u);
  EXPECT_EQ(i.max_batch_tokens(), config.batching.max_batch_tokens);
  EXPECT_EQ(i.max_batch_requests(), config.batching.max_batch_size);
  EXPECT_EQ(i.max_concurrent_requests(), config.batching.max_queue);
  EXPECT_EQ(i.max_client_batch_size(), config.max_inputs);
  EXPECT_TRUE(i.auto_truncate());
  EXPECT_GE(i.tokenization_workers(), 1u);
  EXPECT_EQ(i.version(), TIPPERARY_VERSION);
  EXPECT_TRUE(i.model_sha().has_null_value());
  EXPECT_EQ(info(kPrompted).served_model_name(), kPrompted);
}

TEST(TeiServiceLifecycleTest, HealthIsUnhealthyUntilTheModelsAreLoaded) {
  if (ModelDir().empty()) GTEST_SKIP() << "TIPPERARY_MODEL_DIR is not set";
  std::unique_ptr<WorkerServer> server = StartServer(TestConfig(), /*load=*/false);
  ASSERT_NE(server, nullptr);
  auto stub = pb::TextEmbeddingsInference::NewStub(Connect(*server));
  auto health = [&] {
    pb::TeiHealthRequest request;
    google::api::HttpBody response;
    grpc::ClientContext context;
    SetDeadline(context);
    return stub->Health(&context, request, &response);
  };
  grpc::Status early = health();
  EXPECT_EQ(early.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(Reason(early), "UNHEALTHY");
  ASSERT_TRUE(server->LoadModels().ok());
  EXPECT_TRUE(health().ok());
}

}  // namespace
}  // namespace tipperary::worker
