// The external scaler against a real gRPC client generated from KEDA's contract.
#include "tipperary/autoscaling/external_scaler_server.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "externalscaler/externalscaler.grpc.pb.h"

namespace tipperary::autoscaling {
namespace {

using std::chrono::seconds;

class ExternalScalerServerTest : public testing::Test {
 protected:
  void SetUp() override {
    ExternalScalerServer::Options options;
    options.address = "127.0.0.1:0";
    options.stream_interval = std::chrono::milliseconds(50);
    auto server = ExternalScalerServer::Start(options, &sampler_);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->port()),
                                       grpc::InsecureChannelCredentials());
    stub_ = externalscaler::ExternalScaler::NewStub(channel);
    Feed(0, 0);
  }

  // Route "POST /v1/embeddings" at `rps` for 10 s, with `in_flight` requests now.
  void Feed(double rps, double in_flight) {
    for (int i = 0; i <= 10; ++i) {
      SampleInput in;
      in.requests["POST /v1/embeddings"] = total_;
      in.in_flight["POST /v1/embeddings"] = in_flight;
      sampler_.Sample(SignalSampler::Clock::time_point{} + seconds(t_++), in);
      total_ += rps;
    }
    total_ -= rps;
  }

  externalscaler::ScaledObjectRef Ref(std::map<std::string, std::string> metadata) {
    externalscaler::ScaledObjectRef ref;
    ref.set_name("tipperary");
    ref.set_namespace_("ml");
    for (auto& [k, v] : metadata) (*ref.mutable_scalermetadata())[k] = v;
    return ref;
  }

  std::unique_ptr<grpc::ClientContext> Context() {
    auto context = std::make_unique<grpc::ClientContext>();
    context->set_deadline(std::chrono::system_clock::now() + seconds(10));
    return context;
  }

  SignalSampler sampler_{{seconds(10), seconds(60)}, 16};
  std::unique_ptr<ExternalScalerServer> server_;
  std::unique_ptr<externalscaler::ExternalScaler::Stub> stub_;
  double total_ = 0;
  int t_ = 0;
};

TEST_F(ExternalScalerServerTest, MetricSpecAndMetrics) {
  Feed(25, 4);
  auto ref = Ref({{"route", "POST /v1/embeddings"}, {"metric", "rps"}, {"target", "10"}});
  externalscaler::GetMetricSpecResponse spec;
  ASSERT_TRUE(stub_->GetMetricSpec(Context().get(), ref, &spec).ok());
  ASSERT_EQ(spec.metricspecs_size(), 1);
  EXPECT_EQ(spec.metricspecs(0).metricname(), "tipperary-rps-10s-post-v1-embeddings");
  EXPECT_EQ(spec.metricspecs(0).targetsize(), 10);
  EXPECT_EQ(spec.metricspecs(0).targetsizefloat(), 10);

  externalscaler::GetMetricsRequest request;
  *request.mutable_scaledobjectref() = ref;
  request.set_metricname("s0-tipperary-rps-10s-post-v1-embeddings");
  externalscaler::GetMetricsResponse metrics;
  ASSERT_TRUE(stub_->GetMetrics(Context().get(), request, &metrics).ok());
  ASSERT_EQ(metrics.metricvalues_size(), 1);
  EXPECT_EQ(metrics.metricvalues(0).metricname(), "s0-tipperary-rps-10s-post-v1-embeddings");
  EXPECT_DOUBLE_EQ(metrics.metricvalues(0).metricvaluefloat(), 25);
  EXPECT_EQ(metrics.metricvalues(0).metricvalue(), 25);

  *request.mutable_scaledobjectref() = Ref({{"metric", "saturation"}, {"target", "0.8"}});
  ASSERT_TRUE(stub_->GetMetrics(Context().get(), request, &metrics).ok());
  EXPECT_DOUBLE_EQ(metrics.metricvalues(0).metricvaluefloat(), 0.25);
}

