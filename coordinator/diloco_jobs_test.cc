// The coordinator's DiLoCo jobs in-process, with a fake clock (the
// protocol in coordinator.h, "DiLoCo jobs"): start without workers,
// replicas by eligibility, rounds committed to disk and store, the final
// evaluation, a restart mid-round, lost leases, drains and failures.
#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <map>

#include "checkpoint/file_names.h"
#include "collective/delta_codec.h"
#include "coordinator/coordinator.h"
#include "coordinator/test_spec.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"

namespace nightshift::coordinator {
namespace {

using testing::ElementsAre;
using testing::HasSubstr;

constexpr int kParameters = 20;  // SmallTestSpec: dense 4 -> 4

// Two rounds of 5 inner steps; a round closes at 2 updates of 2 selected.
v1::JobSpec DiLoCoSpec(int quorum = 2) {
  v1::JobSpec spec = SmallTestSpec(1);
  spec.set_max_workers(3);
  spec.add_pools(v1::WORKER_POOL_EDGE);
  google::protobuf::TextFormat::ParseFromString(
      R"pb(
        inner_steps: 5
        rounds: 2
        over_selection: 0
        aggregation: AGGREGATION_MEAN
        outer_lr: 1
        outer_momentum: 0
        delta_encoding: DELTA_ENCODING_FLOAT32
        round_deadline_seconds: 60
      )pb",
      spec.mutable_sync()->mutable_diloco());
  spec.mutable_sync()->mutable_diloco()->set_quorum(quorum);
  return spec;
}

class DiLoCoJobsTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::string(std::getenv("TEST_TMPDIR")) + "/" +
           testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::create_directories(dir_);
    store_ = *JobStore::Open(dir_ + "/state.db");
    Restart();
  }
  void Restart() {
    coordinator_.reset();
    CoordinatorOptions options;
    options.state_dir = dir_;
    options.lease_ttl = absl::Seconds(5);
    options.edge_lease_ttl = absl::Seconds(5);
    coordinator_ = *Coordinator::Create(store_.get(), &clock_, options);
  }
  security::Principal As(const std::string& name) { return {security::Role::kWorker, name, ""}; }
  // Registers edge agent `name` (naming the job it runs, if any); its id.
  std::string Register(const std::string& name, const std::string& job = "", int rank = -1) {
    v1::RegisterRequest r;
    r.set_name(name);
    r.set_pool(v1::WORKER_POOL_EDGE);
    r.set_job_id(job);
    r.set_rank(rank);
    r.set_generation(1);
    absl::StatusOr<v1::RegisterResponse> got = coordinator_->Register(r, As(name));
    EXPECT_TRUE(got.ok()) << got.status();
    ids_[name] = got.ok() ? got->worker_id() : "";
    return ids_[name];
  }
  // Registers data-center worker `name` (it serves Peer); its id.
  std::string RegisterDataCenter(const std::string& name, const std::string& job = "",
                                 int rank = -1) {
    v1::RegisterRequest r;
    r.set_name(name);
    r.set_pool(v1::WORKER_POOL_DATACENTER);
    r.set_peer_address("127.0.0.1:1" + std::to_string(ids_.size()));
    r.set_job_id(job);
    r.set_rank(rank);
    r.set_generation(1);
    absl::StatusOr<v1::RegisterResponse> got = coordinator_->Register(r, As(name));
    EXPECT_TRUE(got.ok()) << got.status();
    if (got.ok() && !job.empty()) EXPECT_FALSE(got->job_adopted());
    ids_[name] = got.ok() ? got->worker_id() : "";
    return ids_[name];
  }
  v1::HeartbeatResponse Beat(const std::string& name, bool eligible, const std::string& job = "") {
    v1::HeartbeatRequest h;
    h.set_worker_id(ids_[name]);
    h.set_job_id(job);
    h.set_generation(job.empty() ? 0 : 1);
    h.mutable_eligibility()->set_eligible(eligible);
    h.mutable_eligibility()->set_reason(eligible ? "parked and charging" : "ignition on");
    int64_t& applied = applied_[ids_[name]];  // a reliable link: every reply applied
    h.set_directives_applied(applied);
    absl::StatusOr<v1::HeartbeatResponse> got = coordinator_->Heartbeat(h, As(name));
    EXPECT_TRUE(got.ok()) << got.status();
    if (!got.ok()) return v1::HeartbeatResponse();
    for (const v1::Directive& d : got->directives()) applied = std::max(applied, d.sequence());
    return *got;
  }
  absl::StatusOr<v1::RoundTicket> Join(const std::string& name) {
    v1::JoinRoundRequest j;
    j.set_worker_id(ids_[name]);
    j.set_job_id("d");
    return coordinator_->JoinRound(j, As(name));
  }
  absl::StatusOr<std::string> Fetch(const std::string& name, int64_t version) {
    v1::FetchParametersRequest f;
    f.set_worker_id(ids_[name]);
    f.set_job_id("d");
    f.set_version(version);
    absl::StatusOr<v1::FetchParametersResponse> got = coordinator_->FetchParameters(f, As(name));
    if (!got.ok()) return got.status();
    return got->data();
  }
  // Pushes a float32 update of `value` everywhere, whole.
  absl::StatusOr<v1::PushUpdateResponse> Push(const std::string& name, int64_t round,
                                              float value = 1) {
    const std::string bytes = collective::EncodeDelta(collective::DeltaFormat::kFloat32,
                                                      std::vector<float>(kParameters, value));
    v1::PushUpdateRequest p;
    p.set_worker_id(ids_[name]);
    p.set_job_id("d");
    p.set_round(round);
    p.set_base_version(round);
    p.set_samples(50);
    p.set_inner_steps_done(5);
    p.set_data(bytes);
    p.set_total_bytes(static_cast<int64_t>(bytes.size()));
    return coordinator_->PushUpdate(p, As(name));
  }
  v1::JobStatus Submit(const v1::JobSpec& spec) {
    v1::SubmitJobRequest s;
    *s.mutable_spec() = spec;
    s.set_job_id("d");
    absl::StatusOr<v1::JobStatus> got = coordinator_->SubmitJob(s);
    EXPECT_TRUE(got.ok()) << got.status();
    return got.ok() ? *got : v1::JobStatus();
  }
  v1::JobStatus Job() { return *coordinator_->GetJob("d"); }
  // a and b replicas of job d, through their heartbeats.
  void TwoReplicas() {
    Submit(DiLoCoSpec());
    Register("a");
    Register("b");
    ASSERT_EQ(Beat("a", true).directives_size(), 1);
    ASSERT_EQ(Beat("b", true).directives_size(), 1);
  }
  void CloseRound(int64_t round) {
    ASSERT_TRUE(Join("a")->selected());
    ASSERT_TRUE(Join("b")->selected());
    ASSERT_TRUE(Push("a", round).ok());
    absl::StatusOr<v1::PushUpdateResponse> b = Push("b", round);
    ASSERT_TRUE(b.ok()) << b.status();
    ASSERT_TRUE(b->complete());
  }

  std::string dir_;
  FakeClock clock_;
  std::unique_ptr<JobStore> store_;
  std::unique_ptr<Coordinator> coordinator_;
  std::map<std::string, std::string> ids_;  // by name
  std::map<std::string, int64_t> applied_;  // by worker id: Directive.sequence
};

