// Live reconfiguration of the real worker (real model, CPU backend), in-process: the config file
// is rewritten and WorkerServer::Reload() (what SIGHUP and POST /reload run) applies it.
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/beast/http/verb.hpp>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "tipperary/config/worker_config.h"
#include "tipperary/embedding/v1/embedding.grpc.pb.h"
#include "tipperary/worker/worker_server.h"
#include "worker_test_util.h"

namespace tipperary::worker {
namespace {

namespace fs = std::filesystem;
namespace pb = ::tipperary::embedding::v1;
using test_util::HttpCall;
using test_util::HttpGet;
using test_util::ModelDir;
using test_util::SetDeadline;
using test_util::WaitFor;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::StartsWith;
using Result = config::ReloadReport::Result;
namespace http = boost::beast::http;

class WorkerReloadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (ModelDir().empty()) GTEST_SKIP() << "TIPPERARY_MODEL_DIR is not set";
    dir_ = fs::temp_directory_path() /
           absl::StrCat("worker_reload_test_", getpid(), "_",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    path_ = (dir_ / "worker.yaml").string();
  }
  void TearDown() override {
    stub_.reset();
    server_.reset();
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  // One models[] entry on the test model's files.
  static std::string Model(const std::string& name, const std::string& extra = "") {
    return absl::StrCat("  - {name: ", name, ", path: \"", ModelDir(),
                        "\", backend: cpu, dtype: float32, threads: 1, "
                        "huggingface_aliases: false, warmup: minimal",
                        extra, "}\n");
  }

  void WriteConfig(const std::string& models, const std::string& extra = "") {
    std::ofstream out(path_);
    // drain bounds how long a removed model waits for its open calls: the 1000-text stream of
    // ARemovedModelFinishesItsOpenCallsBeforeItIsUnloaded takes over 20 s under TSan.
    out << "listen: \"127.0.0.1:0\"\n"
        << "admin: {address: \"127.0.0.1:0\"}\n"
        << "drain: 2m\n"
        << "logging: {level: warn}\n"
        << extra << "models:\n"
        << models;
  }

  void Start() {
    absl::StatusOr<config::WorkerConfig> config = config::LoadWorkerConfigFile(path_);
    ASSERT_TRUE(config.ok()) << config.status();
    absl::StatusOr<std::unique_ptr<WorkerServer>> server =
        WorkerServer::Create(*std::move(config), WorkerConfigSource{path_, {}});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    ASSERT_TRUE(server_->Start().ok());
    ASSERT_TRUE(server_->LoadModels().ok());
    stub_ = pb::EmbeddingService::NewStub(test_util::Connect(*server_));
  }

  config::ReloadReport Reload() {
    absl::StatusOr<config::ReloadReport> report = server_->Reload();
    EXPECT_TRUE(report.ok()) << report.status();
    return report.ok() ? *report : config::ReloadReport{};
  }

  std::vector<std::string> ModelIds() {
    pb::ListModelsResponse list;
    grpc::ClientContext context;
    SetDeadline(context);
    grpc::Status status = stub_->ListModels(&context, pb::ListModelsRequest(), &list);
    EXPECT_TRUE(status.ok()) << status.error_message();
    std::vector<std::string> ids;
    for (const pb::Model& m : list.data()) ids.push_back(m.id());
    return ids;
  }

  grpc::Status Embed(const std::string& model, const std::vector<std::string>& texts,
                     pb::EmbedResponse* response) {
    pb::EmbedRequest request;
    request.set_model(model);
    for (const std::string& t : texts) request.add_inputs(t);
    grpc::ClientContext context;
    SetDeadline(context);
    return stub_->Embed(&context, request, response);
  }

  // The value of one sample of GET /metrics, or NaN when it is absent.
  double Metric(const std::string& series) {
    for (absl::string_view line :
         absl::StrSplit(HttpGet(server_->admin_address(), "/metrics").second, '\n')) {
      if (absl::StartsWith(line, series + " ")) {
        return std::stod(std::string(line.substr(series.size() + 1)));
      }
    }
    return std::nan("");
  }

  fs::path dir_;
  std::string path_;
  std::unique_ptr<WorkerServer> server_;
  std::unique_ptr<pb::EmbeddingService::Stub> stub_;
};

TEST_F(WorkerReloadTest, AddsAModelOnceWarmAndRemovesItAgain) {
  WriteConfig(Model("first"));
  Start();
  const std::string start_hash = server_->config_hash();
  EXPECT_EQ(Metric(absl::StrCat("tipperary_config_info{hash=\"", start_hash, "\"}")), 1);
  EXPECT_EQ(Metric("tipperary_config_reload_total{result=\"applied\"}"), 0);
  EXPECT_GT(Metric("tipperary_config_last_reload_success_timestamp_seconds"), 0);

  config::ReloadReport same = Reload();
  EXPECT_EQ(same.result, Result::kUnchanged);
  EXPECT_EQ(same.config_hash, start_hash);
  EXPECT_THAT(same.changed, IsEmpty());

  WriteConfig(Model("first") + Model("second"));
  config::ReloadReport added = Reload();
  EXPECT_EQ(added.result, Result::kApplied) << added.error;
  EXPECT_THAT(added.changed, ElementsAre("models"));
  EXPECT_THAT(added.restart_required, IsEmpty());
  EXPECT_NE(added.config_hash, start_hash);
  EXPECT_EQ(server_->config_hash(), added.config_hash);
  EXPECT_THAT(ModelIds(), ElementsAre("first", "second"));
  pb::EmbedResponse a, b;
  ASSERT_TRUE(Embed("first", {"the same files"}, &a).ok());
  grpc::Status status = Embed("second", {"the same files"}, &b);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(b.model(), "second");
  ASSERT_EQ(a.embeddings(0).values_size(), b.embeddings(0).values_size());
  for (int i = 0; i < a.embeddings(0).values_size(); ++i) {
    EXPECT_NEAR(a.embeddings(0).values(i), b.embeddings(0).values(i), 1e-6);
  }

  // /config and the metrics carry the new hash, and only it.
  test_util::HttpResult shown = HttpCall(server_->admin_address(), http::verb::get, "/config");
  EXPECT_EQ(shown.status, 200);
  EXPECT_EQ(shown.headers["X-Config-Hash"], added.config_hash);
  EXPECT_THAT(shown.body, StartsWith(absl::StrCat("# config_hash: ", added.config_hash, "\n")));
  EXPECT_THAT(shown.body, HasSubstr("name: \"second\""));
  EXPECT_EQ(Metric(absl::StrCat("tipperary_config_info{hash=\"", added.config_hash, "\"}")), 1);
  EXPECT_TRUE(std::isnan(Metric(absl::StrCat("tipperary_config_info{hash=\"", start_hash, "\"}"))));
  EXPECT_EQ(Metric("tipperary_config_reload_total{result=\"applied\"}"), 1);
  EXPECT_EQ(Metric("tipperary_config_reload_total{result=\"unchanged\"}"), 1);

  WriteConfig(Model("first"));
  config::ReloadReport removed = Reload();
  EXPECT_EQ(removed.result, Result::kApplied) << removed.error;
  EXPECT_EQ(removed.config_hash, start_hash);  // The same effective config as at start.
  EXPECT_THAT(ModelIds(), ElementsAre("first"));
  EXPECT_EQ(Embed("second", {"gone"}, &b).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_TRUE(Embed("first", {"still here"}, &a).ok());
}

// A call that found a model keeps it: the reload that removes the model publishes the new set at
// once, waits for the call, and only then unloads it. Meanwhile another reload is refused (409).
TEST_F(WorkerReloadTest, ARemovedModelFinishesItsOpenCallsBeforeItIsUnloaded) {
  WriteConfig(Model("first") + Model("second"));
  Start();
  // A stream far larger than HTTP/2 flow control lets the server send unread (BDP probing off:
  // 64 KiB windows): it stays open, holding "second", until this test reads it.
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  auto slow_stub = pb::EmbeddingService::NewStub(
      grpc::CreateCustomChannel(server_->grpc_address(), grpc::InsecureChannelCredentials(), args));
  constexpr int kTexts = 1000;
  pb::EmbedRequest request;
  request.set_model("second");
  request.set_chunk_size(8);
  for (int i = 0; i < kTexts; ++i) request.add_inputs(absl::StrCat("text number ", i));
  grpc::ClientContext context;
  SetDeadline(context, std::chrono::seconds(120));
  auto reader = slow_stub->EmbedStream(&context, request);
  pb::EmbedResponse chunk;
  ASSERT_TRUE(reader->Read(&chunk));
  int received = chunk.embeddings_size();

  WriteConfig(Model("first"));
  std::future<absl::StatusOr<config::ReloadReport>> removing =
      std::async(std::launch::async, [this] { return server_->Reload(); });
  // Published: no longer listed nor found by new calls...
  ASSERT_TRUE(WaitFor([&] { return ModelIds() == std::vector<std::string>{"first"}; }));
  pb::EmbedResponse response;
  EXPECT_EQ(Embed("second", {"new call"}, &response).error_code(), grpc::StatusCode::NOT_FOUND);
  // ...but still held by the open stream, so the reload is not done: the admin port answers
  // meanwhile (probes, metrics), and another reload is refused.
  EXPECT_EQ(HttpGet(server_->admin_address(), "/readyz").first, 200);
  EXPECT_EQ(HttpGet(server_->admin_address(), "/metrics").first, 200);
  test_util::HttpResult busy = HttpCall(server_->admin_address(), http::verb::post, "/reload");
  EXPECT_EQ(busy.status, 409) << busy.body;
  absl::StatusOr<config::ReloadReport> second_reload = server_->Reload();
  EXPECT_EQ(second_reload.status().code(), absl::StatusCode::kAborted);

  // Every chunk of the open call is computed by the removed model, none lost.
  while (reader->Read(&chunk)) {
    for (const pb::Embedding& e : chunk.embeddings()) {
      EXPECT_EQ(e.index(), received);
      ++received;
    }
    EXPECT_EQ(chunk.model(), "second");
  }
  grpc::Status status = reader->Finish();
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(received, kTexts);

  absl::StatusOr<config::ReloadReport> report = removing.get();
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->result, Result::kApplied);
  EXPECT_EQ(Metric("tipperary_config_reload_total{result=\"applied\"}"), 1);
}

TEST_F(WorkerReloadTest, BatchingAndLimitsApplyLiveRestartOnlyKeysAreReportedNotApplied) {
  WriteConfig(Model("first"));
  Start();
  const std::string grpc_address = server_->grpc_address();
  std::string config = Model("first");
  {
    std::ofstream out(path_);
    out << "listen: \"127.0.0.1:1\"\n"  // Needs a restart.
        << "admin: {address: \"127.0.0.1:0\"}\n"
        << "drain: 2m\n"  // As WriteConfig: only the keys below change.
        << "logging: {level: warn}\n"
        << "max_inputs: 2\n"
        << "batching: {max_batch_size: 4, max_queue_delay: 5ms}\n"
        << "models:\n"
        << config;
  }
  config::ReloadReport report = Reload();
  EXPECT_EQ(report.result, Result::kApplied) << report.error;
  EXPECT_THAT(report.changed,
              ElementsAre("batching.max_batch_size", "batching.max_queue_delay", "max_inputs"));
  EXPECT_THAT(report.restart_required, ElementsAre("listen"));
  EXPECT_EQ(server_->grpc_address(), grpc_address);
  pb::EmbedResponse response;
  EXPECT_EQ(Embed("", {"a", "b", "c"}, &response).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(Embed("", {"a", "b"}, &response).ok());
  EXPECT_THAT(HttpGet(server_->admin_address(), "/autoscaling").second,
              HasSubstr("\"max_batch_size\":4"));
  test_util::HttpResult shown = HttpCall(server_->admin_address(), http::verb::get, "/config");
  EXPECT_THAT(shown.body, HasSubstr("listen: \"127.0.0.1:0\""));
  EXPECT_THAT(shown.body, HasSubstr("max_inputs: 2"));
}

TEST_F(WorkerReloadTest, AConfigThatFailsTheCheckChangesNothing) {
  WriteConfig(Model("first"));
  Start();
  const std::string hash = server_->config_hash();
  std::string config = Model("first");
  struct Case {
    std::string models;
    std::string extra;
    std::string error;
  };
  const std::vector<Case> cases = {
      {Model("first"), "batching: {max_batch_size: 0}\n",
       ":5:28: batching.max_batch_size: 0 is out of range"},  // file:line:col: key
      {Model("first") + "  - {name: second, path: /nonexistent/model}\n", "",
       ":7:26: models[1].path: model \\\"second\\\": /nonexistent/model"},
      {Model("first"), "batching: {max_batch_size: 8, surprise: 1}\n", ":5:31: unknown key"},
  };
  double rejected = 0;
  for (const Case& c : cases) {
    WriteConfig(c.models, c.extra);
    test_util::HttpResult answer = HttpCall(server_->admin_address(), http::verb::post, "/reload");
    EXPECT_EQ(answer.status, 422) << answer.body;
    EXPECT_THAT(answer.body, HasSubstr("\"result\":\"rejected\""));
    EXPECT_THAT(answer.body, HasSubstr(absl::StrCat(path_, c.error))) << answer.body;
    EXPECT_THAT(answer.body, HasSubstr(hash));
    EXPECT_EQ(server_->config_hash(), hash);
    EXPECT_THAT(ModelIds(), ElementsAre("first"));
    EXPECT_EQ(Metric("tipperary_config_reload_total{result=\"rejected\"}"), ++rejected);
  }
  pb::EmbedResponse response;
  EXPECT_TRUE(Embed("", {"still serving"}, &response).ok());
  EXPECT_EQ(HttpCall(server_->admin_address(), http::verb::get, "/reload").status, 405);
}

// The cache's size and dedup change live; a model loaded anew starts with no cached vectors
// (the old runtime's never answer for it, and go with it).
TEST_F(WorkerReloadTest, CacheChangesLiveAndAReplacedModelStartsCold) {
  WriteConfig(Model("first"), "cache: {max_bytes: 1MiB}\n");
  Start();
  const std::string label = "{model=\"first\"}";
  pb::EmbedResponse response;
  ASSERT_TRUE(Embed("", {"kept"}, &response).ok());
  ASSERT_TRUE(Embed("", {"kept"}, &response).ok());
  EXPECT_EQ(Metric("tipperary_worker_cache_hits_total" + label), 1);
  EXPECT_EQ(Metric("tipperary_worker_cache_entries" + label), 1);
  EXPECT_GT(Metric("tipperary_worker_cache_bytes" + label), 0);

  WriteConfig(Model("first", ", max_seq_length: 128"), "cache: {max_bytes: 1MiB}\n");
  config::ReloadReport report = Reload();
  ASSERT_EQ(report.result, Result::kApplied) << report.error;
  // The old runtime is unloaded, its entries with it.
  EXPECT_EQ(Metric("tipperary_worker_cache_entries" + label), 0);
  EXPECT_EQ(Metric("tipperary_worker_cache_bytes" + label), 0);
  ASSERT_TRUE(Embed("", {"kept"}, &response).ok());
  EXPECT_EQ(Metric("tipperary_worker_cache_hits_total" + label), 1);  // A miss: computed anew.
  EXPECT_EQ(Metric("tipperary_worker_cache_misses_total" + label), 2);
  EXPECT_EQ(Metric("tipperary_worker_cache_entries" + label), 1);

  WriteConfig(Model("first", ", max_seq_length: 128"), "cache: {max_bytes: 0, dedup: false}\n");
  report = Reload();
  ASSERT_EQ(report.result, Result::kApplied) << report.error;
  EXPECT_THAT(report.changed, ElementsAre("cache.dedup", "cache.max_bytes"));
  EXPECT_EQ(Metric("tipperary_worker_cache_entries" + label), 0);
  EXPECT_EQ(Metric("tipperary_worker_cache_max_bytes"), 0);
  EXPECT_EQ(Metric("tipperary_worker_cache_evictions_total" + label), 1);  // Emptied.
  ASSERT_TRUE(Embed("", {"kept", "kept"}, &response).ok());
  EXPECT_EQ(Metric("tipperary_worker_cache_misses_total" + label), 2);  // Off: not looked up.
  EXPECT_EQ(Metric("tipperary_worker_dedup_joins_total" + label), 0);   // Off: computed twice.
  EXPECT_THAT(HttpCall(server_->admin_address(), http::verb::get, "/config").body,
              HasSubstr("dedup: false"));
}

// A model whose entry changed (here: its aliases) is loaded anew and swapped in; a stream open
// across the swap goes on, its next message served by the new one.
TEST_F(WorkerReloadTest, AChangedModelIsSwappedInWhenReady) {
  WriteConfig(Model("first", ", aliases: [old-name]") + Model("second"));
  Start();
  grpc::ClientContext context;
  SetDeadline(context);
  auto stream = stub_->EmbedBidi(&context);
  pb::EmbedRequest request;
  request.set_model("old-name");
  request.add_inputs("before");
  ASSERT_TRUE(stream->Write(request));
  pb::EmbedResponse response;
  ASSERT_TRUE(stream->Read(&response));
  EXPECT_EQ(response.model(), "first");

  // Also: "second" becomes the default (a key of the name table only: not reloaded).
  WriteConfig(Model("first", ", aliases: [new-name]") + Model("second", ", default: true"));
  config::ReloadReport report = Reload();
  EXPECT_EQ(report.result, Result::kApplied) << report.error;
  EXPECT_THAT(ModelIds(), ElementsAre("first", "second"));
  request.set_model("new-name");
  ASSERT_TRUE(stream->Write(request));
  ASSERT_TRUE(stream->Read(&response));
  EXPECT_EQ(response.model(), "first");
  request.set_model("old-name");
  ASSERT_TRUE(stream->Write(request));
  stream->WritesDone();
  EXPECT_FALSE(stream->Read(&response));
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_TRUE(Embed("", {"default"}, &response).ok());
  EXPECT_EQ(response.model(), "second");
}

}  // namespace
}  // namespace tipperary::worker
