#include "coordinator/http_routes.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace nightshift::coordinator {
namespace {

using testing::HasSubstr;

TEST(HttpRoutesTest, EveryPathRoutesToItsEndpoint) {
  EXPECT_EQ(ParseRoute("/healthz", "")->endpoint, Endpoint::kHealth);
  EXPECT_EQ(ParseRoute("/metrics", "")->endpoint, Endpoint::kMetrics);
  EXPECT_EQ(ParseRoute("/v1/jobs", "")->endpoint, Endpoint::kJobs);
  EXPECT_EQ(ParseRoute("/v1/jobs/", "")->endpoint, Endpoint::kJobs) << "one trailing / ignored";
  EXPECT_EQ(ParseRoute("/v1/workers", "")->endpoint, Endpoint::kWorkers);
  const Route job = *ParseRoute("/v1/jobs/mnist-1", "");
  EXPECT_EQ(job.endpoint, Endpoint::kJob);
  EXPECT_EQ(job.job_id, "mnist-1");
  const Route history = *ParseRoute("/v1/jobs/a%20b/history", "");
  EXPECT_EQ(history.endpoint, Endpoint::kJobHistory);
  EXPECT_EQ(history.job_id, "a b") << "segments are percent-decoded";
  EXPECT_EQ(ParseRoute("/", "")->endpoint, Endpoint::kDashboard);
  const Route login = *ParseRoute("/", "token=nst_a%2Bb");
  EXPECT_EQ(login.endpoint, Endpoint::kDashboard);
  EXPECT_EQ(login.login_token, "nst_a+b");
  const Route asset = *ParseRoute("/assets/dashboard.js", "");
  EXPECT_EQ(asset.endpoint, Endpoint::kAsset);
  EXPECT_EQ(asset.asset, "dashboard.js");
  EXPECT_EQ(ParseRoute("/v1/models", "")->endpoint, Endpoint::kModels);
  EXPECT_EQ(ParseRoute("/v1/models", "name=fashion%2Dmlp")->model_name, "fashion-mlp");
}

TEST(HttpRoutesTest, UnknownPathsAreNotFound) {
  for (const char* path : {"", "v1/jobs", "/assets", "/assets/", "/assets/a/b", "/v1",
                           "/v1/jobs//history", "/v1/jobs/x/y", "/v1/jobs/x/history/z", "/v2/jobs",
                           "/v1/workers/w1", "/healthz/x", "/v1/models/x"}) {
    EXPECT_EQ(ParseRoute(path, "").status().code(), absl::StatusCode::kNotFound) << path;
  }
}

TEST(HttpRoutesTest, QueriesFilterAndAreDecoded) {
  const Route running = *ParseRoute("/v1/jobs", "state=RUNNING");
  ASSERT_TRUE(running.job_state.has_value());
  EXPECT_EQ(*running.job_state, v1::JOB_STATE_RUNNING);
  const Route edge = *ParseRoute("/v1/workers", "pool=edge&&state=%69dle");
  EXPECT_EQ(*edge.pool, v1::WORKER_POOL_EDGE);
  EXPECT_EQ(*edge.worker_state, v1::WORKER_STATE_IDLE);
  EXPECT_FALSE(ParseRoute("/v1/workers", "")->pool.has_value());
  const Route page = *ParseRoute("/v1/workers", "page_size=50&page_token=w-00ff");
  EXPECT_EQ(page.page_size, 50);
  EXPECT_EQ(page.page_token, "w-00ff");
  EXPECT_THAT(ParseRoute("/v1/workers", "page_size=0").status().message(),
              HasSubstr("page_size: '0' is not a number from 1 to 10000"));
}

TEST(HttpRoutesTest, BadQueriesNameTheParameterOrOffset) {
  auto unknown = ParseRoute("/v1/jobs", "state=running&colour=red");
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(unknown.status().message(), HasSubstr("'colour'"));
  EXPECT_THAT(unknown.status().message(), HasSubstr("known: state"));
  auto twice = ParseRoute("/v1/workers", "pool=edge&pool=edge");
  EXPECT_THAT(twice.status().message(), HasSubstr("pool given twice"));
  auto value = ParseRoute("/v1/workers", "state=asleep");
  EXPECT_THAT(value.status().message(), HasSubstr("'asleep' is not one of idle, busy"));
  EXPECT_THAT(ParseRoute("/v1/jobs", "state=unspecified").status().message(),
              HasSubstr("is not one of"));
  EXPECT_THAT(ParseRoute("/metrics", "x=1").status().message(), HasSubstr("takes none"));
  EXPECT_THAT(ParseRoute("/", "user=me").status().message(), HasSubstr("known: token"));
  // Offsets count from the start of the target ("/v1/jobs?" is 9 bytes).
  EXPECT_THAT(ParseRoute("/v1/jobs", "state=%zz").status().message(),
              HasSubstr("bad percent-escape at offset 15"));
  EXPECT_THAT(ParseRoute("/v1/jobs/ab%4", "").status().message(),
              HasSubstr("bad percent-escape at offset 11"));
  EXPECT_THAT(ParseRoute("/v1/jobs/a%0ab", "").status().message(),
              HasSubstr("control character at offset 10"));
}

}  // namespace
}  // namespace nightshift::coordinator
