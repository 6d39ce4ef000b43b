// WorkerDaemon in-process: the real coordinator logic behind an
// InProcessCoordinatorClient, a fake clock for leases, and in-process
// transports, so that registration, assignment, cancel, drain, a lost
// lease and a coordinator that goes away are exercised with no sockets
// and no sleeps. Jobs train for real (a synthetic data set, one rank).
#include "worker/worker_daemon.h"

#include <cstdlib>
#include <map>
#include <memory>

#include "absl/strings/match.h"
#include "absl/synchronization/notification.h"
#include "base/clock.h"
#include "collective/transport/forwarding_transport.h"
#include "collective/transport/local/local_transport.h"
#include "coordinator/coordinator.h"
#include "coordinator/job_store.h"
#include "glog/logging.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "worker/edge/edge_test_spec.h"
#include "worker/in_process_coordinator_client.h"

namespace nightshift {
namespace {

using testing::HasSubstr;

// Notified when any rank first waits for a message; ranks may get there
// at once, and a Notification must be notified only once.
class FirstReceive {
 public:
  void Mark() {
    absl::MutexLock lock(&mu_);
    if (!notification_.HasBeenNotified()) notification_.Notify();
  }
  bool WaitForNotificationWithTimeout(absl::Duration d) {
    return notification_.WaitForNotificationWithTimeout(d);
  }

 private:
  absl::Mutex mu_;
  absl::Notification notification_;
};

// A rank's transport that tells when the rank first waits for a message.
class ObservedTransport final : public collective::ForwardingTransport {
 public:
  ObservedTransport(std::unique_ptr<collective::Transport> inner, FirstReceive* receiving)
      : ForwardingTransport(std::move(inner)), receiving_(receiving) {}
  absl::Status RecvWith(int from, uint64_t tag, size_t bytes, absl::Time deadline,
                        const ConsumeParts& consume) override {
    receiving_->Mark();
    return ForwardingTransport::RecvWith(from, tag, bytes, deadline, consume);
  }
  absl::Status RecvInto(int from, uint64_t tag, absl::Span<const absl::Span<char>> into,
                        absl::Time deadline) override {
    receiving_->Mark();
    return ForwardingTransport::RecvInto(from, tag, into, deadline);
  }

 private:
  FirstReceive* receiving_;
};

// Groups over in-process hubs, one per (job, generation): the ranks that
// connect share it; a rank whose worker never starts simply never does.
class LocalTransports final : public GroupTransports {
 public:
  std::string peer_address() const override { return "in-process:0"; }
  std::string host_id() const override { return "test-host"; }
  absl::StatusOr<std::unique_ptr<collective::Transport>> Connect(const v1::Assignment& a) override {
    absl::MutexLock lock(&mu_);
    auto& hub = hubs_[{a.job_id(), a.generation()}];
    if (hub == nullptr) hub = std::make_unique<collective::LocalHub>(a.world_size());
    return std::make_unique<ObservedTransport>(hub->Connect(a.rank()), &receiving);
  }

  // Notified when any rank first waits to receive.
  FirstReceive receiving;

 private:
  absl::Mutex mu_;
  std::map<std::pair<std::string, int64_t>, std::unique_ptr<collective::LocalHub>> hubs_
      ABSL_GUARDED_BY(mu_);
};

// The daemon's client as the test sees it: every call goes to the
// in-process coordinator; reports are recorded, and a test may slip a
// directive into the next heartbeat reply (one the coordinator would
// never send in that state).
class RecordingClient final : public CoordinatorClient {
 public:
  explicit RecordingClient(CoordinatorClient* inner) : inner_(inner) {}

  absl::StatusOr<v1::RegisterResponse> Register(const v1::RegisterRequest& r) override {
    return inner_->Register(r);
  }
  absl::StatusOr<v1::HeartbeatResponse> Heartbeat(const v1::HeartbeatRequest& r) override {
    absl::StatusOr<v1::HeartbeatResponse> response = inner_->Heartbeat(r);
    absl::MutexLock lock(&mu_);
    if (lose_next_reply_) {
      lose_next_reply_ = false;
      return absl::UnavailableError("the link was cut after the coordinator answered");
    }
    if (response.ok()) {
      for (v1::Directive& d : injected_) *response->add_directives() = std::move(d);
      injected_.clear();
    }
    return response;
  }
  absl::Status ReportProgress(const v1::ReportProgressRequest& r) override {
    {
      absl::MutexLock lock(&mu_);
      if (!r.error().empty()) errors_.push_back(r.job_id() + ": " + r.error());
    }
    return inner_->ReportProgress(r);
  }
  absl::Status UploadCheckpoint(const std::string& worker_id, const std::string& job_id,
                                int64_t step, bool final, const std::string& path) override {
    return inner_->UploadCheckpoint(worker_id, job_id, step, final, path);
  }
  absl::Status DownloadCheckpoint(const std::string& job_id, int64_t step,
                                  const std::string& path) override {
    return inner_->DownloadCheckpoint(job_id, step, path);
  }
  absl::StatusOr<v1::WorkerInfo> DrainWorker(const std::string& worker_id) override {
    return inner_->DrainWorker(worker_id);
  }
  absl::StatusOr<v1::RoundTicket> JoinRound(const v1::JoinRoundRequest& r) override {
    return inner_->JoinRound(r);
  }
  absl::StatusOr<v1::FetchParametersResponse> FetchParameters(
      const v1::FetchParametersRequest& r) override {
    return inner_->FetchParameters(r);
  }
  absl::StatusOr<v1::PushUpdateResponse> PushUpdate(const v1::PushUpdateRequest& r) override {
    return inner_->PushUpdate(r);
  }
  absl::StatusOr<v1::FetchModelResponse> FetchModel(const v1::FetchModelRequest& r) override {
    return inner_->FetchModel(r);
  }