TEST_F(DiLoCoJobsTest, StartsWithoutWorkersAndTakesOnlyEligibleAgentsAsReplicas) {
  const v1::JobStatus started = Submit(DiLoCoSpec());
  EXPECT_EQ(started.state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(started.total_rounds(), 2);
  EXPECT_THAT(started.reason(), HasSubstr("2 rounds of 5 inner steps"));
  Register("a");
  Register("c");
  const v1::HeartbeatResponse a = Beat("a", true);
  ASSERT_EQ(a.directives_size(), 1);
  EXPECT_EQ(a.directives(0).assign().job_id(), "d");
  EXPECT_EQ(a.directives(0).assign().rank(), 0);        // its shard
  EXPECT_EQ(a.directives(0).assign().world_size(), 3);  // shards: max_workers
  EXPECT_EQ(Beat("c", false).directives_size(), 0);     // ignition on: no work
  EXPECT_EQ(Join("c").status().code(), absl::StatusCode::kFailedPrecondition);
  // Another worker's credential cannot act for it.
  v1::JoinRoundRequest j;
  j.set_worker_id(ids_["a"]);
  j.set_job_id("d");
  EXPECT_EQ(coordinator_->JoinRound(j, As("c")).status().code(),
            absl::StatusCode::kPermissionDenied);
  // Eligible again: c becomes a replica with the next shard; it keeps the
  // job while ineligible later (it just joins no round).
  ASSERT_EQ(Beat("c", true).directives_size(), 1);
  EXPECT_EQ(Beat("c", false, "d").directives_size(), 0);
  EXPECT_THAT(Job().workers(), ElementsAre("a", "c"));
}

TEST_F(DiLoCoJobsTest, RoundsAreCommittedAndTheFinalModelIsEvaluatedByAReplica) {
  TwoReplicas();
  const std::string v0 = *Fetch("a", 0);
  CloseRound(0);
  v1::JobStatus job = Job();
  EXPECT_EQ(job.round(), 1);
  EXPECT_EQ(job.progress().step(), 5);
  EXPECT_EQ(job.progress().total_steps(), 10);
  EXPECT_TRUE(std::filesystem::exists(dir_ + "/checkpoints/d/" + RoundCheckpointFileName(1)));
  EXPECT_NE(*Fetch("a", 1), v0);  // θ moved by the mean update
  EXPECT_EQ(Fetch("a", 0).status().code(), absl::StatusCode::kFailedPrecondition);
  CloseRound(1);
  job = Job();
  EXPECT_EQ(job.state(), v1::JOB_STATE_RUNNING);  // until the model is evaluated
  EXPECT_TRUE(coordinator_->ModelPath("d").ok());
  // Round checkpoints: the two newest are kept.
  EXPECT_TRUE(std::filesystem::exists(dir_ + "/checkpoints/d/" + RoundCheckpointFileName(2)));
  absl::StatusOr<v1::GetJobHistoryResponse> history = coordinator_->GetJobHistory("d");
  ASSERT_EQ(history->rounds_size(), 2);
  EXPECT_THAT(history->rounds(1).accepted(), ElementsAre("a", "b"));

  const v1::RoundTicket eval = *Join("b");
  EXPECT_TRUE(eval.evaluate());
  EXPECT_EQ(eval.base_version(), 2);
  EXPECT_TRUE(Join("a")->job_ended());
  EXPECT_TRUE(Join("b")->evaluate());  // its own ticket again (a restarted agent)
  v1::ReportProgressRequest report;
  report.set_worker_id(ids_["b"]);
  report.set_job_id("d");
  report.set_evaluated_version(2);
  report.mutable_progress()->set_test_accuracy(0.75f);
  ASSERT_TRUE(coordinator_->ReportProgress(report, As("b")).ok());
  job = Job();
  EXPECT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_THAT(job.reason(), HasSubstr("test accuracy 75.00%"));
  EXPECT_FLOAT_EQ(job.progress().test_accuracy(), 0.75f);
  const CoordinatorMetrics m = coordinator_->metrics();
  EXPECT_EQ(m.rounds_closed, 2);
  EXPECT_EQ(m.updates_accepted, 4);
  // Every replica is told to stop.
  EXPECT_TRUE(Beat("a", true, "d").directives(0).has_cancel_job_id());
}

TEST_F(DiLoCoJobsTest, WithoutAnEvaluationTheJobEndsAtTheDeadlineSayingSo) {
  TwoReplicas();
  CloseRound(0);
  CloseRound(1);
  clock_.Advance(absl::Seconds(61));
  coordinator_->Tick();
  EXPECT_EQ(Job().state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_THAT(Job().reason(), HasSubstr("test accuracy not measured: no replica joined"));
}

TEST_F(DiLoCoJobsTest, ARestartMidRoundLosesOnlyTheOpenRound) {
  TwoReplicas();
  CloseRound(0);
  const std::string v1_bytes = *Fetch("a", 1);
  ASSERT_TRUE(Join("a")->selected());
  ASSERT_TRUE(Push("a", 1).ok());  // round 1 half done
  Restart();
  v1::JobStatus job = Job();
  EXPECT_EQ(job.state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(job.round(), 1);
  EXPECT_THAT(job.reason(), HasSubstr("go on from round 1"));
  // The replicas re-register naming the job and their shard.
  Register("a", "d", 0);
  Register("b", "d", 1);
  EXPECT_THAT(Job().workers(), ElementsAre("a", "b"));
  EXPECT_EQ(*Fetch("a", 1), v1_bytes);  // θ_1 from the round checkpoint, bit for bit
  CloseRound(1);                        // a pushes again: its update was the open round's
  EXPECT_EQ(Job().round(), 2);
  // A worker naming a shard that is not its own is not taken back.
  Restart();
  Register("b", "d", 0);
  EXPECT_THAT(Job().workers(), ElementsAre());
}

TEST_F(DiLoCoJobsTest, ALostLeaseFreesThePlaceAndADrainStopsTheReplica) {
  Submit(DiLoCoSpec(/*quorum=*/1));
  Register("a");
  Register("b");
  Beat("a", true);
  Beat("b", true);
  ASSERT_TRUE(Join("a")->selected());
  EXPECT_FALSE(Join("b")->selected());  // one place per round
  clock_.Advance(absl::Seconds(4));
  Beat("b", true, "d");
  clock_.Advance(absl::Seconds(2));  // a's lease runs out
  Beat("b", true, "d");
  EXPECT_TRUE(Join("b")->selected());
  ASSERT_TRUE(coordinator_->DrainWorker("b").ok());
  const v1::HeartbeatResponse drained = Beat("b", true, "d");
  ASSERT_GE(drained.directives_size(), 1);
  bool cancelled = false;
  for (const auto& d : drained.directives()) cancelled |= d.cancel_job_id() == "d";
  EXPECT_TRUE(cancelled);
  EXPECT_EQ(Job().state(), v1::JOB_STATE_RUNNING);  // the rounds go on without it
  EXPECT_EQ(Join("b").status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(DiLoCoJobsTest, ReplicaErrorsFailTheJobOnlyWhenAsManyAsARoundSelects) {
  TwoReplicas();
  v1::ReportProgressRequest error;
  error.set_worker_id(ids_["a"]);
  error.set_job_id("d");
  error.set_error("data set: cannot open /nowhere");
  ASSERT_TRUE(coordinator_->ReportProgress(error, As("a")).ok());
  EXPECT_EQ(Job().state(), v1::JOB_STATE_RUNNING);
  EXPECT_THAT(Job().reason(), HasSubstr("a failed: data set"));
  error.set_worker_id(ids_["b"]);
  ASSERT_TRUE(coordinator_->ReportProgress(error, As("b")).ok());
  EXPECT_EQ(Job().state(), v1::JOB_STATE_FAILED);
  EXPECT_THAT(Job().reason(), HasSubstr("2 replicas failed"));
}

TEST_F(DiLoCoJobsTest, AHybridJobsDataCenterWorkersAreOneRingReplicaLedByItsRankZero) {
  v1::JobSpec spec = DiLoCoSpec();
  spec.add_pools(v1::WORKER_POOL_DATACENTER);
  spec.set_max_workers(2);  // the ring and one vehicle
  Submit(spec);
  RegisterDataCenter("dc-a");
  RegisterDataCenter("dc-b");
  Register("e1");
  Register("e2");
  // The ring forms with both free data-center workers.
  std::map<std::string, v1::Assignment> ring;
  for (const std::string name : {"dc-a", "dc-b"}) {
    const v1::HeartbeatResponse got = Beat(name, true);
    ASSERT_EQ(got.directives_size(), 1) << name;
    ASSERT_TRUE(got.directives(0).has_assign()) << name;
    ring[name] = got.directives(0).assign();
  }
  EXPECT_EQ(ring["dc-a"].world_size(), 2);
  EXPECT_EQ(ring["dc-a"].peer_addresses_size(), 2);
  EXPECT_EQ(ring["dc-a"].generation(), 2);  // the job started at 1
  EXPECT_EQ(ring["dc-a"].group_key(), ring["dc-b"].group_key());
  EXPECT_EQ(ring["dc-a"].replica_shard(), ring["dc-b"].replica_shard());
  EXPECT_TRUE(ring["dc-a"].abandon_previous());
  EXPECT_EQ(ring["dc-a"].rank() + ring["dc-b"].rank(), 1);  // ranks 0 and 1
  const std::string rank0 = ring["dc-a"].rank() == 0 ? "dc-a" : "dc-b";
  const std::string rank1 = rank0 == "dc-a" ? "dc-b" : "dc-a";
  // The ring counts as one replica: one vehicle more, not two.
  ASSERT_EQ(Beat("e1", true).directives_size(), 1);
  EXPECT_EQ(Beat("e2", true).directives_size(), 0);
  EXPECT_EQ(Beat("e1", true, "d").directives_size(), 0);  // nothing new
  // Only rank 0 takes part in rounds, under the ring's name.
  absl::StatusOr<v1::RoundTicket> follower = Join(rank1);
  EXPECT_EQ(follower.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(follower.status().message(), HasSubstr("only its rank 0"));
  ASSERT_TRUE(Join(rank0)->selected());
  ASSERT_TRUE(Join("e1")->selected());
  ASSERT_TRUE(Push(rank0, 0).ok());
  absl::StatusOr<v1::PushUpdateResponse> e1 = Push("e1", 0);
  ASSERT_TRUE(e1.ok()) << e1.status();
  ASSERT_TRUE(e1->complete());
  const v1::GetJobHistoryResponse history = *coordinator_->GetJobHistory("d");
  ASSERT_EQ(history.rounds_size(), 1);
  EXPECT_THAT(history.rounds(0).accepted(), testing::UnorderedElementsAre("datacenter-ring", "e1"));
  // Rank 1 falls silent: the ring's next generation is rank 0 alone.
  clock_.Advance(absl::Seconds(3));
  Beat("e1", true, "d");
  Beat(rank0, true, "d");
  clock_.Advance(absl::Seconds(3));
  Beat("e1", true, "d");
  const v1::HeartbeatResponse next = Beat(rank0, true, "d");
  ASSERT_EQ(next.directives_size(), 1);
  ASSERT_TRUE(next.directives(0).has_assign());
  EXPECT_EQ(next.directives(0).assign().generation(), 3);
  EXPECT_EQ(next.directives(0).assign().world_size(), 1);
  EXPECT_EQ(next.directives(0).assign().replica_shard(), ring[rank0].replica_shard());
  EXPECT_THAT(Job().workers(), testing::UnorderedElementsAre(rank0, "e1"));
  // Back, it is not re-adopted into a ring that went on without it; free,
  // it joins the ring's next generation.
  RegisterDataCenter(rank1, "d", ring[rank1].rank());
  const v1::HeartbeatResponse rejoined = Beat(rank1, true);
  ASSERT_EQ(rejoined.directives_size(), 1);
  EXPECT_EQ(rejoined.directives(0).assign().generation(), 4);
  EXPECT_EQ(rejoined.directives(0).assign().rank(), 1);
  EXPECT_EQ(rejoined.directives(0).assign().world_size(), 2);
  // A survivor's report of a lost member fences it; an older ring
  // generation's error changes nothing.
  v1::ReportProgressRequest stale;
  stale.set_worker_id(ids_[rank0]);
  stale.set_job_id("d");
  stale.set_generation(3);
  stale.set_error("UNAVAILABLE: peer gone");
  stale.add_lost_ranks(1);
  ASSERT_TRUE(coordinator_->ReportProgress(stale, As(rank0)).ok());
  EXPECT_THAT(Job().workers(), testing::UnorderedElementsAre(rank0, rank1, "e1"));
  v1::ReportProgressRequest lost = stale;
  lost.set_generation(4);
  ASSERT_TRUE(coordinator_->ReportProgress(lost, As(rank0)).ok());
  EXPECT_THAT(Job().workers(), testing::UnorderedElementsAre(rank0, "e1"));
  EXPECT_EQ(Job().state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(Job().generation(), 5);
  // A member's own failure: the ring goes on without it, and the stored
  // job keeps the generation that formed (the report's copy of the job is
  // not written over it).
  RegisterDataCenter("dc-c");
  ASSERT_EQ(Beat("dc-c", true).directives_size(), 1);
  EXPECT_EQ(Job().generation(), 6);
  v1::ReportProgressRequest broke;
  broke.set_worker_id(ids_["dc-c"]);
  broke.set_job_id("d");
  broke.set_generation(6);
  broke.set_error("cannot read the data set");
  ASSERT_TRUE(coordinator_->ReportProgress(broke, As("dc-c")).ok());
  EXPECT_EQ(Job().generation(), 7);
  EXPECT_THAT(Job().workers(), testing::UnorderedElementsAre(rank0, "e1"));
  bool alone = false;
  const v1::HeartbeatResponse after = Beat(rank0, true, "d");
  for (const v1::Directive& d : after.directives()) {
    alone |= d.has_assign() && d.assign().generation() == 7 && d.assign().world_size() == 1;
  }
  EXPECT_TRUE(alone);
  // A data-center worker free while the ring trains a round joins only
  // once the ring has pushed: a new generation would lose the round.
  ASSERT_TRUE(Join(rank0)->selected());
  RegisterDataCenter("dc-d");
  EXPECT_EQ(Beat("dc-d", true).directives_size(), 0);
  EXPECT_EQ(Job().generation(), 7);
  ASSERT_TRUE(Push(rank0, 1).ok());
  const v1::HeartbeatResponse joined = Beat("dc-d", true);
  ASSERT_EQ(joined.directives_size(), 1);
  EXPECT_EQ(joined.directives(0).assign().generation(), 8);
  EXPECT_EQ(joined.directives(0).assign().world_size(), 2);
  EXPECT_EQ(Job().round(), 1);  // round 1 still open, the ring's update in it
}

}  // namespace
}  // namespace nightshift::coordinator
