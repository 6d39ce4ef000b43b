// The status API's handler (HttpApi::Handle, no sockets: the server under
// it is security/http_server_test's): the token is checked before the
// path, roles, filters, errors as JSON with their HTTP status, and the
// /v1/jobs body cached until a job changes. Over real sockets and curl:
// tests/cluster_e2e_test.sh and tests/adversary_test.sh.
#include "coordinator/http_api.h"

#include <cstdlib>

#include "coordinator/test_spec.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace nightshift::coordinator {
namespace {

using security::HttpRequest;
using security::HttpResponse;
using testing::HasSubstr;
using testing::Not;

class HttpApiTest : public testing::Test {
 protected:
  void SetUp() override {
    store_ = *JobStore::Open(":memory:");
    CoordinatorOptions options;
    options.state_dir = std::getenv("TEST_TMPDIR");
    coordinator_ = *Coordinator::Create(store_.get(), &clock_, options);
    api_ = std::make_unique<HttpApi>(coordinator_.get());
    viewer_ = Token("viewer");
    worker_ = Token("worker");
  }
  std::string Token(const std::string& role) {
    v1::CreateTokenRequest r;
    r.set_role(role);
    return coordinator_->CreateToken(r)->token();
  }
  HttpResponse Get(const std::string& path, const std::string& query = "",
                   const std::string& token = "viewer") {
    HttpRequest r;
    r.method = "GET";
    r.path = path;
    r.query = query;
    const std::string& t = token == "viewer" ? viewer_ : token == "worker" ? worker_ : token;
    if (!t.empty()) r.authorization = "Bearer " + t;
    return api_->Handle(r);
  }
  void Submit(const std::string& id) {
    v1::SubmitJobRequest s;
    *s.mutable_spec() = SmallTestSpec(/*min_workers=*/1);
    s.set_job_id(id);
    ASSERT_TRUE(coordinator_->SubmitJob(s).ok());
  }