  // The next heartbeat reaches the coordinator; its reply is lost.
  void LoseNextReply() {
    absl::MutexLock lock(&mu_);
    lose_next_reply_ = true;
  }
  void Inject(v1::Directive d) {
    absl::MutexLock lock(&mu_);
    injected_.push_back(std::move(d));
  }
  // Every error the daemon reported, "job: error".
  std::vector<std::string> errors() {
    absl::MutexLock lock(&mu_);
    return errors_;
  }

 private:
  CoordinatorClient* inner_;
  absl::Mutex mu_;
  std::vector<v1::Directive> injected_ ABSL_GUARDED_BY(mu_);
  bool lose_next_reply_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::string> errors_ ABSL_GUARDED_BY(mu_);
};

v1::JobSpec SyntheticSpec(int64_t steps) {
  v1::JobSpec spec;
  CHECK(google::protobuf::TextFormat::ParseFromString(R"pb(
                                                        model {
                                                          layers { flatten {} }
                                                          layers { dense { units: 16 } }
                                                          layers { relu {} }
                                                          layers { dense { units: 3 } }
                                                        }
                                                        dataset {
                                                          synthetic {
                                                            train_examples: 300
                                                            test_examples: 60
                                                            channels: 1
                                                            height: 4
                                                            width: 4
                                                            classes: 3
                                                            noise: 1.0
                                                          }
                                                        }
                                                        optimizer { sgd { lr: 0.05 } }
                                                        global_batch_size: 20
                                                        seed: 3
                                                      )pb",
                                                      &spec));
  spec.set_steps(steps);
  return spec;
}

// Long enough that it only ends when it is stopped.
constexpr int64_t kEndlessSteps = 1'000'000'000;
// Real-time bound on waits for a job thread; they end in milliseconds.
constexpr absl::Duration kJobWait = absl::Seconds(120);
// Longer than any wait a passing test makes.
constexpr absl::Duration kCollectiveTimeout = absl::Seconds(100);

class WorkerDaemonTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::string(std::getenv("TEST_TMPDIR")) + "/" +
           testing::UnitTest::GetInstance()->current_test_info()->name();
    ASSERT_EQ(system(("mkdir -p " + dir_).c_str()), 0);
    auto store = coordinator::JobStore::Open(dir_ + "/state.db");
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    StartCoordinator();
    client_ = std::make_unique<InProcessCoordinatorClient>(coordinator_.get());
    recording_ = std::make_unique<RecordingClient>(client_.get());
    WorkerOptions options;
    options.name = "worker-a";
    options.scratch_dir = dir_ + "/scratch";
    options.compute_rate = 1000;  // no 0.2 s measurement
    options.threads = 1;
    options.collective_timeout = kCollectiveTimeout;
    daemon_ = std::make_unique<WorkerDaemon>(options, recording_.get(), &transports_, &clock_);
  }
  void TearDown() override { daemon_.reset(); }

  // A new coordinator over the same store, as after a restart.
  void StartCoordinator() {
    coordinator::CoordinatorOptions options;
    options.state_dir = dir_;
    options.lease_ttl = absl::Seconds(6);
    options.heartbeat_interval = absl::Seconds(1);
    auto c = coordinator::Coordinator::Create(store_.get(), &clock_, options);
    ASSERT_TRUE(c.ok()) << c.status();
    old_coordinators_.push_back(std::move(coordinator_));
    coordinator_ = *std::move(c);
  }

  std::string Submit(int64_t steps, const std::string& id) {
    v1::SubmitJobRequest request;
    *request.mutable_spec() = SyntheticSpec(steps);
    request.set_job_id(id);
    auto job = coordinator_->SubmitJob(request);
    EXPECT_TRUE(job.ok()) << job.status();
    return id;
  }

  v1::JobStatus Job(const std::string& id) {
    auto job = coordinator_->GetJob(id);
    EXPECT_TRUE(job.ok()) << job.status();
    return job.ok() ? *job : v1::JobStatus();
  }

  v1::WorkerInfo WorkerNamed(const std::string& name) {
    for (const v1::WorkerInfo& w : coordinator_->ListWorkers()) {
      if (w.name() == name && w.state() != v1::WORKER_STATE_LOST) return w;
    }
    return v1::WorkerInfo();
  }

  void Tick() { ASSERT_TRUE(daemon_->Tick().ok()); }

  // A worker "worker-ghost" that registers with `rate` samples/s and then
  // never calls again: its part of any assignment is never taken.
  void RegisterGhost(double rate) {
    v1::RegisterRequest ghost;
    ghost.set_name("worker-ghost");
    ghost.set_pool(v1::WORKER_POOL_DATACENTER);
    ghost.set_peer_address("in-process:ghost");
    ghost.set_samples_per_second(rate);
    ASSERT_TRUE(coordinator_->Register(ghost, {security::Role::kWorker, ghost.name(), ""}).ok());
  }

  // Heartbeats every daemon (their control rounds) until none runs a job;
  // between rounds each waits for its job to end, for at most 50 ms (a
  // condition wait, not a sleep). False after kJobWait.
  bool DriveUntilNoJob(const std::vector<WorkerDaemon*>& daemons) {
    return DriveUntil(daemons, [&] {
      bool idle = true;
      for (WorkerDaemon* d : daemons) idle &= d->current_job().empty();
      return idle;
    });
  }
  // The same rounds until `done()` holds; false after kJobWait.
  bool DriveUntil(const std::vector<WorkerDaemon*>& daemons, const std::function<bool()>& done) {
    const absl::Time give_up = absl::Now() + kJobWait;
    while (absl::Now() < give_up) {
      for (WorkerDaemon* d : daemons) {
        d->AwaitNoJob(absl::Now() + absl::Milliseconds(50));
        EXPECT_TRUE(d->Tick().ok());
      }
      if (done()) return true;
    }
    return false;
  }
  std::unique_ptr<WorkerDaemon> MakeDaemon(const std::string& name) {
    WorkerOptions options;
    options.name = name;
    options.scratch_dir = dir_ + "/scratch-" + name;
    options.compute_rate = 1000;
    options.threads = 1;
    options.collective_timeout = absl::Seconds(1);
    return std::make_unique<WorkerDaemon>(options, recording_.get(), &transports_, &clock_);
  }

  // An edge agent (no Peer service) whose vehicle says `eligibility()`.
  std::unique_ptr<WorkerDaemon> MakeEdgeAgent(const std::string& name,
                                              std::function<v1::Eligibility()> eligibility) {
    WorkerOptions options;
    options.name = name;
    options.pool = v1::WORKER_POOL_EDGE;
    options.compute_rate = 100;
    options.threads = 1;
    options.eligibility = std::move(eligibility);
    return std::make_unique<WorkerDaemon>(options, recording_.get(), nullptr, &clock_);
  }
  static v1::Eligibility Eligibility(bool eligible) {
    v1::Eligibility e;
    e.set_eligible(eligible);
    e.set_reason(eligible ? "parked and charging" : "ignition on");
    return e;
  }

  std::string dir_;
  FakeClock clock_{absl::FromUnixSeconds(1'700'000'000)};
  std::unique_ptr<coordinator::JobStore> store_;
  std::vector<std::unique_ptr<coordinator::Coordinator>> old_coordinators_;
  std::unique_ptr<coordinator::Coordinator> coordinator_;
  std::unique_ptr<InProcessCoordinatorClient> client_;
  std::unique_ptr<RecordingClient> recording_;
  LocalTransports transports_;
  std::unique_ptr<WorkerDaemon> daemon_;
};

TEST_F(WorkerDaemonTest, TheFirstRoundRegistersWithPeerAddressHostAndRate) {
  EXPECT_EQ(daemon_->worker_id(), "");
  Tick();
  ASSERT_NE(daemon_->worker_id(), "");
  const v1::WorkerInfo w = WorkerNamed("worker-a");
  EXPECT_EQ(w.id(), daemon_->worker_id());
  EXPECT_EQ(w.state(), v1::WORKER_STATE_IDLE);
  EXPECT_EQ(w.peer_address(), "in-process:0");
  EXPECT_EQ(w.host_id(), "test-host");
  EXPECT_DOUBLE_EQ(w.samples_per_second(), 1000);
}

TEST_F(WorkerDaemonTest, AnAssignedJobTrainsToTheEndAndItsModelIsUploaded) {
  Tick();  // registers
  Submit(30, "short");
  Tick();  // heartbeat: scheduled here, assignment in the reply
  EXPECT_EQ(daemon_->current_job(), "short");
  ASSERT_TRUE(daemon_->AwaitNoJob(absl::Now() + kJobWait));
  const v1::JobStatus job = Job("short");
  EXPECT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED) << job.reason();
  EXPECT_EQ(job.progress().step(), 30);
  EXPECT_TRUE(coordinator_->ModelPath("short").ok());
  Tick();  // the heartbeat reports no job: the worker is free again
  EXPECT_EQ(WorkerNamed("worker-a").state(), v1::WORKER_STATE_IDLE);
}

