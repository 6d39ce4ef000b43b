// The coordinator's logic in-process, with a fake clock: lifecycle,
// scheduling, leases, cancel, failures and restart.
#include "coordinator/coordinator.h"

#include <algorithm>
#include <cstdlib>
#include <map>
#include <set>

#include "checkpoint/model_description.h"
#include "checkpoint/safetensors.h"
#include "coordinator/test_spec.h"
#include "coordinator/upload_check.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "security/tokens.h"
#include "spec/defaults.h"
#include "spec/tensors.h"

namespace nightshift::coordinator {
namespace {

using testing::HasSubstr;

v1::JobSpec Spec(int min_workers = 2) { return SmallTestSpec(min_workers); }

// A well-formed upload of `spec`'s tensors (zeros), as a worker writes one.
std::string Upload(const v1::JobSpec& spec, bool final) {
  SafetensorsWriter w;
  const std::vector<TensorSpec> tensors = *ExpectedCheckpointTensors(spec, final);
  for (const TensorSpec& t : tensors) w.Add(t.name, Tensor(t.shape));
  w.AddMetadata("format", "nightshift.checkpoint.v1");
  return w.Serialize();
}

// The final model as a trainer uploads it: it describes itself.
std::string DescribedModel(const v1::JobSpec& spec) {
  SafetensorsWriter w;
  const std::vector<TensorSpec> tensors = *ExpectedCheckpointTensors(spec, true);
  for (const TensorSpec& t : tensors) w.Add(t.name, Tensor(t.shape));
  w.AddMetadata("format", "nightshift.checkpoint.v1");
  AddModelDescription(DescribeModel(spec, ExpectedDatasetShape(spec.dataset()).sample_shape), &w);
  return w.Serialize();
}

class CoordinatorTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::string(std::getenv("TEST_TMPDIR")) + "/" +
           testing::UnitTest::GetInstance()->current_test_info()->name();
    ASSERT_EQ(system(("mkdir -p " + dir_).c_str()), 0);
    store_ = *JobStore::Open(dir_ + "/state.db");
    Restart();
  }
  void Restart() {
    coordinator_.reset();
    CoordinatorOptions options;
    options.state_dir = dir_;
    options.lease_ttl = absl::Seconds(5);
    coordinator_ = *Coordinator::Create(store_.get(), &clock_, options);
  }
  // The worker calls as the worker they name would make them (its
  // credential's principal; identity itself is tested below).
  security::Principal Caller(const std::string& worker_id) {
    for (const auto& w : coordinator_->ListWorkers()) {
      if (w.id() == worker_id) return {security::Role::kWorker, w.name(), ""};
    }
    return {security::Role::kWorker, "", ""};
  }
  absl::StatusOr<v1::RegisterResponse> RegisterAs(const v1::RegisterRequest& r) {
    return coordinator_->Register(r, {security::Role::kWorker, r.name(), ""});
  }
  // A heartbeat as a worker on a reliable link sends it: it says which
  // directives it applied (every one the replies so far carried).
  absl::StatusOr<v1::HeartbeatResponse> HeartbeatAs(v1::HeartbeatRequest h) {
    int64_t& applied = applied_[h.worker_id()];
    h.set_directives_applied(applied);
    absl::StatusOr<v1::HeartbeatResponse> response =
        coordinator_->Heartbeat(h, Caller(h.worker_id()));
    if (response.ok()) {
      for (const v1::Directive& d : response->directives()) {
        applied = std::max(applied, d.sequence());
      }
    }
    return response;
  }
  absl::Status Report(const v1::ReportProgressRequest& r) {
    return coordinator_->ReportProgress(r, Caller(r.worker_id()));
  }
  std::string Register(const std::string& name, double rate = 100,
                       v1::WorkerPool pool = v1::WORKER_POOL_DATACENTER) {
    v1::RegisterRequest r;
    r.set_name(name);
    r.set_pool(pool);
    r.set_samples_per_second(rate);
    if (pool == v1::WORKER_POOL_DATACENTER) r.set_peer_address(name + ":1");
    return RegisterAs(r)->worker_id();
  }
  v1::HeartbeatResponse Beat(const std::string& worker, const std::string& job = "",
                             int64_t generation = 0) {
    v1::HeartbeatRequest h;
    h.set_worker_id(worker);
    h.set_job_id(job);
    h.set_generation(generation);
    auto r = HeartbeatAs(h);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : v1::HeartbeatResponse();
  }
  // Worker `from`'s report, in generation 1 of job "j", that rank `lost`
  // fell silent, with its last commit at `committed`.
  static v1::ReportProgressRequest SurvivorsReport(const std::string& from, int lost,
                                                   int64_t committed) {
    v1::ReportProgressRequest r;
    r.set_worker_id(from);
    r.set_job_id("j");
    r.set_generation(1);
    r.set_error("all-reduce: a rank did not answer");
    r.add_lost_ranks(lost);
    r.set_committed_step(committed);
    return r;
  }
  // `publish_as`: the model name the job's final model is published under.
  v1::JobStatus Submit(const std::string& id, int min_workers = 2, int max_workers = 0,
                       const std::string& publish_as = "") {
    v1::SubmitJobRequest s;
    *s.mutable_spec() = Spec(min_workers);
    s.mutable_spec()->set_max_workers(max_workers);
    s.mutable_spec()->set_publish_as(publish_as);
    s.set_job_id(id);
    auto r = coordinator_->SubmitJob(s);
    EXPECT_TRUE(r.ok()) << r.status();
    return *r;
  }

  std::string dir_;
  FakeClock clock_;
  std::unique_ptr<JobStore> store_;
  std::unique_ptr<Coordinator> coordinator_;
  std::map<std::string, int64_t> applied_;  // by worker id: Directive.sequence
};