  FakeClock clock_;
  std::unique_ptr<JobStore> store_;
  std::unique_ptr<Coordinator> coordinator_;
  std::unique_ptr<HttpApi> api_;
  std::string viewer_, worker_;
};

TEST_F(HttpApiTest, TheTokenComesBeforeThePath) {
  EXPECT_EQ(Get("/healthz", "", "").status, 200) << "health needs no token";
  const HttpResponse none = Get("/v1/jobs", "", "");
  EXPECT_EQ(none.status, 401);
  EXPECT_THAT(none.headers,
              testing::Contains(testing::Pair("WWW-Authenticate", HasSubstr("Bearer"))));
  EXPECT_EQ(Get("/no/such/path", "", "").status, 401) << "no token: nothing about what exists";
  EXPECT_EQ(Get("/v1/jobs", "", "nst_forged").status, 401);
  const HttpResponse worker = Get("/v1/jobs", "", "worker");
  EXPECT_EQ(worker.status, 403);
  EXPECT_THAT(*worker.body, HasSubstr("this one is a worker token"));
  EXPECT_EQ(Get("/v1/jobs", "", Token("admin")).status, 200);
}

TEST_F(HttpApiTest, ErrorsAreJsonWithTheirStatus) {
  const HttpResponse missing = Get("/v1/jobs/nope");
  EXPECT_EQ(missing.status, 404);
  EXPECT_THAT(*missing.body, HasSubstr("\"code\": \"NOT_FOUND\""));
  const HttpResponse path = Get("/v2");
  EXPECT_EQ(path.status, 404);
  EXPECT_THAT(*path.body, HasSubstr("no such path: /v2"));
  const HttpResponse query = Get("/v1/workers", "pool=moon");
  EXPECT_EQ(query.status, 400);
  EXPECT_THAT(*query.body, HasSubstr("'moon' is not one of datacenter, edge"));
}

TEST_F(HttpApiTest, JobsAreFilteredByStateAndTheListIsCachedUntilAJobChanges) {
  Submit("first");
  const HttpResponse all = Get("/v1/jobs");
  ASSERT_EQ(all.status, 200);
  EXPECT_THAT(*all.body, HasSubstr("\"id\":\"first\""));
  EXPECT_EQ(Get("/v1/jobs").body, all.body) << "the same cached body, not a copy";
  EXPECT_THAT(*Get("/v1/jobs", "state=queued").body, HasSubstr("\"id\":\"first\""));
  EXPECT_EQ(*Get("/v1/jobs", "state=running").body, "{\"jobs\":[]}");
  Submit("second");
  const HttpResponse after = Get("/v1/jobs");
  EXPECT_NE(after.body, all.body);
  EXPECT_THAT(*after.body, HasSubstr("\"id\":\"second\""));
  EXPECT_THAT(*Get("/v1/jobs/second").body, HasSubstr("\"id\": \"second\""));
  EXPECT_EQ(Get("/v1/jobs/second/history").status, 200);
}

TEST_F(HttpApiTest, WorkersAreFilteredByPoolAndState) {
  v1::RegisterRequest r;
  r.set_name("car-1");
  r.set_pool(v1::WORKER_POOL_EDGE);
  ASSERT_TRUE(coordinator_->Register(r, {security::Role::kWorker, "car-1", ""}).ok());
  EXPECT_THAT(*Get("/v1/workers").body, HasSubstr("car-1"));
  EXPECT_THAT(*Get("/v1/workers", "pool=edge&state=idle").body, HasSubstr("car-1"));
  EXPECT_THAT(*Get("/v1/workers", "pool=datacenter").body, Not(HasSubstr("car-1")));
  EXPECT_THAT(*Get("/metrics").body, HasSubstr("nightshift_workers{state=\"idle\"} 1"));
}

TEST_F(HttpApiTest, MetricsHaveARunningJobsGaugesEachWorkersStateAndRequestLatencies) {
  Submit("mnist");
  v1::RegisterRequest r;
  r.set_name("dc-1");
  r.set_pool(v1::WORKER_POOL_DATACENTER);
  r.set_peer_address("127.0.0.1:1");
  const security::Principal caller{security::Role::kWorker, r.name(), ""};
  const std::string id = coordinator_->Register(r, caller)->worker_id();
  v1::HeartbeatRequest h;
  h.set_worker_id(id);
  ASSERT_TRUE(coordinator_->Heartbeat(h, caller).ok());  // assigns the job
  h.set_job_id("mnist");
  h.set_generation(1);
  ASSERT_TRUE(coordinator_->Heartbeat(h, caller).ok());
  v1::ReportProgressRequest p;
  p.set_worker_id(id);
  p.set_job_id("mnist");
  p.set_generation(1);
  p.mutable_progress()->set_step(7);
  p.mutable_progress()->set_total_steps(20);
  p.mutable_progress()->set_loss(0.5);
  p.mutable_progress()->set_samples_per_second(1234.5);
  p.mutable_progress()->set_workers(1);
  ASSERT_TRUE(coordinator_->ReportProgress(p, caller).ok());

  Get("/metrics");
  const std::string page = *Get("/metrics").body;
  EXPECT_THAT(page, HasSubstr("nightshift_jobs{state=\"running\"} 1\n"));
  EXPECT_THAT(page, HasSubstr("nightshift_job_step{job_id=\"mnist\"} 7\n"));
  EXPECT_THAT(page, HasSubstr("nightshift_job_total_steps{job_id=\"mnist\"} 20\n"));
  EXPECT_THAT(page, HasSubstr("nightshift_job_loss{job_id=\"mnist\"} 0.5\n"));
  EXPECT_THAT(page, HasSubstr("nightshift_job_samples_per_second{job_id=\"mnist\"} 1234.5\n"));
  EXPECT_THAT(page, HasSubstr("nightshift_job_workers{job_id=\"mnist\"} 1\n"));
  EXPECT_THAT(page, HasSubstr("nightshift_job_generation{job_id=\"mnist\"} 1\n"));
  EXPECT_THAT(page, Not(HasSubstr("nightshift_job_test_accuracy_ratio{")))
      << "not evaluated yet: no sample rather than a false 0";
  EXPECT_THAT(page, HasSubstr("nightshift_worker_state{worker=\"dc-1\",pool=\"datacenter\","
                              "state=\"busy\"} 1\n"));
  // This scrape's predecessor was counted; gRPC calls are not in this
  // API's view (no service here).
  EXPECT_THAT(page,
              HasSubstr("nightshift_http_requests_total{handler=\"/metrics\",code=\"200\"} 1\n"));
  EXPECT_THAT(page, HasSubstr("# TYPE nightshift_http_request_duration_seconds histogram\n"));
  EXPECT_THAT(page, Not(HasSubstr("nightshift_grpc_server_handling_seconds")));
  EXPECT_EQ(Get("/v1/jobs/nope").status, 404);
  EXPECT_THAT(
      *Get("/metrics").body,
      HasSubstr("nightshift_http_requests_total{handler=\"/v1/jobs/{id}\",code=\"404\"} 1\n"));
}

TEST_F(HttpApiTest, TheDashboardSignsInWithAViewerTokenIntoAnHttpOnlyCookie) {
  auto page = [&](const std::string& query, const std::string& cookie) {
    HttpRequest r;
    r.method = "GET";
    r.path = "/";
    r.query = query;
    r.cookie = cookie;
    return api_->Handle(r);
  };
  const HttpResponse anonymous = page("", "");
  EXPECT_EQ(anonymous.status, 401);
  EXPECT_EQ(anonymous.content_type, "text/html; charset=utf-8");
  EXPECT_THAT(*anonymous.body, HasSubstr("nightshift token create --role=viewer"));
  EXPECT_EQ(page("token=nst_forged", "").status, 401);
  EXPECT_EQ(page("token=" + worker_, "").status, 401) << "a worker token is no viewer";

  const HttpResponse login = page("token=" + viewer_, "");
  EXPECT_EQ(login.status, 303);
  EXPECT_THAT(login.headers, testing::Contains(testing::Pair("Location", "/")));
  EXPECT_THAT(login.headers, testing::Contains(testing::Pair(
                                 "Set-Cookie", "nightshift_token=" + viewer_ +
                                                   "; Path=/; HttpOnly; SameSite=Strict; Secure")));

  const std::string cookie = "theme=dark; nightshift_token=" + viewer_;
  const HttpResponse index = page("", cookie);
  EXPECT_EQ(index.status, 200);
  EXPECT_THAT(*index.body, HasSubstr("<script src=\"/assets/uPlot.iife.min.js\">"));
  EXPECT_THAT(index.headers, testing::Contains(testing::Pair("Content-Security-Policy",
                                                             HasSubstr("default-src 'self'"))));
  EXPECT_EQ(page("", "nightshift_token=" + worker_).status, 401);

  // The page's requests carry the cookie, not a header.
  HttpRequest jobs;
  jobs.method = "GET";
  jobs.path = "/v1/jobs";
  jobs.cookie = cookie;
  EXPECT_EQ(api_->Handle(jobs).status, 200);
  jobs.cookie = "nightshift_token=nst_forged";
  EXPECT_EQ(api_->Handle(jobs).status, 401);
  jobs.cookie = "nightshift_token=" + worker_;
  EXPECT_EQ(api_->Handle(jobs).status, 403);
}

TEST_F(HttpApiTest, TheDashboardsFilesAreServedWithTheirTypes) {
  const HttpResponse uplot = Get("/assets/uPlot.iife.min.js");
  EXPECT_EQ(uplot.status, 200);
  EXPECT_EQ(uplot.content_type, "text/javascript; charset=utf-8");
  EXPECT_THAT(*uplot.body, HasSubstr("leeoniya/uPlot (v1.6.32)"));
  EXPECT_EQ(Get("/assets/dashboard.css").content_type, "text/css; charset=utf-8");
  EXPECT_THAT(*Get("/assets/dashboard.js").body, HasSubstr("/v1/workers"));
  EXPECT_EQ(Get("/assets/nope.js").status, 404);
  EXPECT_EQ(Get("/assets/dashboard.js", "", "").status, 401) << "behind the token too";
}

}  // namespace
}  // namespace nightshift::coordinator