TEST_F(WorkerDaemonTest, AnAssignmentWhoseReplyWasLostComesAgainAndIsAppliedOnce) {
  Tick();
  Submit(kEndlessSteps, "endless");
  recording_->LoseNextReply();
  Tick();  // the coordinator sent the assignment; the daemon never saw it
  EXPECT_EQ(daemon_->current_job(), "");
  Tick();  // sent again
  ASSERT_EQ(daemon_->current_job(), "endless");
  // A directive numbered as one already applied is a resent copy: ignored.
  v1::Directive resent_copy;
  resent_copy.set_cancel_job_id("endless");
  resent_copy.set_sequence(1);
  recording_->Inject(resent_copy);
  Tick();
  // Applied, the cancel would stop the job before its next step (a few
  // milliseconds); it still runs a second later.
  EXPECT_FALSE(daemon_->AwaitNoJob(absl::Now() + absl::Seconds(1)))
      << "the resent copy of directive 1 was applied again";
  EXPECT_EQ(Job("endless").state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(WorkerNamed("worker-a").state(), v1::WORKER_STATE_BUSY);
  ASSERT_TRUE(coordinator_->CancelJob("endless", "test").ok());
  Tick();  // the cancel, numbered 2
  ASSERT_TRUE(daemon_->AwaitNoJob(absl::Now() + kJobWait)) << "the job did not stop";
}

TEST_F(WorkerDaemonTest, ACancelDirectiveStopsTheJobWithoutAnErrorReport) {
  Tick();
  Submit(kEndlessSteps, "endless");
  Tick();
  ASSERT_EQ(daemon_->current_job(), "endless");
  ASSERT_TRUE(coordinator_->CancelJob("endless", "test").ok());
  Tick();  // the cancel directive
  ASSERT_TRUE(daemon_->AwaitNoJob(absl::Now() + kJobWait)) << "the job did not stop";
  EXPECT_EQ(Job("endless").state(), v1::JOB_STATE_CANCELLED);
  EXPECT_THAT(recording_->errors(), testing::IsEmpty()) << "a cancel is not a failure";
}

TEST_F(WorkerDaemonTest, ACancelStopsARankBlockedOnAPeerThatNeverStarted) {
  // A second worker that registers and then never calls again: its half of
  // the assignment is never taken, so this daemon's rank waits in its first
  // collective, far longer than the test's bound on the wait below.
  RegisterGhost(1000);
  Tick();
  v1::SubmitJobRequest request;
  *request.mutable_spec() = SyntheticSpec(kEndlessSteps);
  request.mutable_spec()->set_min_workers(2);
  request.set_job_id("pair");
  ASSERT_TRUE(coordinator_->SubmitJob(request).ok());
  Tick();
  ASSERT_EQ(daemon_->current_job(), "pair");
  // The rank waits for its peer in a collective before it is cancelled.
  ASSERT_TRUE(transports_.receiving.WaitForNotificationWithTimeout(kJobWait));
  ASSERT_TRUE(coordinator_->CancelJob("pair", "test").ok());
  Tick();
  const absl::Time start = absl::Now();
  ASSERT_TRUE(daemon_->AwaitNoJob(start + kJobWait)) << "the blocked rank never stopped";
  EXPECT_LT(absl::Now() - start, kCollectiveTimeout / 2)
      << "the rank stopped at its collective timeout, not at the cancel";
  EXPECT_EQ(Job("pair").state(), v1::JOB_STATE_CANCELLED);
  EXPECT_THAT(recording_->errors(), testing::IsEmpty());
}

TEST_F(WorkerDaemonTest, ARankWhosePeerFallsSilentReportsItLostWithItsCommittedStep) {
  // As above, but nobody cancels: the rank gives up at its collective
  // timeout and tells the coordinator which peer is gone.
  WorkerOptions options;
  options.name = "worker-short";
  options.scratch_dir = dir_ + "/scratch-short";
  options.compute_rate = 1000;
  options.threads = 1;
  options.collective_timeout = absl::Seconds(1);
  WorkerDaemon daemon(options, recording_.get(), &transports_, &clock_);
  RegisterGhost(1000);
  ASSERT_TRUE(daemon.Tick().ok());
  v1::SubmitJobRequest request;
  *request.mutable_spec() = SyntheticSpec(kEndlessSteps);
  request.mutable_spec()->set_min_workers(2);
  request.mutable_spec()->set_wait_for_workers_seconds(10);
  request.set_job_id("pair");
  ASSERT_TRUE(coordinator_->SubmitJob(request).ok());
  ASSERT_TRUE(daemon.Tick().ok());
  ASSERT_EQ(daemon.current_job(), "pair");
  // One survivor is fewer than min_workers: the job waits, holding the
  // model on the survivor...
  ASSERT_TRUE(DriveUntil({&daemon}, [&] { return Job("pair").state() == v1::JOB_STATE_WAITING; }));
  EXPECT_THAT(Job("pair").reason(), HasSubstr("losing worker-ghost (rank"));
  EXPECT_THAT(Job("pair").reason(), HasSubstr("last commit: step 0"));
  EXPECT_THAT(Job("pair").reason(), HasSubstr("waiting for workers: 1 of at least 2"));
  EXPECT_EQ(daemon.current_job(), "pair") << "the survivor holds the model";
  // ...and, with nobody joining, fails at its deadline; the cancel that
  // follows reaches the daemon on a heartbeat.
  for (int i = 0; i < 6 && Job("pair").state() == v1::JOB_STATE_WAITING; ++i) {
    clock_.Advance(absl::Seconds(2));
    ASSERT_TRUE(daemon.Tick().ok());
    coordinator_->Tick();  // as the coordinator's periodic tick does
  }
  ASSERT_TRUE(DriveUntilNoJob({&daemon}));
  const v1::JobStatus job = Job("pair");
  EXPECT_EQ(job.state(), v1::JOB_STATE_FAILED);
  EXPECT_THAT(job.reason(), HasSubstr("no worker joined within 10 s"));
  EXPECT_THAT(job.reason(), HasSubstr("lost: worker-ghost"));
}

TEST_F(WorkerDaemonTest, SurvivorsOfALostPeerGoOnInTheNextGenerationAndFinishTheJob) {
  // Two daemons and a ghost that never starts its part: the daemons' first
  // collective times out, they report the ghost lost, and the coordinator
  // forms generation 2 of the two; they resume from their commit (step 0)
  // in the same processes and finish.
  auto first = MakeDaemon("first"), second = MakeDaemon("second");
  RegisterGhost(10);  // the slowest: the last rank
  ASSERT_TRUE(first->Tick().ok());
  ASSERT_TRUE(second->Tick().ok());
  v1::SubmitJobRequest request;
  *request.mutable_spec() = SyntheticSpec(40);
  request.mutable_spec()->set_min_workers(1);
  request.mutable_spec()->set_max_workers(3);
  request.set_job_id("elastic");
  ASSERT_TRUE(coordinator_->SubmitJob(request).ok());
  ASSERT_TRUE(first->Tick().ok());
  ASSERT_TRUE(second->Tick().ok());
  ASSERT_EQ(first->current_job(), "elastic");
  ASSERT_EQ(second->current_job(), "elastic");
  ASSERT_TRUE(DriveUntilNoJob({first.get(), second.get()}));
  const v1::JobStatus job = Job("elastic");
  EXPECT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED) << job.reason();
  EXPECT_EQ(job.generation(), 2);
  EXPECT_THAT(job.workers(), testing::UnorderedElementsAre("first", "second"));
  EXPECT_EQ(job.progress().step(), 40);
  auto history = coordinator_->GetJobHistory("elastic");
  ASSERT_TRUE(history.ok());
  bool regrouped = false;
  for (const auto& e : history->events()) {
    regrouped |= absl::StrContains(e.reason(), "after losing worker-ghost");
  }
  EXPECT_TRUE(regrouped) << "no history event for generation 2";
  EXPECT_EQ(coordinator_->metrics().recoveries, 1);
}

