// WorkerDaemon: the `nightshift-worker` process's life — hold a lease with
// the coordinator and run the jobs it is handed. It talks to the
// coordinator only through a CoordinatorClient (coordinator_client.h) and
// gets each job's transport from GroupTransports (group_transports.h), so
// the whole daemon runs in a test with an in-process coordinator, a fake
// clock and in-process transports.
//
// The lease protocol, one round per Tick() (Run() paces the rounds):
//  1. Not registered: measure a compute rate once (samples/s of a fixed MLP
//     step, unless WorkerOptions::compute_rate gives one) and Register with
//     name, pool, cores, memory, rate, and — with GroupTransports — the
//     Peer address and host identity. The reply gives the worker id and
//     the heartbeat interval.
//  2. Registered: Heartbeat with the job running here (id and generation)
//     and the versions held of the models followed; newer versions in the
//     reply go to the model follower (WorkerOptions::on_model_updates).
//     NOT_FOUND means the lease is lost (it ran out, or the coordinator
//     restarted and forgot us): the daemon registers again at once, naming
//     the job it runs (id, generation, rank). The job goes on if the
//     coordinator re-adopts it (a restarted coordinator does); otherwise
//     it was fenced out, and the job is cancelled here.
//     Rounds are paced by the interval the coordinator gave this worker's
//     pool, jittered ±10%; an edge agent's eligibility flip starts one at
//     once.
//  3. Unreachable (UNAVAILABLE, DEADLINE_EXCEEDED): nothing changes; the
//     next round, after retry_interval, tries again. A running job goes
//     on — the ring does not need the coordinator — and its reports wait
//     in a bounded queue (kMaxQueuedReports; the oldest progress goes
//     first; a progress report replaces the plain progress report still
//     waiting before it), retried until they land — also when the
//     coordinator rate-limits them (RESOURCE_EXHAUSTED). Any other error from Register is a
//     refusal: Tick returns it and Run ends.
//  4. Directives in the heartbeat reply, each applied once: the next
//     heartbeat says the highest sequence number applied, and the
//     coordinator resends what a lost reply carried. `assign` starts the job on the job
//     thread, and the job is current before the next heartbeat, so the
//     coordinator never sees this worker idle while it starts; `cancel`
//     sets the job's cancel flag (the trainer stops before its next step)
//     and interrupts its communicator, so a rank blocked in a collective
//     stops at once; `drain` stops taking jobs; `yield` asks the job's
//     trainer to stop at its next commit point (Trainer step 9) and hold
//     the model.
//  5. A job: transport (GroupTransports) -> Communicator -> Trainer
//     (data-parallel). Rank 0 reports progress and evaluations, uploads
//     each checkpoint and, at the end, the model, then reports `finished`.
//     Any failure is reported as the job's error; a cancelled job reports
//     nothing.
//  6. Generations: an `assign` of the running job with a higher generation
//     is its next generation: the trainer yields at its next commit point
//     (or at once, with abandon_previous: a fenced peer means that
//     generation cannot commit again), joins the new group, and resumes
//     from a commit held in memory (Trainer::Regroup). A first assignment
//     with resume_in_memory makes this worker a joiner: its trainer
//     receives the model from the group in Regroup. A run whose group
//     failed (UNAVAILABLE, DEADLINE_EXCEEDED, ABORTED: a peer died, stalled
//     or gave up) reports it at once with the peers the census found
//     silent and its last committed step (the survivors' report), and
//     waits for the next generation; the coordinator fails the job instead
//     when nothing explains the failure. A yielded run waits for it too — unless this
//     worker drains: then it leaves the job, quietly. The wait is bounded
//     by the spec's wait_for_workers_seconds plus kNextGenerationMargin;
//     the coordinator cancels sooner if the job fails.
//  7. Leaving (SIGTERM): Leave() drains this worker through the
//     coordinator; Run returns once no job runs here, or at the deadline
//     (the job is then cancelled here).
// One job at a time.
//
// Threads:
//  - the control thread (the caller of Run or Tick) alone touches
//    registration (rate_, heartbeat_interval_, draining_) and starts job
//    threads (job_thread_);
//  - the job thread runs RunJob: it registers its communicator in the
//    current job (for cancels to interrupt) and, at its end, clears it;
//  - the reporter thread (ReportLater) sends queued reports.
// Fields more than one of them touch are ABSL_GUARDED_BY mu_ (worker id,
// current job) or report_mu_ (the report queue). Lock order: leave_mu_
// before mu_; never mu_ and report_mu_ together.
// Stop() may be called from any thread (not from a signal handler:
// base/stop_signals.h turns signals into a call from a thread).
#ifndef NIGHTSHIFT_WORKER_WORKER_DAEMON_H_
#define NIGHTSHIFT_WORKER_WORKER_DAEMON_H_

#include <atomic>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/random/random.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "base/clock.h"
#include "collective/communicator.h"
#include "nightshift/v1/coordinator.pb.h"
#include "worker/coordinator_client.h"
#include "worker/group_transports.h"

