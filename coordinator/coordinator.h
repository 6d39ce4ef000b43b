// Coordinator: the cluster's logic behind the Coordinator gRPC service and
// the HTTP status API, with no RPC types in it (the service and the HTTP
// server translate), so it is tested in-process with an injected clock.
//
// Job lifecycle: QUEUED -> RUNNING -> SUCCEEDED | FAILED | CANCELLED; every
// change is time-stamped in the job's history with a reason.
//
// Worker lease protocol (workers dial out; the coordinator never dials):
//  1. Register(name, pool, cores, memory, rate, peer address, host id,
//     whether it drains) -> worker id,
//     lease TTL and heartbeat interval. A name registered again replaces
//     its old entry (a restarted daemon).
//  2. Heartbeat(worker id, current job) renews the lease; its reply carries
//     the directives queued for the worker: assign (job, generation, rank,
//     world size, peer addresses, shard weights), cancel, drain. Unknown
//     worker ids get NOT_FOUND: register again.
//  3. A worker whose lease runs out (no heartbeat for the TTL) is LOST; the
//     job it ran fails with a reason naming it, and the job's other workers
//     are told to cancel.
//  4. A worker is free again once its heartbeat no longer reports the job
//     it was given (it finished, failed or cancelled it).
// Scheduling runs on every heartbeat and Tick(): PlanPlacements over the
// queued jobs and free workers; each start bumps the job's generation.
// Training results: rank 0 reports progress (ReportProgress), uploads
// checkpoints and the final model, then reports `finished`; any rank
// reporting an error fails the job with the worker's name in the reason.
// Generations (elastic recovery):
//  1. A rank whose group lost peers reports them (lost_ranks) with its
//     last committed step: the survivors' report.
//  2. The first such report of the current generation fences the lost
//     workers (their leases are revoked: a live one gets NOT_FOUND, stops
//     and registers anew) and, if
//     at least min_workers survive, forms generation + 1 of the survivors
//     in their old rank order, with start_step = the committed step; the
//     job stays RUNNING and its history records who was lost, where, and
//     from which step it resumes. Reports of the old generation are
//     ignored from then on. Too few survivors: the job fails, naming the
//     lost workers.
//
// Thread-safe: one mutex over the in-memory state; the store is the
// source of truth for jobs.
#ifndef NIGHTSHIFT_COORDINATOR_COORDINATOR_H_
#define NIGHTSHIFT_COORDINATOR_COORDINATOR_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "base/clock.h"
#include "coordinator/job_store.h"
#include "nightshift/v1/coordinator.pb.h"

namespace nightshift::coordinator {

struct CoordinatorOptions {
  std::string state_dir;  // checkpoints go under state_dir/checkpoints/<job>
  absl::Duration lease_ttl = absl::Seconds(6);
  absl::Duration heartbeat_interval = absl::Seconds(1);
};

// Counters for /metrics.
struct CoordinatorMetrics {
  int64_t jobs_submitted = 0;
  int64_t jobs_succeeded = 0;
  int64_t jobs_failed = 0;
  int64_t jobs_cancelled = 0;
  int64_t heartbeats = 0;
  int64_t leases_expired = 0;
  int64_t recoveries = 0;    // generations formed after a lost worker
  int64_t steps_redone = 0;  // steps trained again from a commit point
};

class Coordinator {
 public:
  // Jobs RUNNING in the store (the coordinator stopped under them) go back
  // to QUEUED: their workers are gone with the old process's leases.
  static absl::StatusOr<std::unique_ptr<Coordinator>> Create(JobStore* store, Clock* clock,
                                                             CoordinatorOptions options);

  absl::StatusOr<v1::JobStatus> SubmitJob(const v1::SubmitJobRequest& request);
  absl::StatusOr<v1::JobStatus> GetJob(const std::string& id);
  absl::StatusOr<std::vector<v1::JobStatus>> ListJobs();
  absl::StatusOr<v1::JobStatus> CancelJob(const std::string& id, const std::string& reason);
  absl::StatusOr<v1::GetJobHistoryResponse> GetJobHistory(const std::string& id);
  std::vector<v1::WorkerInfo> ListWorkers();
  // Stops giving jobs to worker `worker_id`; its next heartbeat tells it to
  // drain (it finishes the job it runs and takes no other). NOT_FOUND for
  // an unknown worker.
  absl::StatusOr<v1::WorkerInfo> DrainWorker(const std::string& worker_id);

  absl::StatusOr<v1::RegisterResponse> Register(const v1::RegisterRequest& request);
  absl::StatusOr<v1::HeartbeatResponse> Heartbeat(const v1::HeartbeatRequest& request);
  absl::Status ReportProgress(const v1::ReportProgressRequest& request);
  // Stores a checkpoint (or, with `final`, the exported model) of a job.
  absl::StatusOr<v1::CheckpointInfo> StoreCheckpoint(const std::string& worker_id,
                                                     const std::string& job_id, int64_t step,
                                                     bool final, const std::string& bytes);
  // Path of a finished job's model on this machine.
  absl::StatusOr<std::string> ModelPath(const std::string& job_id);

  // Expires leases and schedules; called periodically and on heartbeats.
  void Tick();
  CoordinatorMetrics metrics();

 private:
  struct Worker {
    v1::WorkerInfo info;
    absl::Time lease_expiry;
    std::string assigned_job;  // given to it and not yet released
    int rank = -1;
    bool draining = false;
    std::vector<v1::Directive> pending;
  };

  Coordinator(JobStore* store, Clock* clock, CoordinatorOptions options)
      : store_(store), clock_(clock), options_(std::move(options)) {}

  absl::Status Transition(v1::JobStatus& job, v1::JobState state, const std::string& reason)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ExpireLeasesLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ScheduleLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The job's next generation on workers `ids` (rank order) from
  // `start_step`: bumps the generation, queues the assignments; returns
  // the workers' names.
  std::vector<std::string> AssignGenerationLocked(v1::JobStatus& job,
                                                  const std::vector<std::string>& ids,
                                                  int64_t start_step)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Generations step 2: on a survivors' report, fences the lost workers
  // and forms the next generation of the survivors, resuming from their
  // committed step. False (nothing changed) when too few survive.
  bool RegroupLocked(v1::JobStatus& job, const v1::ReportProgressRequest& report)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Tells every worker of `job_id` to stop it.
  void CancelWorkersLocked(const std::string& job_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FailJobLocked(const std::string& job_id, const std::string& reason)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  google::protobuf::Timestamp NowProto();

  JobStore* store_;
  Clock* clock_;
  CoordinatorOptions options_;
  absl::Mutex mu_;
  std::map<std::string, Worker> workers_ ABSL_GUARDED_BY(mu_);  // by id
  int64_t next_worker_ ABSL_GUARDED_BY(mu_) = 1;
  CoordinatorMetrics metrics_ ABSL_GUARDED_BY(mu_);
};

}  // namespace nightshift::coordinator

#endif  // NIGHTSHIFT_COORDINATOR_COORDINATOR_H_