TEST_F(WorkerDaemonTest, ADrainingWorkerKeepsItsJobStartsNoOtherAndStaysDraining) {
  Tick();
  Submit(kEndlessSteps, "running");
  Tick();
  ASSERT_EQ(daemon_->current_job(), "running");
  ASSERT_TRUE(coordinator_->DrainWorker(daemon_->worker_id()).ok());
  Tick();  // the drain directive
  EXPECT_TRUE(daemon_->draining());
  EXPECT_EQ(daemon_->current_job(), "running");  // draining does not stop it
  EXPECT_EQ(WorkerNamed("worker-a").state(), v1::WORKER_STATE_DRAINING);
  ASSERT_TRUE(coordinator_->CancelJob("running", "test").ok());
  Tick();
  ASSERT_TRUE(daemon_->AwaitNoJob(absl::Now() + kJobWait));
  // An assignment reaching a draining daemon anyway is not taken.
  v1::Directive assign;
  assign.mutable_assign()->set_job_id("stray");
  *assign.mutable_assign()->mutable_spec() = SyntheticSpec(30);
  assign.mutable_assign()->set_world_size(1);
  recording_->Inject(assign);
  Tick();
  EXPECT_EQ(daemon_->current_job(), "");
  // A worker that registers again (its lease ran out) says it drains.
  clock_.Advance(absl::Seconds(7));
  coordinator_->Tick();
  Tick();  // NOT_FOUND, registers again
  EXPECT_EQ(WorkerNamed("worker-a").state(), v1::WORKER_STATE_DRAINING);
  Submit(30, "next");
  Tick();
  EXPECT_EQ(daemon_->current_job(), "");
  EXPECT_EQ(Job("next").state(), v1::JOB_STATE_QUEUED);
}