TEST_F(CoordinatorTest, JobStartsWhenEnoughWorkersAndSplitsByRate) {
  EXPECT_EQ(Submit("j1").state(), v1::JOB_STATE_QUEUED);
  const std::string a = Register("a", 300), b = Register("b", 100);
  auto ra = Beat(a);
  auto rb = Beat(b);
  ASSERT_EQ(ra.directives_size() + rb.directives_size(), 2);
  const v1::Assignment& fast = ra.directives(0).assign();
  EXPECT_EQ(fast.job_id(), "j1");
  EXPECT_EQ(fast.generation(), 1);
  EXPECT_EQ(fast.world_size(), 2);
  EXPECT_EQ(fast.rank(), 0);  // fastest first
  EXPECT_EQ(rb.directives(0).assign().rank(), 1);
  EXPECT_THAT(fast.peer_addresses(), testing::ElementsAre("a:1", "b:1"));
  EXPECT_NEAR(fast.shard_weights(0), 0.75, 1e-9);
  auto job = coordinator_->GetJob("j1");
  EXPECT_EQ(job->state(), v1::JOB_STATE_RUNNING);
  EXPECT_THAT(job->reason(), HasSubstr("started on 2 workers: a, b"));
  // Finished by rank 0: SUCCEEDED, and the workers are free again.
  v1::ReportProgressRequest done;
  done.set_worker_id(a);
  done.set_job_id("j1");
  done.set_generation(1);
  done.mutable_progress()->set_step(20);
  done.set_finished(true);
  ASSERT_TRUE(Report(done).ok());
  EXPECT_EQ(coordinator_->GetJob("j1")->state(), v1::JOB_STATE_SUCCEEDED);
  Beat(a);
  Beat(b);
  for (const auto& w : coordinator_->ListWorkers()) EXPECT_EQ(w.state(), v1::WORKER_STATE_IDLE);
  auto history = coordinator_->GetJobHistory("j1");
  ASSERT_EQ(history->events_size(), 3);
  EXPECT_EQ(history->events(2).state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(history->progress(0).step(), 20);
}

TEST_F(CoordinatorTest, AWorkerRegisteredAgainBeatsUnderItsNewIdOnly) {
  const std::string first = Register("a");
  const std::string second = Register("a");  // restarted: a new id
  ASSERT_NE(first, second);
  v1::HeartbeatRequest h;
  h.set_worker_id(first);
  EXPECT_EQ(coordinator_->Heartbeat(h, Caller(second)).status().code(),
            absl::StatusCode::kNotFound);
  h.set_worker_id(second);
  EXPECT_TRUE(coordinator_->Heartbeat(h, Caller(second)).ok());
  // The old id's lease comes due and changes nothing; the new one's holds.
  clock_.Advance(absl::Seconds(4));
  EXPECT_TRUE(coordinator_->Heartbeat(h, Caller(second)).ok());
  clock_.Advance(absl::Seconds(4));
  EXPECT_TRUE(coordinator_->Heartbeat(h, Caller(second)).ok());
  ASSERT_EQ(coordinator_->ListWorkers().size(), 1u);
  EXPECT_EQ(coordinator_->ListWorkers()[0].state(), v1::WORKER_STATE_IDLE);
}

TEST_F(CoordinatorTest, AHeartbeatReplyLostOnTheLinkLosesNoDirective) {
  Submit("j", 1, 1);
  const std::string a = Register("a", 200);
  // The coordinator answers a's heartbeat with j's assignment; the link is
  // cut before a reads it.
  v1::HeartbeatRequest h;
  h.set_worker_id(a);
  absl::StatusOr<v1::HeartbeatResponse> lost = coordinator_->Heartbeat(h, Caller(a));
  ASSERT_TRUE(lost.ok()) << lost.status();
  ASSERT_EQ(lost->directives_size(), 1);
  ASSERT_TRUE(lost->directives(0).has_assign());
  EXPECT_EQ(lost->directives(0).sequence(), 1);
  // a, still without a job, beats again: the same assignment comes again
  // and j still waits for a (it was not released as if a had ended it).
  absl::StatusOr<v1::HeartbeatResponse> again = coordinator_->Heartbeat(h, Caller(a));
  ASSERT_TRUE(again.ok()) << again.status();
  ASSERT_EQ(again->directives_size(), 1);
  EXPECT_EQ(again->directives(0).sequence(), 1);
  EXPECT_EQ(again->directives(0).assign().job_id(), "j");
  EXPECT_EQ(coordinator_->GetJob("j")->state(), v1::JOB_STATE_RUNNING);
  EXPECT_THAT(coordinator_->GetJob("j")->workers(), testing::ElementsAre("a"));
  // Applied and said so: it is not sent a third time; a cancel that
  // follows is numbered next.
  h.set_job_id("j");
  h.set_generation(1);
  h.set_directives_applied(1);
  absl::StatusOr<v1::HeartbeatResponse> applied = coordinator_->Heartbeat(h, Caller(a));
  ASSERT_TRUE(applied.ok()) << applied.status();
  EXPECT_EQ(applied->directives_size(), 0);
  ASSERT_TRUE(coordinator_->CancelJob("j", "by the test").ok());
  absl::StatusOr<v1::HeartbeatResponse> cancel = coordinator_->Heartbeat(h, Caller(a));
  ASSERT_TRUE(cancel.ok()) << cancel.status();
  ASSERT_EQ(cancel->directives_size(), 1);
  EXPECT_EQ(cancel->directives(0).cancel_job_id(), "j");
  EXPECT_EQ(cancel->directives(0).sequence(), 2);
}

TEST_F(CoordinatorTest, ResubmittingAnIdDoesNotStartASecondJob) {
  Submit("same");
  Submit("same");
  EXPECT_EQ(coordinator_->ListJobs()->size(), 1u);
}

TEST_F(CoordinatorTest, BadInputGetsItsCode) {
  v1::SubmitJobRequest bad;
  *bad.mutable_spec() = Spec();
  bad.mutable_spec()->mutable_optimizer()->mutable_sgd()->set_lr(0);
  auto r = coordinator_->SubmitJob(bad);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("optimizer.sgd.lr"));
  EXPECT_EQ(coordinator_->GetJob("nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(coordinator_->CancelJob("nope", "").status().code(), absl::StatusCode::kNotFound);
  Submit("j");
  ASSERT_TRUE(coordinator_->CancelJob("j", "").ok());
  EXPECT_EQ(coordinator_->CancelJob("j", "").status().code(),
            absl::StatusCode::kFailedPrecondition);
  v1::SubmitJobRequest edge;
  *edge.mutable_spec() = Spec();
  edge.mutable_spec()->add_pools(v1::WORKER_POOL_EDGE);
  EXPECT_THAT(std::string(coordinator_->SubmitJob(edge).status().message()),
              HasSubstr("sync.diloco"));
}

TEST_F(CoordinatorTest, CancelTellsWorkersAndFreesThem) {
  Submit("j");
  const std::string a = Register("a"), b = Register("b");
  Beat(a);
  Beat(b);
  ASSERT_TRUE(coordinator_->CancelJob("j", "").ok());
  auto ra = Beat(a, "j");
  ASSERT_EQ(ra.directives_size(), 1);
  EXPECT_EQ(ra.directives(0).cancel_job_id(), "j");
  Submit("next");  // waits: a and b still run j until they say they stopped
  EXPECT_EQ(coordinator_->GetJob("next")->state(), v1::JOB_STATE_QUEUED);
  Beat(a);
  Beat(b);
  EXPECT_EQ(coordinator_->GetJob("next")->state(), v1::JOB_STATE_RUNNING);
}

TEST_F(CoordinatorTest, ALostLeaseFencesTheWorkerAndTheJobWaitsThenFailsNamingIt) {
  v1::SubmitJobRequest submit;
  *submit.mutable_spec() = Spec(2);
  submit.mutable_spec()->set_wait_for_workers_seconds(30);
  submit.set_job_id("j");
  ASSERT_TRUE(coordinator_->SubmitJob(submit).ok());
  const std::string a = Register("a", 200), b = Register("b", 100);
  Beat(a);
  Beat(b);
  clock_.Advance(absl::Seconds(3));
  Beat(a, "j", 1);
  clock_.Advance(absl::Seconds(3));  // b silent for 6 s > 5 s TTL
  auto ra = Beat(a, "j", 1);
  auto job = coordinator_->GetJob("j");
  EXPECT_EQ(job->state(), v1::JOB_STATE_WAITING);
  EXPECT_THAT(job->reason(), HasSubstr("b (rank 1) lost its lease"));
  EXPECT_THAT(job->reason(), HasSubstr("waiting for workers: 1 of at least 2"));
  EXPECT_TRUE(job->has_wait_deadline());
  ASSERT_EQ(ra.directives_size(), 1);
  EXPECT_EQ(ra.directives(0).yield_job_id(), "j") << "the member holds the model";
  v1::HeartbeatRequest h;
  h.set_worker_id(b);
  EXPECT_EQ(HeartbeatAs(h).status().code(), absl::StatusCode::kNotFound);
  // Nobody joins: after 30 s the job fails, naming the lost worker.
  for (int i = 0; i < 14; ++i) {
    clock_.Advance(absl::Seconds(2));
    Beat(a, "j", 1);
    coordinator_->Tick();
    ASSERT_EQ(coordinator_->GetJob("j")->state(), v1::JOB_STATE_WAITING) << i;
  }
  clock_.Advance(absl::Seconds(3));
  coordinator_->Tick();  // waits expire on the coordinator's periodic tick
  ra = Beat(a, "j", 1);
  job = coordinator_->GetJob("j");
  EXPECT_EQ(job->state(), v1::JOB_STATE_FAILED);
  EXPECT_THAT(job->reason(), HasSubstr("no worker joined within 30 s"));
  EXPECT_THAT(job->reason(), HasSubstr("lost: b (lease expired)"));
  ASSERT_EQ(ra.directives_size(), 1);
  EXPECT_EQ(ra.directives(0).cancel_job_id(), "j");
}

TEST_F(CoordinatorTest, AWaitingJobGoesOnWhenAWorkerJoins) {
  Submit("j", 2);
  const std::string a = Register("a", 200), b = Register("b", 100);
  Beat(a);
  Beat(b);
  ASSERT_TRUE(Report(SurvivorsReport(a, 1, 40)).ok());
  ASSERT_EQ(coordinator_->GetJob("j")->state(), v1::JOB_STATE_WAITING);
  const std::string c = Register("c", 100);
  const v1::HeartbeatResponse rc = Beat(c);  // c is free: the job takes it
  auto job = coordinator_->GetJob("j");
  EXPECT_EQ(job->state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(job->generation(), 2);
  EXPECT_THAT(job->workers(), testing::ElementsAre("a", "c"));
  EXPECT_FALSE(job->has_wait_deadline());
  ASSERT_EQ(rc.directives_size(), 1);
  EXPECT_EQ(rc.directives(0).assign().rank(), 1);
  EXPECT_TRUE(rc.directives(0).assign().resume_in_memory()) << "c gets the model from a";
  const v1::HeartbeatResponse waiting = Beat(a, "j", 1);
  for (const v1::Directive& d : waiting.directives()) {
    EXPECT_FALSE(d.has_assign()) << "a waits for c to load its data";
  }
  v1::HeartbeatRequest ready;
  ready.set_worker_id(c);
  ready.set_job_id("j");
  ready.set_generation(2);
  ready.set_job_ready(true);
  ASSERT_TRUE(HeartbeatAs(ready).ok());
  const v1::HeartbeatResponse ra = Beat(a, "j", 1);
  ASSERT_GE(ra.directives_size(), 1);
  EXPECT_EQ(ra.directives(ra.directives_size() - 1).assign().generation(), 2);
}

TEST_F(CoordinatorTest, AFreeWorkerJoinsARunningJobOnceItsGenerationIsSettled) {
  Submit("j", 1, 2);
  const std::string a = Register("a", 200);
  Beat(a);  // starts j on a alone
  ASSERT_EQ(coordinator_->GetJob("j")->generation(), 1);
  const std::string b = Register("b", 100);
  Beat(b);  // a has not yet said it runs generation 1: no change
  EXPECT_EQ(coordinator_->GetJob("j")->generation(), 1);
  EXPECT_EQ(Beat(a, "j", 1).directives_size(), 0);
  auto job = coordinator_->GetJob("j");
  EXPECT_EQ(job->generation(), 2);
  EXPECT_THAT(job->workers(), testing::ElementsAre("a", "b"));
  EXPECT_THAT(job->reason(), HasSubstr("joining: b"));
  EXPECT_EQ(Beat(b).directives(0).assign().rank(), 1);
  // a trains on until b has loaded its data set...
  EXPECT_EQ(Beat(a, "j", 1).directives_size(), 0) << "a stops before the joiner is ready";
  Beat(b, "j", 2);
  EXPECT_EQ(Beat(a, "j", 1).directives_size(), 0);
  v1::HeartbeatRequest ready;
  ready.set_worker_id(b);
  ready.set_job_id("j");
  ready.set_generation(2);
  ready.set_job_ready(true);
  ASSERT_TRUE(HeartbeatAs(ready).ok());
  // ...and only then gets generation 2, to yield at its next commit.
  const v1::HeartbeatResponse ra = Beat(a, "j", 1);
  ASSERT_EQ(ra.directives_size(), 1);
  EXPECT_TRUE(ra.directives(0).assign().resume_in_memory());
  EXPECT_FALSE(ra.directives(0).assign().abandon_previous()) << "a yields at a commit";
  // Full: a third worker stays free.
  const std::string c = Register("c", 100);
  Beat(a, "j", 2);
  Beat(b, "j", 2);
  Beat(c);
  EXPECT_EQ(coordinator_->GetJob("j")->generation(), 2);
}

TEST_F(CoordinatorTest, ARankThatFinishedItsStepsIsNotAskedToJoinTheSameJobAgain) {
  // Rank 1 trains its last step and ends its part before rank 0's final
  // report lands: it is free, the job has room (max 3), but joining it
  // again would start a generation at the very end.
  Submit("j", 2, 3);
  const std::string a = Register("a", 200), b = Register("b", 100);
  Beat(a);
  Beat(b);
  Beat(a, "j", 1);
  Beat(b, "j", 1);
  ASSERT_EQ(coordinator_->GetJob("j")->generation(), 1);
  Beat(b);  // b (rank 1) is done: no job
  Beat(a, "j", 1);
  Beat(b);
  EXPECT_EQ(coordinator_->GetJob("j")->generation(), 1) << coordinator_->GetJob("j")->reason();
  // It stays free for other jobs.
  Submit("k", 1, 1);
  EXPECT_EQ(Beat(b).directives(0).assign().job_id(), "k");
}

TEST_F(CoordinatorTest, ADrainedMemberLeavesAndTheJobGoesOnWithoutIt) {
  Submit("j", 1, 2);
  const std::string a = Register("a", 200), b = Register("b", 100);
  Beat(a);
  Beat(b, "j", 1);
  auto drained = coordinator_->DrainWorker("b");  // by name
  ASSERT_TRUE(drained.ok()) << drained.status();
  EXPECT_EQ(drained->state(), v1::WORKER_STATE_DRAINING);
  auto job = coordinator_->GetJob("j");
  EXPECT_EQ(job->generation(), 2);
  EXPECT_THAT(job->workers(), testing::ElementsAre("a"));
  EXPECT_THAT(job->reason(), HasSubstr("b (rank 1) drained"));
  const v1::HeartbeatResponse rb = Beat(b, "j", 1);
  ASSERT_EQ(rb.directives_size(), 2);
  EXPECT_TRUE(rb.directives(0).drain());
  EXPECT_EQ(rb.directives(1).yield_job_id(), "j") << "b leaves at the group's next commit";
  const v1::HeartbeatResponse ra = Beat(a, "j", 1);
  ASSERT_EQ(ra.directives_size(), 1);
  EXPECT_EQ(ra.directives(0).assign().world_size(), 1);
  EXPECT_FALSE(ra.directives(0).assign().abandon_previous());
  // b takes no other job, and does not rejoin this one.
  Beat(a, "j", 2);
  Submit("other", 1);
  Beat(b);
  EXPECT_EQ(coordinator_->GetJob("other")->state(), v1::JOB_STATE_QUEUED);
  EXPECT_EQ(coordinator_->GetJob("j")->generation(), 2);
  EXPECT_EQ(coordinator_->DrainWorker("nobody").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(CoordinatorTest, AWorkerErrorFailsTheJobWithItsMessage) {
  Submit("j", 1);
  const std::string a = Register("a");
  Beat(a);
  v1::ReportProgressRequest err;
  err.set_worker_id(a);
  err.set_job_id("j");
  err.set_generation(1);
  err.set_error("/data/train-images-idx3-ubyte.gz: cannot open file");
  ASSERT_TRUE(Report(err).ok());
  auto job = coordinator_->GetJob("j");
  EXPECT_EQ(job->state(), v1::JOB_STATE_FAILED);
  EXPECT_THAT(job->reason(), HasSubstr("worker a (rank 0): /data/train-images-idx3-ubyte.gz"));
}

TEST_F(CoordinatorTest, ASurvivorsReportNamesTheLostWorkerAndTheCommittedStep) {
  Submit("j", 2);
  const std::string a = Register("a", 200), b = Register("b", 100);
  Beat(a);
  Beat(b);
  ASSERT_EQ(coordinator_->GetJob("j")->state(), v1::JOB_STATE_RUNNING);
  ASSERT_TRUE(Report(SurvivorsReport(a, 1, 1150)).ok());
  auto job = coordinator_->GetJob("j");
  EXPECT_EQ(job->state(), v1::JOB_STATE_WAITING);
  EXPECT_THAT(job->reason(), HasSubstr("losing b (rank 1)"));
  EXPECT_THAT(job->reason(), HasSubstr("last commit: step 1150"));
}

TEST_F(CoordinatorTest, ASurvivorsReportFencesTheLostAndFormsTheNextGeneration) {
  Submit("j", 1, 3);
  const std::string a = Register("a", 300), b = Register("b", 200), c = Register("c", 100);
  Beat(a);  // places the job on all three, fastest first: a, b, c = ranks 0, 1, 2
  ASSERT_EQ(coordinator_->GetJob("j")->generation(), 1);
  Beat(b, "j", 1);
  Beat(c, "j", 1);
  ASSERT_TRUE(Report(SurvivorsReport(c, 1, 40)).ok());
  auto job = coordinator_->GetJob("j");
  EXPECT_EQ(job->state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(job->generation(), 2);
  EXPECT_THAT(job->workers(), testing::ElementsAre("a", "c"));
  EXPECT_THAT(job->reason(), HasSubstr("after losing b (rank 1)"));
  EXPECT_THAT(job->reason(), HasSubstr("last commit (step 40 or the one before)"));
  // The survivors get generation 2 in their old order, from step 40; the
  // lost worker is fenced.
  for (const auto& [worker, rank] : {std::pair{a, 0}, std::pair{c, 1}}) {
    const v1::HeartbeatResponse r = Beat(worker, "j", 1);
    ASSERT_EQ(r.directives_size(), 1) << worker;
    const v1::Assignment& next = r.directives(0).assign();
    EXPECT_EQ(next.generation(), 2);
    EXPECT_EQ(next.rank(), rank);
    EXPECT_EQ(next.world_size(), 2);
    EXPECT_EQ(next.start_step(), 40);
  }
  // The lost worker is fenced: its lease is gone, no work is placed on it.
  v1::HeartbeatRequest from_b;
  from_b.set_worker_id(b);
  from_b.set_job_id("j");
  EXPECT_EQ(HeartbeatAs(from_b).status().code(), absl::StatusCode::kNotFound);
  // A second survivor's report of generation 1 changes nothing.
  ASSERT_TRUE(Report(SurvivorsReport(a, 1, 40)).ok());
  EXPECT_EQ(coordinator_->GetJob("j")->generation(), 2);
  EXPECT_EQ(coordinator_->metrics().recoveries, 1);
  // The history records the new generation.
  auto history = coordinator_->GetJobHistory("j");
  ASSERT_TRUE(history.ok());
  EXPECT_THAT(history->events(history->events_size() - 1).reason(),
              HasSubstr("generation 2 on a, c"));
}

TEST_F(CoordinatorTest, ARank0DrainedAtTheLastStepsStillFinishesTheJob) {
  Submit("j", 1, 2);
  const std::string a = Register("a", 200), b = Register("b", 100);
  Beat(a);
  Beat(b, "j", 1);
  ASSERT_TRUE(coordinator_->DrainWorker(a).ok());  // rank 0
  ASSERT_EQ(coordinator_->GetJob("j")->generation(), 2);
  // The group had already trained its last step: every rank finishes
  // generation 1, and a (rank 0) uploads the model and says so.
  Beat(b);  // b's run ended: released
  EXPECT_EQ(coordinator_->GetJob("j")->state(), v1::JOB_STATE_RUNNING) << "a is finishing";
  ASSERT_TRUE(
      coordinator_->StoreCheckpoint(a, "j", 20, /*final=*/true, Upload(Spec(), true), Caller(a))
          .ok());
  v1::ReportProgressRequest done;
  done.set_worker_id(a);
  done.set_job_id("j");
  done.set_generation(1);
  done.set_finished(true);
  ASSERT_TRUE(Report(done).ok());
  EXPECT_EQ(coordinator_->GetJob("j")->state(), v1::JOB_STATE_SUCCEEDED);
}

TEST_F(CoordinatorTest, AJoinerThatFailsBeforeItIsReadyIsFencedAndTheJobGoesOn) {
  Submit("j", 1, 2);
  const std::string a = Register("a", 200);
  Beat(a);
  Beat(a, "j", 1);
  const std::string b = Register("b", 100);
  Beat(b);  // joins: generation 2, a's assignment held
  ASSERT_EQ(coordinator_->GetJob("j")->generation(), 2);
  v1::ReportProgressRequest err;
  err.set_worker_id(b);
  err.set_job_id("j");
  err.set_generation(2);
  err.set_error("/data: cannot open file");
  ASSERT_TRUE(Report(err).ok());
  auto job = coordinator_->GetJob("j");
  EXPECT_EQ(job->state(), v1::JOB_STATE_RUNNING) << job->reason();
  EXPECT_THAT(job->reason(), HasSubstr("b failed to join"));
  EXPECT_THAT(job->workers(), testing::ElementsAre("a"));
  // And an error from a worker no longer in the job changes nothing.
  ASSERT_TRUE(Report(err).ok());
  EXPECT_EQ(coordinator_->GetJob("j")->state(), v1::JOB_STATE_RUNNING);
}

TEST_F(CoordinatorTest, EdgeWorkersNeverJoinAllreduceJobs) {
  Submit("j", 1);
  const std::string car = Register("car", 1000, v1::WORKER_POOL_EDGE);
  EXPECT_EQ(Beat(car).directives_size(), 0);
  EXPECT_EQ(coordinator_->GetJob("j")->state(), v1::JOB_STATE_QUEUED);
}

TEST_F(CoordinatorTest, AnEdgeAgentsEligibilityIsKeptFromItsHeartbeatAndCutToItsBound) {
  const std::string car = Register("car", 1000, v1::WORKER_POOL_EDGE);
  v1::HeartbeatRequest h;
  h.set_worker_id(car);
  h.mutable_eligibility()->set_eligible(false);
  h.mutable_eligibility()->set_reason("not charging and state of charge 34% < 50%");
  ASSERT_TRUE(HeartbeatAs(h).ok());
  v1::WorkerInfo info = coordinator_->ListWorkers()[0];
  EXPECT_FALSE(info.eligibility().eligible());
  EXPECT_EQ(info.eligibility().reason(), "not charging and state of charge 34% < 50%");
  // A long reason is cut to 256 bytes, never inside a character.
  std::string degrees;
  for (int i = 0; i < 200; ++i) degrees += "°";  // two bytes each
  h.mutable_eligibility()->set_reason("x" + degrees);
  ASSERT_TRUE(HeartbeatAs(h).ok()) << "cut, not refused: the agent keeps its lease";
  const std::string cut = coordinator_->ListWorkers()[0].eligibility().reason();
  EXPECT_EQ(cut, "x" + degrees.substr(0, 252) + "...");
  h.clear_eligibility();
  ASSERT_TRUE(HeartbeatAs(h).ok());
  EXPECT_EQ(coordinator_->ListWorkers()[0].eligibility().reason(), cut)
      << "a heartbeat without one keeps the last answer";
}

TEST_F(CoordinatorTest, ARestartKeepsEveryJobAndReAdoptsTheRunningOnes) {
  Submit("queued-one", 3);
  Submit("running-one", 1);
  const std::string a = Register("a");
  Beat(a);
  ASSERT_EQ(coordinator_->GetJob("running-one")->state(), v1::JOB_STATE_RUNNING);
  Restart();
  auto jobs = coordinator_->ListJobs();
  ASSERT_EQ(jobs->size(), 2u);
  EXPECT_EQ((*jobs)[0].state(), v1::JOB_STATE_QUEUED);
  EXPECT_EQ((*jobs)[1].state(), v1::JOB_STATE_RUNNING) << "its worker trains on";
  EXPECT_THAT((*jobs)[1].reason(), HasSubstr("coordinator restarted"));
  // The worker's old id is unknown here; it registers again with its job.
  v1::HeartbeatRequest h;
  h.set_worker_id(a);
  EXPECT_EQ(HeartbeatAs(h).status().code(), absl::StatusCode::kNotFound);
  v1::RegisterRequest again;
  again.set_name("a");
  again.set_pool(v1::WORKER_POOL_DATACENTER);
  again.set_peer_address("a:1");
  again.set_job_id("running-one");
  again.set_generation(1);
  again.set_rank(0);
  auto r = RegisterAs(again);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->job_adopted());
  EXPECT_NE(r->worker_id(), a) << "worker ids are not reused";
  auto job = coordinator_->GetJob("running-one");
  EXPECT_EQ(job->generation(), 1);
  EXPECT_THAT(job->reason(), HasSubstr("re-adopted after the coordinator restarted"));
  // Submitted, started, the restart and the re-adoption.
  EXPECT_EQ(coordinator_->GetJobHistory("running-one")->events_size(), 4);
  clock_.Advance(absl::Seconds(3));
  Beat(r->worker_id(), "running-one", 1);
  clock_.Advance(absl::Seconds(3));  // past the re-adoption deadline
  Beat(r->worker_id(), "running-one", 1);
  EXPECT_EQ(coordinator_->GetJob("running-one")->state(), v1::JOB_STATE_RUNNING);
}

TEST_F(CoordinatorTest, ARestartDuringAJoinRegroupsEveryoneInOneNewGeneration) {
  Submit("j", 1, 2);
  const std::string a = Register("a", 200);
  Beat(a);
  Beat(a, "j", 1);
  const std::string b = Register("b", 100);
  Beat(b);  // joins: generation 2; a still runs generation 1 (held)
  ASSERT_EQ(coordinator_->GetJob("j")->generation(), 2);
  Restart();
  auto again = [&](const std::string& name, int64_t generation, int rank) {
    v1::RegisterRequest r;
    r.set_name(name);
    r.set_pool(v1::WORKER_POOL_DATACENTER);
    r.set_peer_address(name + ":1");
    r.set_job_id("j");
    r.set_generation(generation);
    r.set_rank(rank);
    return *RegisterAs(r);
  };
  const v1::RegisterResponse ra = again("a", 1, 0);
  EXPECT_TRUE(ra.job_adopted()) << "a runs the generation before the stored one";
  EXPECT_TRUE(again("b", 2, 1).job_adopted());
  auto job = coordinator_->GetJob("j");
  EXPECT_EQ(job->generation(), 3);
  EXPECT_THAT(job->workers(), testing::ElementsAre("a", "b"));
  EXPECT_THAT(job->reason(), HasSubstr("a join interrupted by the coordinator restart"));
  const v1::HeartbeatResponse next = Beat(ra.worker_id(), "j", 1);
  ASSERT_EQ(next.directives_size(), 1);
  EXPECT_EQ(next.directives(0).assign().generation(), 3);
  EXPECT_TRUE(next.directives(0).assign().abandon_previous());
}

TEST_F(CoordinatorTest, ARestartedCoordinatorQueuesAJobNoWorkerCameBackTo) {
  Submit("j", 1);
  Beat(Register("a"));
  Restart();
  EXPECT_EQ(coordinator_->GetJob("j")->state(), v1::JOB_STATE_RUNNING);
  clock_.Advance(absl::Seconds(6));
  coordinator_->Tick();
  auto job = coordinator_->GetJob("j");
  EXPECT_EQ(job->state(), v1::JOB_STATE_QUEUED);
  EXPECT_THAT(job->reason(), HasSubstr("none of its workers came back"));
}

TEST_F(CoordinatorTest, AFencedWorkerIsNotReAdopted) {
  Submit("j", 1, 2);
  const std::string a = Register("a", 200), b = Register("b", 100);
  Beat(a);
  Beat(b, "j", 1);
  clock_.Advance(absl::Seconds(3));
  Beat(a, "j", 1);
  clock_.Advance(absl::Seconds(3));  // b stalls past its lease
  const v1::HeartbeatResponse ra = Beat(a, "j", 1);
  ASSERT_EQ(ra.directives_size(), 1);
  EXPECT_TRUE(ra.directives(0).assign().abandon_previous()) << "generation 1 cannot commit";
  EXPECT_EQ(coordinator_->GetJob("j")->generation(), 2);
  // b wakes up (SIGCONT) and registers again, still in generation 1.
  v1::RegisterRequest again;
  again.set_name("b");
  again.set_pool(v1::WORKER_POOL_DATACENTER);
  again.set_peer_address("b:1");
  again.set_job_id("j");
  again.set_generation(1);
  again.set_rank(1);
  auto r = RegisterAs(again);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->job_adopted()) << "b must stop generation 1";
  EXPECT_THAT(coordinator_->GetJob("j")->workers(), testing::ElementsAre("a"));
  // Once a runs generation 2, b (free again) joins it as generation 3.
  Beat(a, "j", 2);
  Beat(r->worker_id());
  EXPECT_EQ(coordinator_->GetJob("j")->generation(), 3);
  EXPECT_THAT(coordinator_->GetJob("j")->workers(), testing::ElementsAre("a", "b"));
}

// Identity: a join token enrolls a name once; the credential it returns
// is the only way to act as that worker or register the name again.
TEST_F(CoordinatorTest, AJoinTokenEnrollsANameOnceAndItsCredentialIsTheWorker) {
  v1::CreateTokenRequest make;
  make.set_role("worker");
  const std::string join = coordinator_->CreateToken(make)->token();
  const security::Principal joiner = *coordinator_->Authenticate(join);
  EXPECT_TRUE(joiner.subject.empty());
  v1::RegisterRequest r;
  r.set_name("dc-0");
  r.set_pool(v1::WORKER_POOL_DATACENTER);
  r.set_peer_address("dc-0:1");
  auto first = coordinator_->Register(r, joiner);
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_FALSE(first->worker_credential().empty());
  const security::Principal dc0 = *coordinator_->Authenticate(first->worker_credential());
  EXPECT_EQ(dc0.role, security::Role::kWorker);
  EXPECT_EQ(dc0.subject, "dc-0");

  // The name is taken: the join token cannot register it again...
  EXPECT_EQ(coordinator_->Register(r, joiner).status().code(), absl::StatusCode::kPermissionDenied);
  // ...its credential can (and gets no new one).
  auto again = coordinator_->Register(r, dc0);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->worker_credential().empty());
  const std::string id = again->worker_id();

  // Another worker's credential cannot act for dc-0, nor a join token, nor a viewer.
  r.set_name("dc-1");
  r.set_peer_address("dc-1:1");
  const security::Principal dc1 =
      *coordinator_->Authenticate(coordinator_->Register(r, joiner)->worker_credential());
  v1::HeartbeatRequest h;
  h.set_worker_id(id);
  for (const security::Principal& who :
       {dc1, joiner, security::Principal{security::Role::kViewer, "", ""},
        security::Principal{security::Role::kAdmin, "", ""}}) {
    EXPECT_EQ(coordinator_->Heartbeat(h, who).status().code(), absl::StatusCode::kPermissionDenied);
    v1::ReportProgressRequest report;
    report.set_worker_id(id);
    report.set_job_id("j");
    EXPECT_EQ(coordinator_->ReportProgress(report, who).code(),
              absl::StatusCode::kPermissionDenied);
    EXPECT_EQ(coordinator_->StoreCheckpoint(id, "j", 1, true, "x", who).status().code(),
              absl::StatusCode::kPermissionDenied);
  }
  EXPECT_EQ(coordinator_->Register(r, dc0).status().code(), absl::StatusCode::kPermissionDenied)
      << "dc-0's credential registering dc-1";
  EXPECT_TRUE(coordinator_->Heartbeat(h, dc0).ok());

  // Tokens survive a restart (hashed in the store); revoking frees the name.
  Restart();
  const security::Principal after_restart = *coordinator_->Authenticate(first->worker_credential());
  EXPECT_EQ(after_restart.subject, "dc-0");
  std::string dc0_token_id;
  const std::vector<v1::TokenInfo> tokens = *coordinator_->ListTokens();
  for (const v1::TokenInfo& t : tokens) {
    EXPECT_NE(t.id(), "");
    if (t.subject() == "dc-0") dc0_token_id = t.id();
  }
  ASSERT_TRUE(coordinator_->RevokeToken(dc0_token_id).ok());
  EXPECT_EQ(coordinator_->Authenticate(first->worker_credential()).status().code(),
            absl::StatusCode::kUnauthenticated);
  r.set_name("dc-0");
  r.set_peer_address("dc-0:1");
  EXPECT_TRUE(coordinator_->Register(r, joiner).ok()) << "a revoked credential frees its name";
  EXPECT_EQ(coordinator_->RevokeToken("0123456789abcdef").code(), absl::StatusCode::kNotFound);
}

TEST_F(CoordinatorTest, TheFirstStartMakesOneAdminToken) {
  auto token = coordinator_->BootstrapAdminToken();
  ASSERT_TRUE(token.ok());
  ASSERT_FALSE(token->empty());
  const security::Principal admin = *coordinator_->Authenticate(*token);
  EXPECT_EQ(admin.role, security::Role::kAdmin);
  Restart();
  EXPECT_EQ(*coordinator_->BootstrapAdminToken(), "") << "an admin token exists";
  v1::CreateTokenRequest bad;
  bad.set_role("root");
  EXPECT_EQ(coordinator_->CreateToken(bad).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(CoordinatorTest, EveryGenerationHasItsOwnGroupKeyAndIdsAreUnguessable) {
  Submit("j", 1, 2);
  const std::string a = Register("a", 200);
  const v1::HeartbeatResponse first = Beat(a);
  ASSERT_EQ(first.directives_size(), 1);
  const std::string key1 = first.directives(0).assign().group_key();
  EXPECT_EQ(key1.size(), 64u);
  Beat(a, "j", 1);
  const std::string b = Register("b", 100);
  EXPECT_THAT(a, testing::MatchesRegex("w-[0-9a-f]{16}"));
  EXPECT_NE(a, b);
  const v1::HeartbeatResponse joined = Beat(b);
  ASSERT_EQ(joined.directives_size(), 1);
  EXPECT_EQ(joined.directives(0).assign().generation(), 2);
  EXPECT_NE(joined.directives(0).assign().group_key(), key1);
}

TEST_F(CoordinatorTest, RegisterRefusesUnboundedFields) {
  v1::RegisterRequest r;
  r.set_pool(v1::WORKER_POOL_EDGE);
  r.set_name(std::string(65, 'x'));
  EXPECT_THAT(std::string(RegisterAs(r).status().message()), testing::HasSubstr("name"));
  r.set_name("bad name");
  EXPECT_EQ(RegisterAs(r).status().code(), absl::StatusCode::kInvalidArgument);
  r.set_name("car");
  r.set_host_id(std::string(1000, 'h'));
  EXPECT_THAT(std::string(RegisterAs(r).status().message()), testing::HasSubstr("host_id"));
}

// Nothing unvalidated is stored: every malformed or mis-shaped upload is
// refused naming why, and the job's latest checkpoint stays what it was.
TEST_F(CoordinatorTest, UploadsMustBeTheJobsTensors) {
  Submit("j", 1, 1);
  const std::string a = Register("a");
  Beat(a);
  Beat(a, "j", 1);
  ASSERT_TRUE(
      coordinator_->StoreCheckpoint(a, "j", 10, false, Upload(Spec(), false), Caller(a)).ok());
  v1::JobSpec wider = Spec();
  wider.mutable_model()->mutable_layers(1)->mutable_dense()->set_units(5);
  v1::JobSpec extra = Spec();
  extra.mutable_model()->add_layers()->mutable_dense()->set_units(4);
  std::string truncated = Upload(Spec(), false);
  truncated.resize(truncated.size() - 3);
  std::string no_format = Upload(Spec(), false);
  no_format.replace(no_format.find("nightshift.checkpoint.v1"), 10, "not-ours..");
  const std::vector<std::pair<std::string, std::string>> refused = {
      {"garbage", "header"},
      {truncated, "offset"},
      {Upload(wider, false), "layers.1.weight has shape [5, 4], the job's is [4, 4]"},
      {Upload(extra, false), "is not one of the job's"},
      {no_format, "format"},
      {std::string(MaxUploadBytes(Spec()) + 1, ' '), "over the job's largest checkpoint"},
  };
  for (const auto& [bytes, why] : refused) {
    absl::StatusOr<v1::CheckpointInfo> stored =
        coordinator_->StoreCheckpoint(a, "j", 20, false, bytes, Caller(a));
    EXPECT_EQ(stored.status().code(), absl::StatusCode::kInvalidArgument) << why;
    EXPECT_THAT(std::string(stored.status().message()), HasSubstr(why));
  }
  const v1::JobStatus job = *coordinator_->GetJob("j");
  ASSERT_GE(job.checkpoints_size(), 1);
  EXPECT_EQ(job.checkpoints(job.checkpoints_size() - 1).step(), 10) << "a refused upload was kept";
}

// The model loop: a job whose spec says publish_as is published by the
// next PublishQueued after it succeeds, once (a restart does not publish it again);
// followers hear of the newer version in their heartbeat reply and fetch
// its bytes; a publish before success is refused.
TEST_F(CoordinatorTest, ASucceededJobIsPublishedAndFollowersHearOfIt) {
  const v1::JobStatus submitted = Submit("j", 1, 0, "small");
  const std::string a = Register("a");
  Beat(a);
  Beat(a, "j", 1);
  v1::PublishModelRequest publish;
  publish.set_job_id("j");
  publish.set_model_name("by-hand");
  absl::StatusOr<v1::ModelVersion> early = coordinator_->PublishModel(publish);
  EXPECT_EQ(early.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(early.status().message(), HasSubstr("job j is RUNNING"));

  const std::string model = DescribedModel(submitted.spec());
  ASSERT_TRUE(coordinator_->StoreCheckpoint(a, "j", 20, true, model, Caller(a)).ok());
  v1::ReportProgressRequest done;
  done.set_worker_id(a);
  done.set_job_id("j");
  done.set_generation(1);
  done.mutable_progress()->set_step(20);
  done.mutable_progress()->set_test_accuracy(0.75f);
  done.set_finished(true);
  ASSERT_TRUE(Report(done).ok());
  ASSERT_EQ(coordinator_->GetJob("j")->state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_TRUE(coordinator_->ListModels("").empty()) << "published before PublishQueued";
  coordinator_->PublishQueued();
  std::vector<v1::ModelVersion> versions = coordinator_->ListModels("small");
  ASSERT_EQ(versions.size(), 1u);
  EXPECT_EQ(versions[0].version(), 1);
  EXPECT_EQ(versions[0].job_id(), "j");
  EXPECT_FLOAT_EQ(versions[0].test_accuracy(), 0.75f);
  EXPECT_EQ(versions[0].sha256(), security::Sha256Hex(model));
  const v1::GetJobHistoryResponse history = *coordinator_->GetJobHistory("j");
  EXPECT_THAT(history.events(history.events_size() - 1).reason(),
              HasSubstr("published as model small version 1"));
  EXPECT_EQ(coordinator_->GetJob("j")->state(), v1::JOB_STATE_SUCCEEDED);

  // A follower holding nothing hears of version 1; holding it, of nothing.
  v1::HeartbeatRequest h;
  h.set_worker_id(a);
  v1::FollowedModel* followed = h.add_followed_models();
  followed->set_name("small");
  v1::HeartbeatResponse reply = *HeartbeatAs(h);
  ASSERT_EQ(reply.model_updates_size(), 1);
  EXPECT_EQ(reply.model_updates(0).version(), 1);
  followed->set_version(1);
  EXPECT_EQ(HeartbeatAs(h)->model_updates_size(), 0);
  v1::FetchModelRequest fetch;
  fetch.set_model_name("small");
  EXPECT_EQ(coordinator_->FetchModel(fetch)->data(), model);

  // By hand under another name: its version 1; the same job again: the same.
  ASSERT_EQ(coordinator_->PublishModel(publish)->version(), 1);
  ASSERT_EQ(coordinator_->PublishModel(publish)->version(), 1);
  EXPECT_EQ(coordinator_->metrics().models_published, 2);
  Restart();
  coordinator_->PublishQueued();
  EXPECT_EQ(coordinator_->ListModels("small").size(), 1u) << "published again after a restart";
  EXPECT_EQ(coordinator_->ListModels("").size(), 2u);
}

TEST_F(CoordinatorTest, AFailedJobIsNotPublished) {
  Submit("j", 1, 0, "small");
  const std::string a = Register("a");
  Beat(a);
  Beat(a, "j", 1);
  v1::ReportProgressRequest failed;
  failed.set_worker_id(a);
  failed.set_job_id("j");
  failed.set_generation(1);
  failed.set_error("out of memory");
  ASSERT_TRUE(Report(failed).ok());
  ASSERT_EQ(coordinator_->GetJob("j")->state(), v1::JOB_STATE_FAILED);
  coordinator_->PublishQueued();
  EXPECT_TRUE(coordinator_->ListModels("").empty());
  v1::PublishModelRequest publish;
  publish.set_job_id("j");
  publish.set_model_name("small");
  absl::StatusOr<v1::ModelVersion> refused = coordinator_->PublishModel(publish);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.status().message(),
              HasSubstr("job j is FAILED: only a job that succeeded can be published"));
  publish.set_job_id("nope");
  EXPECT_EQ(coordinator_->PublishModel(publish).status().code(), absl::StatusCode::kNotFound);
}

// Heartbeat classes: a pool's interval and lease come with the
// registration, and each lease runs out on its own pool's clock.
TEST_F(CoordinatorTest, EachPoolHasItsHeartbeatIntervalAndLease) {
  v1::RegisterRequest dc;
  dc.set_name("dc");
  dc.set_pool(v1::WORKER_POOL_DATACENTER);
  dc.set_peer_address("dc:1");
  const v1::RegisterResponse dc_reply = *RegisterAs(dc);
  EXPECT_EQ(dc_reply.heartbeat_interval_ms(), 500);
  EXPECT_EQ(dc_reply.lease_ttl_ms(), 5000);  // the fixture's
  v1::RegisterRequest car;
  car.set_name("car");
  car.set_pool(v1::WORKER_POOL_EDGE);
  const v1::RegisterResponse car_reply = *RegisterAs(car);
  EXPECT_EQ(car_reply.heartbeat_interval_ms(), 10000);
  EXPECT_EQ(car_reply.lease_ttl_ms(), 35000);
  auto state_of = [&](const std::string& name) {
    for (const auto& w : coordinator_->ListWorkers()) {
      if (w.name() == name) return w.state();
    }
    return v1::WORKER_STATE_UNSPECIFIED;
  };
  clock_.Advance(absl::Seconds(6));
  coordinator_->Tick();
  EXPECT_EQ(state_of("dc"), v1::WORKER_STATE_LOST);
  EXPECT_EQ(state_of("car"), v1::WORKER_STATE_IDLE);
  Beat(car_reply.worker_id());  // renewed at 6 s: runs to 41 s
  clock_.Advance(absl::Seconds(30));
  coordinator_->Tick();
  EXPECT_EQ(state_of("car"), v1::WORKER_STATE_IDLE) << "an early entry of its lease expired it";
  clock_.Advance(absl::Seconds(6));
  coordinator_->Tick();
  EXPECT_EQ(state_of("car"), v1::WORKER_STATE_LOST);
  EXPECT_EQ(coordinator_->metrics().leases_expired, 2);
}

// A fleet lists in pages, in id order, filtered by pool and state.
TEST_F(CoordinatorTest, WorkersListInPages) {
  std::set<std::string> edge_ids;
  for (int i = 0; i < 25; ++i)
    edge_ids.insert(Register(absl::StrCat("car-", i), 10, v1::WORKER_POOL_EDGE));
  Register("dc-0");
  v1::ListWorkersRequest request;
  request.set_pool(v1::WORKER_POOL_EDGE);
  request.set_page_size(10);
  std::vector<int> sizes;
  std::set<std::string> seen;
  std::string last;
  do {
    absl::StatusOr<v1::ListWorkersResponse> page = coordinator_->ListWorkers(request);
    ASSERT_TRUE(page.ok()) << page.status();
    sizes.push_back(page->workers_size());
    for (const auto& w : page->workers()) {
      EXPECT_EQ(w.pool(), v1::WORKER_POOL_EDGE);
      EXPECT_GT(w.id(), last) << "not in id order";
      last = w.id();
      seen.insert(w.id());
    }
    request.set_page_token(page->next_page_token());
  } while (!request.page_token().empty());
  EXPECT_EQ(sizes, (std::vector<int>{10, 10, 5}));
  EXPECT_EQ(seen, edge_ids);
  request.clear_pool();
  request.set_page_size(0);
  EXPECT_EQ(coordinator_->ListWorkers(request)->workers_size(), 26);  // the default page holds all
  request.set_state(v1::WORKER_STATE_BUSY);
  EXPECT_EQ(coordinator_->ListWorkers(request)->workers_size(), 0);
  request.set_page_size(10001);
  EXPECT_THAT(coordinator_->ListWorkers(request).status().message(),
              HasSubstr("page_size: 10001 is not in [0, 10000]"));
  const Coordinator::WorkerCounts counts = coordinator_->CountWorkers();
  EXPECT_EQ(counts.total, 26);
  EXPECT_EQ((counts.by_pool_and_state.at({v1::WORKER_POOL_EDGE, v1::WORKER_STATE_IDLE})), 25);
}

// A fleet's steady heartbeats cost no scheduling pass; a change does.
TEST_F(CoordinatorTest, OnlyAHeartbeatThatChangesSomethingSchedules) {
  const std::string car = Register("car", 10, v1::WORKER_POOL_EDGE);
  const std::string dc = Register("dc");
  v1::HeartbeatRequest h;
  h.set_worker_id(car);
  h.mutable_eligibility()->set_eligible(false);
  Beat(dc);
  ASSERT_TRUE(HeartbeatAs(h).ok());  // the registrations' pass
  const int64_t before = coordinator_->metrics().schedules;
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(HeartbeatAs(h).ok());
    Beat(dc);
  }
  EXPECT_EQ(coordinator_->metrics().schedules, before) << "steady heartbeats scheduled";
  h.mutable_eligibility()->set_eligible(true);  // a flip
  ASSERT_TRUE(HeartbeatAs(h).ok());
  EXPECT_EQ(coordinator_->metrics().schedules, before + 1);
  Submit("j", 1, 1);  // a queued job schedules at once, and the free dc takes it
  EXPECT_EQ(Beat(dc).directives(0).assign().job_id(), "j");
  const int64_t running = coordinator_->metrics().schedules;
  for (int i = 0; i < 5; ++i) Beat(dc, "j", 1);  // the job runs: nothing changes
  EXPECT_EQ(coordinator_->metrics().schedules, running + 1) << "only its first report of the job";
}

}  // namespace
}  // namespace nightshift::coordinator
