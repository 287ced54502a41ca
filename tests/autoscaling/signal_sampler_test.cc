#include "tipperary/autoscaling/signal_sampler.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

namespace tipperary::autoscaling {
namespace {

using std::chrono::seconds;

class SignalSamplerTest : public testing::Test {
 protected:
  SignalSampler::Clock::time_point At(int s) {
    return SignalSampler::Clock::time_point{} + seconds(s);
  }
  SignalSampler sampler_{{seconds(10), seconds(60)}, /*capacity=*/8};
};

TEST_F(SignalSamplerTest, EmptyBeforeTheFirstSample) {
  SignalSnapshot s = sampler_.Snapshot();
  EXPECT_FALSE(s.sampled);
  EXPECT_EQ(s.capacity, 8u);
  ASSERT_EQ(s.all.rps.size(), 2u);
  EXPECT_EQ(s.all.rps[0], 0);
  EXPECT_TRUE(s.routes.empty());
}

TEST_F(SignalSamplerTest, PerRouteAndTotalRates) {
  // Route a: 4/s from t=0; route b appears at t=20 with 2/s; unmatched noise is ignored.
  double a = 0, b = 0, unmatched = 0;
  for (int t = 0; t <= 30; ++t) {
    SampleInput in;
    in.requests["POST /v1/a"] = a;
    if (t > 20) in.requests["GET /v1/b"] = b;
    in.requests["unmatched"] = unmatched;
    in.in_flight["POST /v1/a"] = 3;
    in.in_flight["GET /v1/b"] = t > 20 ? 1 : 0;
    in.in_flight["unmatched"] = 5;
    sampler_.Sample(At(t), in);
    a += 4;
    if (t >= 20) b += 2;
    unmatched += 100;
  }
  SignalSnapshot s = sampler_.Snapshot();
  ASSERT_TRUE(s.sampled);
  ASSERT_EQ(s.routes.size(), 2u);
  EXPECT_DOUBLE_EQ(s.routes["POST /v1/a"].rps[0], 4);
  EXPECT_DOUBLE_EQ(s.routes["POST /v1/a"].rps[1], 4);
  // b's windows reach back before it existed (it stood at 0): 10 s of 2/s over 10 s.
  EXPECT_DOUBLE_EQ(s.routes["GET /v1/b"].rps[0], 2);
  EXPECT_DOUBLE_EQ(s.routes["GET /v1/b"].rps[1], 20.0 / 30);
  EXPECT_DOUBLE_EQ(s.all.rps[0], 6);
  EXPECT_DOUBLE_EQ(s.all.in_flight, 4);
  EXPECT_DOUBLE_EQ(s.all.saturation, 0.5);
  EXPECT_DOUBLE_EQ(s.routes["POST /v1/a"].saturation, 3.0 / 8);
  EXPECT_FALSE(s.worker.known);
}

TEST_F(SignalSamplerTest, WorkerBatchFill) {
  WorkerCounters w;
  w.max_batch_size = 32;
  w.max_batch_tokens = 1024;
  for (int t = 0; t <= 10; ++t) {
    SampleInput in;
    in.worker = w;
    in.worker->queue_depth = 7;
    sampler_.Sample(At(t), in);
    // 10 batches/s of 8 texts (size-bound fill 0.25) and 512 padded tokens (0.5).
    w.batches += 10;
    w.batch_texts += 80;
    w.batch_tokens += 5120;
  }
  SignalSnapshot s = sampler_.Snapshot();
  EXPECT_TRUE(s.worker.known);
  EXPECT_DOUBLE_EQ(s.worker.queue_depth, 7);
  EXPECT_DOUBLE_EQ(s.worker.batch_fill, 0.5);
  EXPECT_DOUBLE_EQ(s.worker.batches_per_second, 10);
  sampler_.Sample(At(11), SampleInput{});  // Worker poll failed.
  EXPECT_FALSE(sampler_.Snapshot().worker.known);
}

TEST_F(SignalSamplerTest, WorkerBacklogIsRelayedAndNullWhenNotReported) {
  WorkerCounters w;
  SampleInput in;
  in.worker = w;  // An older worker: no backlog fields.
  sampler_.Sample(At(0), in);
  SignalSnapshot s = sampler_.Snapshot();
  EXPECT_TRUE(s.worker.known);
  EXPECT_FALSE(s.worker.backlog_seconds.has_value());
  google::protobuf::Struct doc;
  std::string json = SnapshotToJson(s);
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(json, &doc).ok()) << json;
  EXPECT_TRUE(
      doc.fields().at("worker").struct_value().fields().at("backlog_seconds").has_null_value());
  EXPECT_TRUE(
      doc.fields().at("all").struct_value().fields().at("backlog_seconds").has_null_value());