TEST_F(WorkerDaemonTest, ALeaseLostWhileAJobRunsCancelsItAndRegistersOnceItStopped) {
  Tick();
  const std::string first_id = daemon_->worker_id();
  Submit(kEndlessSteps, "endless");
  Tick();
  ASSERT_EQ(daemon_->current_job(), "endless");
  clock_.Advance(absl::Seconds(7));  // no heartbeat for longer than the TTL
  coordinator_->Tick();
  EXPECT_EQ(Job("endless").state(), v1::JOB_STATE_FAILED);
  EXPECT_THAT(Job("endless").reason(), HasSubstr("worker-a"));
  Tick();  // NOT_FOUND: the lease is gone; the orphaned job is cancelled
  ASSERT_TRUE(daemon_->AwaitNoJob(absl::Now() + kJobWait)) << "the orphaned job kept running";
  Tick();  // registers again (in the round above if the job had stopped by then)
  EXPECT_NE(daemon_->worker_id(), "");
  EXPECT_NE(daemon_->worker_id(), first_id);
  EXPECT_EQ(WorkerNamed("worker-a").id(), daemon_->worker_id());
  EXPECT_THAT(recording_->errors(), testing::IsEmpty()) << "the cancelled run reported a failure";
  EXPECT_THAT(Job("endless").reason(), HasSubstr("lost its lease"));
}

