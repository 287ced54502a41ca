#include "tipperary/autoscaling/scaler_query.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace tipperary::autoscaling {
namespace {

using std::chrono::seconds;
using testing::HasSubstr;

const std::vector<seconds> kWindows = {seconds(10), seconds(60)};

std::string Error(const std::map<std::string, std::string>& m) {
  absl::StatusOr<ScalerQuery> q = ParseScalerQuery(m, kWindows);
  return q.ok() ? "(parsed)" : std::string(q.status().message());
}

TEST(ScalerQueryTest, Defaults) {
  absl::StatusOr<ScalerQuery> q = ParseScalerQuery({{"target", "20"}}, kWindows);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->kind, SignalKind::kRps);
  EXPECT_EQ(q->route, "");
  EXPECT_EQ(q->window, 0u);
  EXPECT_EQ(q->target, 20);
  EXPECT_EQ(q->activation_target, 0);
  EXPECT_EQ(q->metric_name, "tipperary-rps-10s-all");
}

TEST(ScalerQueryTest, EveryKey) {
  absl::StatusOr<ScalerQuery> q = ParseScalerQuery({{"route", "POST /v1/embeddings"},
                                                    {"metric", "rps"},
                                                    {"window", "60s"},
                                                    {"target", "12.5"},
                                                    {"activationTarget", "0.5"}},
                                                   kWindows);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->route, "POST /v1/embeddings");
  EXPECT_EQ(q->window, 1u);
  EXPECT_EQ(q->target, 12.5);
  EXPECT_EQ(q->activation_target, 0.5);
  EXPECT_EQ(q->metric_name, "tipperary-rps-60s-post-v1-embeddings");
  q = ParseScalerQuery({{"metric", "queue_depth"}, {"target", "64"}}, kWindows);
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->metric_name, "tipperary-queue-depth-all");
  q = ParseScalerQuery({{"metric", "backlog_seconds"}, {"target", "2"}}, kWindows);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->kind, SignalKind::kBacklogSeconds);
  EXPECT_EQ(q->model, "");
  EXPECT_EQ(q->metric_name, "tipperary-backlog-seconds-all");
  q = ParseScalerQuery({{"metric", "backlog_seconds"}, {"model", "bge-small.v1"}, {"target", "2"}},
                       kWindows);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->model, "bge-small.v1");
  EXPECT_EQ(q->metric_name, "tipperary-backlog-seconds-model-bge-small-v1");
}

TEST(ScalerQueryTest, Errors) {
  EXPECT_THAT(Error({}), HasSubstr("scalerMetadata.target is required"));
  EXPECT_EQ(Error({{"target", "0"}}), "scalerMetadata.target: \"0\" is not a positive number");
  EXPECT_EQ(Error({{"target", "x"}}), "scalerMetadata.target: \"x\" is not a positive number");
  EXPECT_EQ(Error({{"target", "1"}, {"activationTarget", "-1"}}),
            "scalerMetadata.activationTarget: \"-1\" is not a non-negative number");
  EXPECT_EQ(Error({{"target", "1"}, {"metric", "cpu"}}),
            "scalerMetadata.metric: unknown metric \"cpu\" (use rps, inflight, saturation, "
            "queue_depth, batch_fill, backlog_seconds)");
  EXPECT_EQ(Error({{"target", "1"}, {"window", "30s"}}),
            "scalerMetadata.window: \"30s\" is not a rate window of this proxy (10s, 60s)");
  EXPECT_EQ(Error({{"target", "1"}, {"metric", "inflight"}, {"window", "10s"}}),
            "scalerMetadata.window: only metric rps has a window");
  EXPECT_EQ(Error({{"target", "1"}, {"model", "m"}}),
            "scalerMetadata.model: only metric backlog_seconds is per model");
  EXPECT_EQ(Error({{"target", "1"}, {"metric", "backlog_seconds"}, {"model", ""}}),
            "scalerMetadata.model: empty (leave it out for all models)");
}

TEST(ScalerQueryTest, ReadSignal) {
  SignalSnapshot s;
  s.windows = kWindows;
  s.all.rps = {30, 20};
  s.all.in_flight = 6;
  s.all.saturation = 0.75;
  s.routes["POST /v1/embeddings"].rps = {12, 8};
  s.routes["POST /v1/embeddings"].in_flight = 2;
  s.worker.queue_depth = 40;
  s.worker.batch_fill = 0.6;
  auto read = [&](std::map<std::string, std::string> m) {
    // Not m["target"] = "1": GCC 12 warns -Wrestrict there (a false positive).
    m.try_emplace("target", "1");
    return ReadSignal(s, *ParseScalerQuery(m, kWindows));
  };
  EXPECT_EQ(read({}), 30);
  EXPECT_EQ(read({{"window", "60s"}}), 20);
  EXPECT_EQ(read({{"route", "POST /v1/embeddings"}}), 12);
  EXPECT_EQ(read({{"route", "POST /v1/embeddings"}, {"metric", "inflight"}}), 2);
  EXPECT_EQ(read({{"route", "GET /v1/models"}}), 0);  // Not seen yet.
  EXPECT_EQ(read({{"metric", "saturation"}}), 0.75);
  EXPECT_EQ(read({{"metric", "queue_depth"}}), 40);
  EXPECT_EQ(read({{"metric", "batch_fill"}}), 0.6);
  // backlog_seconds: unavailable (not 0) while the worker is unknown or does not report it.
  EXPECT_EQ(read({{"metric", "backlog_seconds"}}), std::nullopt);
  s.worker.known = true;
  EXPECT_EQ(read({{"metric", "backlog_seconds"}}), std::nullopt);  // An older worker.
  s.worker.backlog_seconds = 3.5;
  s.worker.models["a"].backlog_seconds = 1.25;
  s.worker.models["b"].queued_tokens = 10;  // Tokens wait, no rate yet.
  EXPECT_EQ(read({{"metric", "backlog_seconds"}}), 3.5);
  EXPECT_EQ(read({{"metric", "backlog_seconds"}, {"model", "a"}}), 1.25);
  EXPECT_EQ(read({{"metric", "backlog_seconds"}, {"model", "b"}}), std::nullopt);
  EXPECT_EQ(read({{"metric", "backlog_seconds"}, {"model", "c"}}), std::nullopt);
  s.worker.known = false;  // The last poll failed: what it said before is stale.
  EXPECT_EQ(read({{"metric", "backlog_seconds"}}), std::nullopt);
}

}  // namespace
}  // namespace tipperary::autoscaling