  w.queued_tokens = 6000;
  w.backlog_seconds = 2.5;
  w.models["a"] = {.queued_tokens = 6000, .tokens_per_second = 3000, .backlog_seconds = 2};
  w.models["b"] = {.queued_tokens = 0, .tokens_per_second = std::nullopt, .backlog_seconds = 0.5};
  in.worker = w;
  sampler_.Sample(At(1), in);
  s = sampler_.Snapshot();
  EXPECT_EQ(s.worker.backlog_seconds, 2.5);
  EXPECT_EQ(s.worker.queued_tokens, 6000);
  ASSERT_EQ(s.worker.models.size(), 2u);
  json = SnapshotToJson(s);
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(json, &doc).ok()) << json;
  const auto& worker = doc.fields().at("worker").struct_value().fields();
  EXPECT_DOUBLE_EQ(worker.at("backlog_seconds").number_value(), 2.5);
  EXPECT_DOUBLE_EQ(worker.at("queued_tokens").number_value(), 6000);
  EXPECT_DOUBLE_EQ(
      doc.fields().at("all").struct_value().fields().at("backlog_seconds").number_value(), 2.5);
  const auto& models = worker.at("models").struct_value().fields();
  const auto& a = models.at("a").struct_value().fields();
  EXPECT_DOUBLE_EQ(a.at("queued_tokens").number_value(), 6000);
  EXPECT_DOUBLE_EQ(a.at("tokens_per_second").number_value(), 3000);
  EXPECT_DOUBLE_EQ(a.at("backlog_seconds").number_value(), 2);
  EXPECT_TRUE(models.at("b").struct_value().fields().at("tokens_per_second").has_null_value());
}

TEST_F(SignalSamplerTest, JsonIsValidAndNamesEveryWindow) {
  SampleInput in;
  in.requests["POST /v1/\"quoted\""] = 0;
  sampler_.Sample(At(0), in);
  in.requests["POST /v1/\"quoted\""] = 10;
  in.in_flight["POST /v1/\"quoted\""] = 2;
  sampler_.Sample(At(1), in);
  std::string json = SnapshotToJson(sampler_.Snapshot());
  google::protobuf::Struct doc;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(json, &doc).ok()) << json;
  const auto& all = doc.fields().at("all").struct_value().fields();
  EXPECT_DOUBLE_EQ(all.at("rps_10s").number_value(), 10);
  EXPECT_DOUBLE_EQ(all.at("rps_60s").number_value(), 10);
  EXPECT_DOUBLE_EQ(all.at("inflight").number_value(), 2);
  EXPECT_DOUBLE_EQ(all.at("saturation").number_value(), 0.25);
  EXPECT_TRUE(all.contains("queue_depth"));
  const auto& route = doc.fields().at("routes").struct_value().fields().at("POST /v1/\"quoted\"");
  EXPECT_DOUBLE_EQ(route.struct_value().fields().at("rps_10s").number_value(), 10);
  EXPECT_EQ(doc.fields().at("window_seconds").list_value().values_size(), 2);
  EXPECT_FALSE(doc.fields().at("worker").struct_value().fields().at("known").bool_value());
}

}  // namespace
}  // namespace tipperary::autoscaling