namespace nightshift {

class ReplicaTrainer;  // worker/edge/replica_trainer.h
struct RoundOutcome;   // worker/edge/round_client.h

struct WorkerOptions {
  v1::WorkerPool pool = v1::WORKER_POOL_DATACENTER;
  int threads = 0;  // compute threads; 0: one per core
  std::string name;
  std::string scratch_dir;  // per-job folders for checkpoints
  absl::Duration collective_timeout = absl::Seconds(30);
  // Samples/s to register with; 0: measure (about 0.2 s of compute).
  double compute_rate = 0;
  // Between attempts to reach an unreachable coordinator.
  absl::Duration retry_interval = absl::Seconds(1);
  // Benchmarks only (nightshift-worker --simulated_slowdown): act this
  // many times slower, to stand for a slower machine. 1: off.
  double simulated_slowdown = 1;
  // Edge agents: the idle policy's current answer (worker/edge/
  // eligibility_monitor.h), sent with every heartbeat. Unset: none sent.
  std::function<v1::Eligibility()> eligibility;
  // Edge agents: bytes per fetch and push call of a round; a cut link
  // costs at most one such chunk (worker/edge/round_client.h).
  int64_t round_chunk_bytes = 1 << 20;
  // Published models this worker follows (worker/edge/model_follower.h):
  // the versions held, named in every heartbeat, and where the reply's
  // newer versions go. Unset: none followed.
  std::function<std::vector<v1::FollowedModel>()> followed_models;
  std::function<void(const google::protobuf::RepeatedPtrField<v1::ModelVersion>&)> on_model_updates;
};

class WorkerDaemon {
 public:
  // `coordinator` and `clock` must outlive the daemon; so must
  // `transports`, which is null for edge workers (they join no ring).
  WorkerDaemon(WorkerOptions options, CoordinatorClient* coordinator, GroupTransports* transports,
               Clock* clock);
  // Cancels the running job and waits for it and for queued reports.
  ~WorkerDaemon();
  WorkerDaemon(const WorkerDaemon&) = delete;
  WorkerDaemon& operator=(const WorkerDaemon&) = delete;

  // Rounds of the protocol until Stop(), or until a refusal (returned).
  absl::Status Run();
  void Stop() {
    if (!stop_.HasBeenNotified()) stop_.Notify();
    Wake();
  }
  // Step 7: drain, and stop once no job runs here or after `grace`. Any
  // thread (again: no signal handler).
  void Leave(absl::Duration grace);
  // Starts the next round now instead of after the heartbeat interval
  // (survivors of a lost peer: their next generation comes in its reply).
  void Wake() {
    absl::MutexLock lock(&wake_mu_);
    wake_ = true;
  }
  // One round (steps 1–4 above). OK also when the coordinator was
  // unreachable; the refusal of a registration otherwise.
  absl::Status Tick();

  // Edge agents: the idle policy's answer flipped (EligibilityMonitor's
  // on_change, any thread). Ineligible while a replica computes: its round
  // stops at the next micro-batch (a preemption, counted in heartbeats).
  void EligibilityChanged(bool eligible);
  int64_t preemptions() const { return preemptions_.load(); }

  // What the daemon stands at, for tests and logs.
  std::string worker_id() const;
  std::string current_job() const;
  bool draining() const { return draining_; }
  // Waits (real time) until no job runs here; false at the deadline.
  bool AwaitNoJob(absl::Time deadline) const;