TEST_F(WorkerDaemonTest, ACoordinatorThatGoesAwayAndComesBackFindsTheJobStillRunning) {
  Tick();
  const std::string id = daemon_->worker_id();
  Submit(kEndlessSteps, "endless");
  Tick();
  ASSERT_EQ(daemon_->current_job(), "endless");
  client_->SetCoordinator(nullptr);  // unreachable
  Tick();
  Tick();
  EXPECT_EQ(daemon_->current_job(), "endless");  // training goes on meanwhile
  EXPECT_EQ(daemon_->worker_id(), id);
  client_->SetCoordinator(coordinator_.get());  // back, within the lease
  Tick();
  EXPECT_EQ(daemon_->worker_id(), id);
  EXPECT_EQ(WorkerNamed("worker-a").state(), v1::WORKER_STATE_BUSY);
  EXPECT_EQ(Job("endless").state(), v1::JOB_STATE_RUNNING);
}

TEST_F(WorkerDaemonTest, ARestartedCoordinatorReAdoptsTheRunningJob) {
  Tick();
  const std::string first_id = daemon_->worker_id();
  Submit(kEndlessSteps, "endless");
  Tick();
  ASSERT_EQ(daemon_->current_job(), "endless");
  StartCoordinator();  // forgets every worker; the job stays RUNNING
  client_->SetCoordinator(coordinator_.get());
  EXPECT_EQ(Job("endless").state(), v1::JOB_STATE_RUNNING);
  Tick();  // NOT_FOUND: registers again at once, with its job
  EXPECT_NE(daemon_->worker_id(), "");
  EXPECT_NE(daemon_->worker_id(), first_id);
  EXPECT_EQ(daemon_->current_job(), "endless") << "the run went on";
  EXPECT_EQ(WorkerNamed("worker-a").state(), v1::WORKER_STATE_BUSY);
  EXPECT_EQ(WorkerNamed("worker-a").job_id(), "endless");
  EXPECT_EQ(Job("endless").generation(), 1) << "re-adopted, not restarted";
  EXPECT_THAT(Job("endless").reason(), HasSubstr("re-adopted"));
  // Its reports land under its new id.
  ASSERT_TRUE(DriveUntil({daemon_.get()}, [&] { return Job("endless").progress().step() > 0; }));
  EXPECT_THAT(recording_->errors(), testing::IsEmpty());
}

TEST_F(WorkerDaemonTest, AFreeWorkerJoinsARunningJobAndTrainsInItsGroup) {
  auto first = MakeDaemon("first"), second = MakeDaemon("second");
  ASSERT_TRUE(first->Tick().ok());
  v1::SubmitJobRequest request;
  *request.mutable_spec() = SyntheticSpec(kEndlessSteps);
  request.mutable_spec()->set_min_workers(1);
  request.mutable_spec()->set_max_workers(2);
  request.set_job_id("grows");
  ASSERT_TRUE(coordinator_->SubmitJob(request).ok());
  ASSERT_TRUE(first->Tick().ok());
  ASSERT_EQ(first->current_job(), "grows");
  ASSERT_TRUE(first->Tick().ok());   // says it runs generation 1: settled
  ASSERT_TRUE(second->Tick().ok());  // registers
  // Its next heartbeat finds it free: generation 2 on both, the joiner
  // gets the model from `first` and rank 0 reports 2 workers.
  ASSERT_TRUE(DriveUntil({first.get(), second.get()}, [&] {
    return Job("grows").progress().workers() == 2;
  })) << Job("grows").reason();
  const v1::JobStatus job = Job("grows");
  EXPECT_EQ(job.generation(), 2);
  EXPECT_THAT(job.workers(), testing::ElementsAre("first", "second"));
  EXPECT_EQ(second->current_job(), "grows");
  EXPECT_THAT(recording_->errors(), testing::IsEmpty());
  // (A rank whose cancel comes after its peer's may report the peer's
  // abort; the job has ended, and the coordinator ignores it.)
  ASSERT_TRUE(coordinator_->CancelJob("grows", "test").ok());
  ASSERT_TRUE(DriveUntilNoJob({first.get(), second.get()}));
}