TEST_F(ExternalScalerServerTest, BacklogSecondsWhenTheWorkerReportsItElseUnavailable) {
  auto ref = Ref({{"metric", "backlog_seconds"}, {"target", "2"}});
  externalscaler::GetMetricSpecResponse spec;
  ASSERT_TRUE(stub_->GetMetricSpec(Context().get(), ref, &spec).ok());
  EXPECT_EQ(spec.metricspecs(0).metricname(), "tipperary-backlog-seconds-all");
  EXPECT_EQ(spec.metricspecs(0).targetsizefloat(), 2);
  externalscaler::GetMetricsRequest request;
  *request.mutable_scaledobjectref() = ref;
  externalscaler::GetMetricsResponse metrics;
  // No worker polled: an error, not 0 (KEDA would read 0 as idle and scale in).
  grpc::Status status = stub_->GetMetrics(Context().get(), request, &metrics);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_NE(status.error_message().find("backlog_seconds"), std::string::npos);
  externalscaler::IsActiveResponse active;
  EXPECT_EQ(stub_->IsActive(Context().get(), ref, &active).error_code(),
            grpc::StatusCode::UNAVAILABLE);

  SampleInput in;
  in.worker.emplace();
  in.worker->backlog_seconds = 7.25;
  in.worker->models["m"].backlog_seconds = 7.25;
  sampler_.Sample(SignalSampler::Clock::time_point{} + seconds(t_++), in);
  ASSERT_TRUE(stub_->GetMetrics(Context().get(), request, &metrics).ok());
  EXPECT_DOUBLE_EQ(metrics.metricvalues(0).metricvaluefloat(), 7.25);
  EXPECT_EQ(metrics.metricvalues(0).metricvalue(), 7);
  ASSERT_TRUE(stub_->IsActive(Context().get(), ref, &active).ok());
  EXPECT_TRUE(active.result());
  *request.mutable_scaledobjectref() =
      Ref({{"metric", "backlog_seconds"}, {"model", "m"}, {"target", "2"}});
  ASSERT_TRUE(stub_->GetMetrics(Context().get(), request, &metrics).ok());
  EXPECT_DOUBLE_EQ(metrics.metricvalues(0).metricvaluefloat(), 7.25);
  *request.mutable_scaledobjectref() =
      Ref({{"metric", "backlog_seconds"}, {"model", "other"}, {"target", "2"}});
  EXPECT_EQ(stub_->GetMetrics(Context().get(), request, &metrics).error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

TEST_F(ExternalScalerServerTest, IsActiveFollowsActivationTarget) {
  auto ref = Ref({{"target", "10"}, {"activationTarget", "1"}});
  externalscaler::IsActiveResponse active;
  ASSERT_TRUE(stub_->IsActive(Context().get(), ref, &active).ok());
  EXPECT_FALSE(active.result());
  Feed(3, 0);
  ASSERT_TRUE(stub_->IsActive(Context().get(), ref, &active).ok());
  EXPECT_TRUE(active.result());
}

TEST_F(ExternalScalerServerTest, StreamIsActivePushesChanges) {
  auto context = Context();
  auto reader = stub_->StreamIsActive(context.get(), Ref({{"target", "5"}}));
  externalscaler::IsActiveResponse message;
  ASSERT_TRUE(reader->Read(&message));
  EXPECT_FALSE(message.result());
  Feed(2, 0);
  ASSERT_TRUE(reader->Read(&message));
  EXPECT_TRUE(message.result());
  Feed(0, 0);
  ASSERT_TRUE(reader->Read(&message));
  EXPECT_FALSE(message.result());
  server_->Shutdown();  // Open streams end; KEDA reconnects.
  EXPECT_FALSE(reader->Read(&message));
  EXPECT_FALSE(reader->Finish().ok());
}

TEST_F(ExternalScalerServerTest, BadMetadataIsInvalidArgument) {
  externalscaler::GetMetricSpecResponse spec;
  grpc::Status status = stub_->GetMetricSpec(Context().get(), Ref({{"metric", "cpu"}}), &spec);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  status = stub_->GetMetricSpec(Context().get(), Ref({{"metric", "rps"}}), &spec);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(),
            "scalerMetadata.target is required: the value per replica to scale on, e.g. \"20\"");
}

TEST(ExternalScalerServerStartTest, BusyPortIsAnError) {
  SignalSampler sampler({seconds(10)}, 1);
  ExternalScalerServer::Options options;
  options.address = "127.0.0.1:0";
  auto first = ExternalScalerServer::Start(options, &sampler);
  ASSERT_TRUE(first.ok());
  options.address = "127.0.0.1:" + std::to_string((*first)->port());
  auto second = ExternalScalerServer::Start(options, &sampler);
  EXPECT_FALSE(second.ok());
}

}  // namespace
}  // namespace tipperary::autoscaling
