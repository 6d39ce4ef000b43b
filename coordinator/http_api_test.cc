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

}  // namespace
}  // namespace nightshift::coordinator