TEST_F(WorkerDaemonTest, AWorkerThatLeavesDrainsAndTheJobGoesOnWithoutIt) {
  auto first = MakeDaemon("first"), second = MakeDaemon("second");
  ASSERT_TRUE(first->Tick().ok());
  ASSERT_TRUE(second->Tick().ok());
  v1::SubmitJobRequest request;
  *request.mutable_spec() = SyntheticSpec(kEndlessSteps);
  request.mutable_spec()->set_min_workers(1);
  request.mutable_spec()->set_max_workers(2);
  request.set_job_id("shrinks");
  ASSERT_TRUE(coordinator_->SubmitJob(request).ok());
  ASSERT_TRUE(DriveUntil({first.get(), second.get()},
                         [&] { return Job("shrinks").progress().workers() == 2; }));
  second->Leave(absl::Minutes(5));  // as on SIGTERM
  // It drains through the coordinator, yields with the group at the next
  // commit point and leaves; `first` goes on alone in generation 2.
  ASSERT_TRUE(DriveUntil({first.get(), second.get()}, [&] {
    return second->current_job().empty() && Job("shrinks").progress().workers() == 1;
  }));
  const v1::JobStatus job = Job("shrinks");
  EXPECT_EQ(job.state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(job.generation(), 2);
  EXPECT_THAT(job.workers(), testing::ElementsAre("first"));
  EXPECT_THAT(job.reason(), testing::ContainsRegex("second \\(rank [01]\\) drained"));
  EXPECT_TRUE(second->draining());
  EXPECT_EQ(WorkerNamed("second").state(), v1::WORKER_STATE_DRAINING);
  EXPECT_EQ(coordinator_->metrics().steps_redone, 0) << "a drain loses no step";
  ASSERT_TRUE(coordinator_->CancelJob("shrinks", "test").ok());
  ASSERT_TRUE(DriveUntilNoJob({first.get()}));
  EXPECT_THAT(recording_->errors(), testing::IsEmpty());
}

TEST_F(WorkerDaemonTest, ARefusedRegistrationEndsTheDaemonWithTheReason) {
  WorkerOptions options;
  options.name = "";  // the coordinator refuses a nameless worker
  options.compute_rate = 1000;
  WorkerDaemon nameless(options, client_.get(), &transports_, &clock_);
  const absl::Status s = nameless.Tick();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("name"));
}

TEST_F(WorkerDaemonTest, AnEdgeWorkerWithoutTransportsRegistersWithoutAPeerAddress) {
  WorkerOptions options;
  options.name = "vehicle-1";
  options.pool = v1::WORKER_POOL_EDGE;
  options.compute_rate = 1000;
  WorkerDaemon edge(options, client_.get(), nullptr, &clock_);
  ASSERT_TRUE(edge.Tick().ok());
  const v1::WorkerInfo w = WorkerNamed("vehicle-1");
  EXPECT_EQ(w.pool(), v1::WORKER_POOL_EDGE);
  EXPECT_EQ(w.peer_address(), "");
}

// Edge agents as diloco replicas: an ineligible one is given no work; two
// eligible ones train the job's rounds over the daemon's own client and
// one evaluates the final model, which ends the job with its accuracy.
TEST_F(WorkerDaemonTest, EdgeAgentsTrainADiLoCoJobWhileEligible) {
  v1::SubmitJobRequest request;
  *request.mutable_spec() = EdgeTestSpec(R"pb(
    global_batch_size: 16
    steps: 40
    min_workers: 2
    max_workers: 2
    sync { diloco { inner_steps: 10 rounds: 4 quorum: 2 over_selection: 0 } }
  )pb");
  request.set_job_id("fleet");
  absl::StatusOr<v1::JobStatus> submitted = coordinator_->SubmitJob(request);
  ASSERT_TRUE(submitted.ok()) << submitted.status();
  std::atomic<bool> b_eligible{false};
  std::vector<std::unique_ptr<WorkerDaemon>> agents;
  for (const std::string name : {"edge-a", "edge-b"}) {
    agents.push_back(MakeEdgeAgent(
        name, [name, &b_eligible] { return Eligibility(name == "edge-a" || b_eligible.load()); }));
  }
  std::vector<WorkerDaemon*> daemons = {agents[0].get(), agents[1].get()};
  ASSERT_TRUE(DriveUntil(daemons, [&] { return !agents[0]->current_job().empty(); }));
  EXPECT_EQ(agents[1]->current_job(), "");  // ineligible: no work
  EXPECT_EQ(WorkerNamed("edge-b").eligibility().reason(), "ignition on");
  b_eligible.store(true);
  agents[1]->EligibilityChanged(true);
  ASSERT_TRUE(DriveUntil(daemons, [&] {
    const v1::JobState s = Job("fleet").state();
    return s == v1::JOB_STATE_SUCCEEDED || s == v1::JOB_STATE_FAILED;
  })) << Job("fleet").reason();
  const v1::JobStatus job = Job("fleet");
  ASSERT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED) << job.reason();
  EXPECT_EQ(job.round(), 4);
  EXPECT_THAT(job.reason(), testing::HasSubstr("test accuracy"));
  EXPECT_GT(job.progress().test_accuracy(), 0.5f) << job.reason();  // 4 classes: chance is 0.25
  EXPECT_TRUE(DriveUntilNoJob(daemons));
  auto history = coordinator_->GetJobHistory("fleet");
  ASSERT_EQ(history->rounds_size(), 4);
  EXPECT_EQ(history->rounds(3).accepted_size(), 2);
}

