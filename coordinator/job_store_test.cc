// The store keeps jobs, history, progress and workers across a reopen of
// the same SQLite file.
#include "coordinator/job_store.h"

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace nightshift::coordinator {
namespace {

std::string DbPath() { return std::string(std::getenv("TEST_TMPDIR")) + "/state.db"; }

TEST(JobStoreTest, EverythingSurvivesAReopen) {
  {
    auto store = JobStore::Open(DbPath());
    ASSERT_TRUE(store.ok()) << store.status();
    for (const char* id : {"b", "a", "c"}) {
      v1::JobStatus job;
      job.set_id(id);
      job.set_state(v1::JOB_STATE_QUEUED);
      ASSERT_TRUE((*store)->InsertJob(job).ok());
    }
    v1::JobStatus dup;
    dup.set_id("a");
    EXPECT_EQ((*store)->InsertJob(dup).code(), absl::StatusCode::kAlreadyExists);
    v1::JobStatus a;
    a.set_id("a");
    a.set_state(v1::JOB_STATE_RUNNING);
    ASSERT_TRUE((*store)->UpdateJob(a).ok());
    v1::JobStatus ghost;
    ghost.set_id("ghost");
    EXPECT_EQ((*store)->UpdateJob(ghost).code(), absl::StatusCode::kNotFound);
    v1::JobEvent e;
    e.set_state(v1::JOB_STATE_QUEUED);
    e.set_reason("submitted");
    ASSERT_TRUE((*store)->AppendEvent("a", e).ok());
    e.set_state(v1::JOB_STATE_RUNNING);
    e.set_reason("started on 2 workers");
    ASSERT_TRUE((*store)->AppendEvent("a", e).ok());
    v1::Progress p;
    p.set_step(10);
    ASSERT_TRUE((*store)->AppendProgress("a", p).ok());
    for (int r : {1, 0, 1}) {  // round 1 closed again after a restart
      v1::RoundInfo round;
      round.set_round(r);
      round.add_accepted(absl::StrCat("edge-", r, "-", p.step()));
      p.set_step(p.step() + 1);
      ASSERT_TRUE((*store)->PutRound("a", round).ok());
    }
    v1::WorkerInfo w;
    w.set_id("w1");
    w.set_name("alpha");
    ASSERT_TRUE((*store)->PutWorkers({w}).ok());
    w.set_name("alpha-renamed");
    ASSERT_TRUE((*store)->PutWorkers({w}).ok());
  }
  auto store = JobStore::Open(DbPath());
  ASSERT_TRUE(store.ok());
  auto jobs = (*store)->ListJobs();
  ASSERT_TRUE(jobs.ok());
  ASSERT_EQ(jobs->size(), 3u);
  EXPECT_EQ((*jobs)[0].id(), "b");  // submission order
  EXPECT_EQ((*jobs)[1].state(), v1::JOB_STATE_RUNNING);
  auto events = (*store)->Events("a");
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 2u);
  EXPECT_EQ((*events)[1].reason(), "started on 2 workers");
  EXPECT_EQ((*store)->ProgressHistory("a")->at(0).step(), 10);
  auto rounds = (*store)->Rounds("a");
  ASSERT_TRUE(rounds.ok()) << rounds.status();
  ASSERT_EQ(rounds->size(), 2u);  // by round, the later row of round 1 kept
  EXPECT_EQ((*rounds)[0].accepted(0), "edge-0-11");
  EXPECT_EQ((*rounds)[1].accepted(0), "edge-1-12");
  EXPECT_TRUE((*store)->Rounds("b")->empty());
  auto workers = (*store)->ListWorkers();
  ASSERT_EQ(workers->size(), 1u);
  EXPECT_EQ((*workers)[0].name(), "alpha-renamed");
  EXPECT_EQ((*store)->GetJob("nope").status().code(), absl::StatusCode::kNotFound);
  auto queued = (*store)->ListJobsInState(v1::JOB_STATE_QUEUED);
  ASSERT_TRUE(queued.ok()) << queued.status();
  ASSERT_EQ(queued->size(), 2u);  // "a" moved on to RUNNING
  EXPECT_EQ((*queued)[0].id(), "b");
  EXPECT_EQ((*queued)[1].id(), "c");
  EXPECT_EQ((*store)->ListJobsInState(v1::JOB_STATE_RUNNING)->at(0).id(), "a");
}

TEST(JobStoreTest, UnwritablePathIsAClearError) {
  auto store = JobStore::Open("/nonexistent-dir/x/state.db");
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(store.status().message().find("/nonexistent-dir/x/state.db"), std::string::npos);
}

}  // namespace
}  // namespace nightshift::coordinator