 private:
  struct Job {
    std::string id;
    int64_t generation = 0;
    int rank = -1;
    std::string worker_id;  // the id it is held under (changes on re-adoption)
    std::shared_ptr<std::atomic<bool>> cancel;
    std::shared_ptr<std::atomic<bool>> yield;  // Trainer step 9
    bool ready = false;                        // its trainer is built (HeartbeatRequest.job_ready)
    // While the job's group exists: interrupted on cancel, so that a rank
    // blocked in a collective (on a peer that never started) stops too.
    collective::Communicator* communicator = nullptr;
    // The coordinator's next generation of this job, for its thread.
    std::optional<v1::Assignment> next_generation;
  };
  absl::Status RegisterOnce();
  void Apply(const v1::Directive& directive);
  // Sets the job's cancel flag and interrupts its communicator.
  void CancelLocked(const std::string& why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CancelCurrentJob(const std::string& why);
  void StartJob(const v1::Assignment& assignment);
  void RunJob(v1::Assignment assignment, std::string worker_id,
              std::shared_ptr<std::atomic<bool>> cancelled);
  // Waits (real time) for the job's next generation after `previous`;
  // takes it and lowers the yield flag.
  absl::StatusOr<v1::Assignment> AwaitNextGeneration(const v1::Assignment& previous,
                                                     const std::atomic<bool>* cancelled);
  bool HasNextGeneration();
  // On failure, fills `failure` with the survivors' report: the ranks
  // that fell silent and this rank's last committed step; sets
  // `*reported` when it has told the coordinator already.
  // A diloco job (sync.diloco; replica_job.cc): rounds over RoundClient
  // while eligible, until the job ends here or is cancelled.
  absl::Status RunReplica(const v1::Assignment& a, const std::string& worker_id,
                          const std::atomic<bool>* cancelled);
  // A hybrid job's data-center ring member (ring_replica_job.cc): an
  // assignment of a diloco job with peers.
  // Keeps `failure`'s generation at the current one's.
  absl::Status RunRingReplica(const v1::Assignment& first, const std::string& worker_id,
                              const std::atomic<bool>* cancelled,
                              v1::ReportProgressRequest* failure);
  // The ring's rank 0: rounds until the job ends (OK), a next generation
  // comes (ABORTED), or the ring or the job fails.
  absl::Status DriveRing(const v1::Assignment& a, const std::string& worker_id,
                         ReplicaTrainer* trainer, const std::atomic<bool>* cancelled);
  // A replica's report of its evaluation of the final parameters.
  void ReportEvaluation(const v1::Assignment& a, const std::string& worker_id,
                        const RoundOutcome& out, const std::atomic<bool>* cancelled);
  // Clears current_.communicator as it goes: declared after a job's
  // communicators, it goes before them, so a cancel never interrupts one
  // that is gone.
  struct CommunicatorUnregister {
    WorkerDaemon* daemon;
    ~CommunicatorUnregister();
  };
  // Waits (real time) up to `d`; true when a next generation came or the
  // job was cancelled.
  bool AwaitRingChange(absl::Duration d, const std::atomic<bool>* cancelled);
  bool Eligible() const;
  // Waits (real time) up to `d`, less when eligibility flips, the daemon
  // registers again (true: woken) or stops; a cancel is seen within
  // kReplicaPoll.
  bool WaitForEligibility(absl::Duration d, const std::atomic<bool>* cancelled);
  absl::Status TrainJob(const v1::Assignment& a, const std::string& worker_id,
                        const std::atomic<bool>* cancelled, v1::ReportProgressRequest* failure,
                        bool* reported);
  // Step 3: calls `call` until it lands, with backoff (0.1 s doubling to
  // 2 s) while the coordinator is unreachable — and, until `unknown_until`,
  // while it does not know this worker yet — unless the daemon stops or
  // `cancelled` is set. Returns the last status.
  absl::Status CallUntilItLands(const std::function<absl::Status()>& call,
                                const std::atomic<bool>* cancelled, absl::Time unknown_until);
  // Sends at once (blocking), for the final and error reports; retries
  // (CallUntilItLands) while the coordinator is away, until stop or cancel.
  void Report(v1::ReportProgressRequest request, const std::atomic<bool>* cancelled = nullptr);
  // The worker id job `job_id` is held under now, or `fallback`.
  std::string JobWorkerId(const std::string& job_id, const std::string& fallback) const;
  // Queues for the reporter thread, so the training loop never waits on
  // the coordinator.
  void ReportLater(v1::ReportProgressRequest request);
  void ReportQueued();
  void WaitForQueuedReports();

  const WorkerOptions options_;
  CoordinatorClient* const coordinator_;
  GroupTransports* const transports_;
  Clock* const clock_;
  absl::Notification stop_;

  // Control thread only.
  double rate_ = 0;  // samples/s registered with
  absl::Duration heartbeat_interval_ = absl::Seconds(1);
  absl::BitGen jitter_rng_;
  bool unreachable_ = false;  // the last round could not reach the coordinator
  std::atomic<bool> draining_{false};
  std::thread job_thread_;
  bool drain_sent_ = false;  // step 7: the coordinator knows

  // Step 7 (set by Leave from any thread).
  absl::Mutex leave_mu_;
  std::optional<absl::Time> leave_deadline_ ABSL_GUARDED_BY(leave_mu_);

  mutable absl::Mutex mu_;
  std::string worker_id_ ABSL_GUARDED_BY(mu_);  // empty: not registered
  // The highest Directive.sequence applied under worker_id_ (step 4).
  int64_t directives_applied_ ABSL_GUARDED_BY(mu_) = 0;
  Job current_ ABSL_GUARDED_BY(mu_);  // id empty: none

  // Replicas (RunReplica): the round's stop flag, set on preemption and
  // cancel; whether a round computes now; preemptions since start.
  std::atomic<bool> compute_stop_{false};
  std::atomic<bool> computing_{false};
  std::atomic<int64_t> preemptions_{0};
  absl::Mutex eligibility_mu_;
  // Counts what a replica waiting between rounds should look at: an
  // eligibility flip, or a registration (the coordinator is back after a
  // restart or a cut: its round calls may go through again at once).
  int64_t replica_wakeups_ ABSL_GUARDED_BY(eligibility_mu_) = 0;

  absl::Mutex wake_mu_;
  bool wake_ ABSL_GUARDED_BY(wake_mu_) = false;

  absl::Mutex report_mu_;
  std::deque<v1::ReportProgressRequest> reports_ ABSL_GUARDED_BY(report_mu_);
  bool reporting_ ABSL_GUARDED_BY(report_mu_) = false;
  std::thread reporter_ ABSL_GUARDED_BY(report_mu_);
};

}  // namespace nightshift

#endif  // NIGHTSHIFT_WORKER_WORKER_DAEMON_H_