TEST_F(WorkerDaemonTest, AHybridJobsDataCenterRingIsOneReplicaAndOutlivesALostMember) {
  // Two data-center daemons form one ring (one replica, beside two edge
  // agents); when the ring's rank 0 stops heartbeating mid-job, its lease
  // runs out, the survivor goes on as the ring's next generation, and the
  // job succeeds with the ring and the vehicles in its rounds.
  v1::SubmitJobRequest request;
  *request.mutable_spec() = EdgeTestSpec(R"pb(
    pools: WORKER_POOL_DATACENTER
    global_batch_size: 16
    steps: 120
    max_workers: 3
    sync { diloco { inner_steps: 10 rounds: 12 quorum: 3 over_selection: 0 } }
  )pb");
  request.set_job_id("hybrid");
  absl::StatusOr<v1::JobStatus> submitted = coordinator_->SubmitJob(request);
  ASSERT_TRUE(submitted.ok()) << submitted.status();
  std::map<std::string, std::unique_ptr<WorkerDaemon>> daemons;
  daemons["dc-a"] = MakeDaemon("dc-a");
  daemons["dc-b"] = MakeDaemon("dc-b");
  for (const std::string name : {"edge-a", "edge-b"}) {
    daemons[name] = MakeEdgeAgent(name, [] { return Eligibility(true); });
  }
  auto all_but = [&](const std::string& skipped) {
    std::vector<WorkerDaemon*> v;
    for (auto& [name, d] : daemons) {
      if (name != skipped) v.push_back(d.get());
    }
    return v;
  };
  auto ring_notes = [&] {
    std::vector<std::string> notes;
    const absl::StatusOr<v1::GetJobHistoryResponse> history = coordinator_->GetJobHistory("hybrid");
    for (const auto& e : history->events()) {
      if (absl::StrContains(e.reason(), "data-center ring generation")) notes.push_back(e.reason());
    }
    return notes;
  };
  // Both in the ring, and a round closed with it.
  ASSERT_TRUE(DriveUntil(all_but(""), [&] {
    const std::vector<std::string> notes = ring_notes();
    return Job("hybrid").round() >= 2 && !notes.empty() &&
           absl::StrContains(notes.back(), "dc-a") && absl::StrContains(notes.back(), "dc-b");
  })) << Job("hybrid").reason();
  bool ring_accepted = false;
  const absl::StatusOr<v1::GetJobHistoryResponse> early = coordinator_->GetJobHistory("hybrid");
  for (const v1::RoundInfo& r : early->rounds()) {
    for (const std::string& a : r.accepted()) {
      ring_accepted |= a == "datacenter-ring";
      EXPECT_NE(a, "dc-a");  // never as replicas of their own
      EXPECT_NE(a, "dc-b");
    }
  }
  EXPECT_TRUE(ring_accepted);
  // The ring's rank 0 (first in the note's member list) falls silent.
  const std::string note = ring_notes().back();
  ASSERT_TRUE(absl::StrContains(note, " on dc-a, dc-b") ||
              absl::StrContains(note, " on dc-b, dc-a"))
      << note;
  const std::string lost = absl::StrContains(note, " on dc-a,") ? "dc-a" : "dc-b";
  const std::string survivor = lost == "dc-a" ? "dc-b" : "dc-a";
  const int64_t round_at_loss = Job("hybrid").round();
  ASSERT_TRUE(DriveUntil(all_but(lost), [&] {
    clock_.Advance(absl::Seconds(2));  // the lease (6 s) of the silent one runs out
    return WorkerNamed(lost).id().empty();
  }));
  ASSERT_TRUE(DriveUntil(all_but(lost), [&] {
    const v1::JobState s = Job("hybrid").state();
    return s == v1::JOB_STATE_SUCCEEDED || s == v1::JOB_STATE_FAILED;
  })) << Job("hybrid").reason();
  const v1::JobStatus job = Job("hybrid");
  ASSERT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED) << job.reason();
  EXPECT_EQ(job.round(), 12);
  EXPECT_GT(job.progress().test_accuracy(), 0.6f) << job.reason();  // 4 classes: chance is 0.25
  const std::vector<std::string> notes = ring_notes();
  EXPECT_TRUE(absl::StrContains(notes.back(), " on " + survivor + " (one replica")) << notes.back();
  EXPECT_TRUE(absl::StrContains(notes.back(), lost + " was fenced")) << notes.back();
  // The survivor's ring took part in a round after the loss.
  bool ring_after_loss = false;
  const absl::StatusOr<v1::GetJobHistoryResponse> late = coordinator_->GetJobHistory("hybrid");
  for (const v1::RoundInfo& r : late->rounds()) {
    if (r.round() <= round_at_loss) continue;
    for (const std::string& a : r.accepted()) ring_after_loss |= a == "datacenter-ring";
  }
  EXPECT_TRUE(ring_after_loss);
  EXPECT_TRUE(DriveUntilNoJob(all_but(lost)));
}

}  // namespace
}  // namespace nightshift
