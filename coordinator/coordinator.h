// Coordinator: the cluster's logic behind the Coordinator gRPC service and
// the HTTP status API, with no RPC types in it (the service and the HTTP
// server translate), so it is tested in-process with an injected clock.
//
// Job lifecycle: QUEUED -> RUNNING <-> WAITING -> SUCCEEDED | FAILED |
// CANCELLED (and RUNNING -> QUEUED when a restarted coordinator gets none
// of its workers back); every change is time-stamped in the job's history
// with a reason.
//
// Worker lease protocol (workers dial out; the coordinator never dials):
//  1. Register(name, pool, cores, memory, rate, peer address, host id,
//     whether it drains, and the job it runs if any) -> a random worker
//     id (unguessable: 64 bits from the CSPRNG), lease TTL and heartbeat
//     interval, and on enrollment (a join token) the worker's own
//     credential, bound to its name. A name registered again
//     replaces its old entry (a restarted daemon, or one whose lease ran
//     out). A restarted coordinator gets its running jobs back this way:
//     within a lease TTL of its start, a worker that says it runs job J at
//     generation g and rank r is re-adopted into J (job_adopted) when g is
//     J's stored generation (or the one before: a join's assignments were
//     held), r is its rank there, and no other holds it. When all are
//     back with mixed generations, they regroup in a new one. A worker
//     fenced by this coordinator is never re-adopted.
//  2. Heartbeat(worker id, current job and generation) renews the lease;
//     its reply carries the directives queued for the worker: assign (job,
//     generation, rank, world size, peers, shard weights), cancel, drain,
//     yield. Delivery is at least once: each directive is numbered when
//     first sent and sent again in every reply until a heartbeat says it
//     was applied (directives_applied), so a reply lost on a cut link
//     loses nothing; the worker applies each number once. Until then an
//     assignment counts as not yet received (3. waits for it). Unknown
//     worker ids get NOT_FOUND: register again.
//  3. A worker is free again once its heartbeat no longer reports the job
//     it was given (it finished, failed or cancelled it).
// Scheduling runs on every heartbeat and Tick(): PlanPlacements over the
// queued jobs and free workers (each start bumps the job's generation; a
// job queued again with uploaded checkpoints starts from the latest),
// then joins (below). Training results: rank 0 reports progress, uploads
// checkpoints and the final model, then reports `finished`; a rank
// reporting an error that is not a survivors' report fails the job with
// the worker's name in the reason.
//
// Generations (elastic membership). A started job (RUNNING or WAITING)
// has members: the workers assigned to it, by rank. Every change of
// members forms the next generation (NextGenerationLocked): the members
// kept, in their old rank order, then free workers up to max_workers;
// the assignments say resume_in_memory, so members stop the old
// generation at a commit point and all resume from one commit held in
// memory (joiners receive it from a member over the Peer service).
// What changes the members:
//  - a survivors' report (ReportProgress with lost_ranks) of the current
//    generation: the lost ranks are fenced (lease revoked: a live one gets
//    NOT_FOUND, is refused re-adoption, and stops) and the rest go on;
//  - a member's lease running out: fenced the same way; the others are
//    told to abandon the old generation (it cannot reach a commit);
//  - DrainWorker on a member of a job with other members: it is told to
//    drain (it yields at the next commit point and leaves), the others go
//    on without it — nothing is redone;
//  - a free worker while a RUNNING job has fewer than max_workers and its
//    current generation is settled (every member has heartbeated it): it
//    joins. The members' assignments are held until every joiner says
//    job_ready (its data set is loaded), so they train on meanwhile, and
//    stop only to hand over the model;
//  - after a restart, a job's members that do not re-register within a
//    lease TTL: fenced (with none back, the job is queued again).
// Too few members (below min_workers, at least one): the job is WAITING —
// the members are told to yield and hold the model — until enough free
// workers join, or it fails at its wait deadline naming every worker it
// lost. No member left: the job fails, naming them. Errors of an older
// generation, of non-members, and of members while the job waits are
// ignored (the next generation or the deadline decides); progress and
// `finished` of an older generation count from a member (or the worker
// that drained from it: the job may have ended as it left). A joiner that
// fails before it is ready is fenced and the members go on without it.
//
// DiLoCo jobs (sync.diloco; diloco_jobs.cc) have no generations and no
// ring: each worker given the job is a replica that takes part in rounds
// over its own outbound connection (coordinator/rounds/round_keeper.h has
// the round protocol; the keeper holds the outer parameters).
//  - Start: a queued diloco job starts at once, with no worker needed
//    (PlanPlacements never sees it), from its initial parameters; RUNNING.
//  - Replicas: a free worker of the job's pools (an edge agent only while
//    it reports itself eligible) is assigned the job — rank = its sticky
//    shard, world_size = the shard count — up to max_workers replicas. It
//    keeps the assignment while its vehicle is ineligible (it just joins
//    no round) and leaves by ending the job on its side (its heartbeat no
//    longer names it), by a drain (cancelled at once: a partial round is
//    only withdrawn), by an error it reports (the job goes on without it;
//    it fails when selected_per_round replicas failed with no round
//    closing in between), or by losing its lease (its place in the open
//    round is freed). A replica that re-registers naming the job is
//    taken back, with its shard and its place in the open round.
//  - Rounds close on a complete push or Tick, at quorum or deadline:
//    the round checkpoint is written (state_dir/checkpoints/<job>/
//    round-<r>.safetensors, the two newest kept), then the round's row
//    and the job's round and progress go into the store — that update is
//    the commit: a restarted coordinator goes on from the checkpoint of
//    the job's stored round, losing at most the open round, and the
//    replicas re-register with it.
//  - Hybrid jobs (pools hold DATACENTER and EDGE; datacenter_ring.cc):
//    the data-center workers are not replicas each but one ring that is
//    one replica (ReplicaTrainer's group mode), under the name
//    kRingReplica with a sticky shard of its own; it counts as one toward
//    max_workers. Free data-center workers join it, and every change of
//    its members (a join; a member fenced, drained, failed or done) is
//    the job's next generation: an Assignment with rank, world_size,
//    peers, group_key, generation and replica_shard,
//    abandon_previous set, so the old ring stops at once; its part in the
//    open round is forgotten (so a join waits until the ring has pushed or
//    withdrawn; a loss cannot wait). Only ring rank 0 joins, fetches and
//    pushes.
//    Errors of an older ring generation are ignored; a survivor's report
//    with lost_ranks fences those members. A ring member is not
//    re-adopted after a restart: it becomes free and joins a new ring.
//  - End: after the last round the final parameters are the job's model
//    (model.safetensors); the next replica to join is asked to evaluate
//    them (RoundTicket.evaluate) and its report (evaluated_version) ends
//    the job SUCCEEDED with the test accuracy. With no report within a
//    round deadline, it ends SUCCEEDED without one, saying so.
//
// Published models (model_registry.h has the protocol): PublishModel
// makes a succeeded job's model the next version of a name; a job whose
// spec says publish_as is queued when it succeeds (and, after a restart,
// if it was not published under that name yet) and published by the next
// PublishQueued() — its own thread in nightshift-coordinator, so a large
// model's read, hash and fsync never hold up Tick — noted in its history
// either way. Heartbeats that name followed models are answered with
// their newer versions.
//
// Thread-safe: one mutex over the in-memory state; the store is the
// source of truth for jobs.
#ifndef NIGHTSHIFT_COORDINATOR_COORDINATOR_H_
#define NIGHTSHIFT_COORDINATOR_COORDINATOR_H_

#include <map>
#include <memory>
#include <queue>
#include <set>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "base/clock.h"
#include "coordinator/job_store.h"
#include "coordinator/model_registry.h"
#include "coordinator/rounds/round_keeper.h"
#include "nightshift/v1/coordinator.pb.h"
#include "security/tokens.h"
#include "spec/defaults.h"

namespace nightshift::coordinator {

// Heartbeat classes, by pool: data-center workers beat often (a lost ring
// member is fenced within seconds); vehicles seldom (a fleet of 100,000
// at 10 s is 10,000 heartbeats a second; an eligibility flip is sent at
// once, not at the next beat), with a lease of several beats.
struct CoordinatorOptions {
  std::string state_dir;  // checkpoints go under state_dir/checkpoints/<job>
  absl::Duration lease_ttl = absl::Seconds(6);
  absl::Duration heartbeat_interval = absl::Milliseconds(500);
  absl::Duration edge_lease_ttl = absl::Seconds(35);
  absl::Duration edge_heartbeat_interval = absl::Seconds(10);
};

inline constexpr int kDefaultWorkerPageSize = 1000;
inline constexpr int kMaxWorkerPageSize = 10000;

// Counters for /metrics.
struct CoordinatorMetrics {
  int64_t jobs_submitted = 0;
  int64_t jobs_succeeded = 0;
  int64_t jobs_failed = 0;
  int64_t jobs_cancelled = 0;
  int64_t heartbeats = 0;
  int64_t leases_expired = 0;
  int64_t generations = 0;       // generations formed (starts and changes)
  int64_t recoveries = 0;        // generations formed after a lost worker
  int64_t steps_redone = 0;      // steps trained again from a commit point
  int64_t rounds_closed = 0;     // DiLoCo rounds
  int64_t updates_accepted = 0;  // replica updates a closed round took
  int64_t updates_refused = 0;   // ... and refused (stale, broken, screened)
  int64_t models_published = 0;  // model versions published
  int64_t schedules = 0;         // scheduling passes (Tick, and heartbeats after a change)
};

class Coordinator {
 public:
  // Jobs started in the store (the coordinator stopped under them) stay
  // started: their workers go on training and re-register with them
  // within a lease TTL (see Register); those that do not are fenced.
  static absl::StatusOr<std::unique_ptr<Coordinator>> Create(JobStore* store, Clock* clock,
                                                             CoordinatorOptions options);

  absl::StatusOr<v1::JobStatus> SubmitJob(const v1::SubmitJobRequest& request);
  absl::StatusOr<v1::JobStatus> GetJob(const std::string& id);
  // Reads of jobs come from the store's memory: never SQLite, never the
  // coordinator's lock (status reads under load do not delay heartbeats).
  absl::StatusOr<std::vector<v1::JobStatus>> ListJobs();
  int64_t jobs_version() const { return store_->jobs_version(); }
  std::vector<JobStore::VersionedJob> JobsSnapshot() { return store_->Snapshot(); }
  absl::StatusOr<v1::JobStatus> CancelJob(const std::string& id, const std::string& reason);
  absl::StatusOr<v1::GetJobHistoryResponse> GetJobHistory(const std::string& id);
  // One page of workers (ListWorkersRequest's rules); INVALID_ARGUMENT for
  // a page size out of range. Holds the lock for the page's length only.
  absl::StatusOr<v1::ListWorkersResponse> ListWorkers(const v1::ListWorkersRequest& request);
  // Every worker (small clusters and tests; a fleet pages).
  std::vector<v1::WorkerInfo> ListWorkers();
  // The fleet in numbers, without copying it: workers by pool and state,
  // edge agents eligible, their preemptions.
  struct WorkerCounts {
    std::map<std::pair<v1::WorkerPool, v1::WorkerState>, int64_t> by_pool_and_state;
    int64_t edge_eligible = 0;
    int64_t edge_preemptions = 0;
    int64_t total = 0;
  };
  WorkerCounts CountWorkers();
  // Stops giving jobs to the worker (by id or name); its next heartbeat
  // tells it to drain. With other members in its job, the job goes on
  // without it from the next commit point; alone, it finishes its job.
  // NOT_FOUND for an unknown worker.
  absl::StatusOr<v1::WorkerInfo> DrainWorker(const std::string& worker);

  // The worker calls. `caller` is who presented the call's token
  // (Authenticate): Register needs a join token for a name not enrolled
  // (the reply carries the new credential bound to it) or the name's own
  // credential; the others PERMISSION_DENIED unless the caller's
  // credential is bound to the worker the request names.
  absl::StatusOr<v1::RegisterResponse> Register(const v1::RegisterRequest& request,
                                                const security::Principal& caller);
  absl::StatusOr<v1::HeartbeatResponse> Heartbeat(const v1::HeartbeatRequest& request,
                                                  const security::Principal& caller);
  absl::Status ReportProgress(const v1::ReportProgressRequest& request,
                              const security::Principal& caller);
  // Stores a checkpoint (or, with `final`, the exported model) of a job.
  absl::StatusOr<v1::CheckpointInfo> StoreCheckpoint(const std::string& worker_id,
                                                     const std::string& job_id, int64_t step,
                                                     bool final, const std::string& bytes,
                                                     const security::Principal& caller);
  // Whether `caller` may download the job's model or checkpoints: viewers
  // and admins always, a worker only of the job it runs.
  absl::Status MayDownload(const security::Principal& caller, const std::string& job_id);
  // Whether `caller` may drain `worker` (id or name): admins any, a worker
  // itself (it leaves on SIGTERM).
  absl::Status MayDrain(const security::Principal& caller, const std::string& worker);

  // Tokens (identity.cc): kept hashed, in the store and in memory.
  // Who presents `token`; UNAUTHENTICATED if no one. Never takes the
  // coordinator's lock.
  absl::StatusOr<security::Principal> Authenticate(absl::string_view token) const;
  absl::StatusOr<v1::CreateTokenResponse> CreateToken(const v1::CreateTokenRequest& request);
  absl::StatusOr<std::vector<v1::TokenInfo>> ListTokens();
  // By TokenInfo.id; a revoked worker credential frees its name.
  absl::Status RevokeToken(const std::string& id);
  // First start: with no admin token yet, a new one (to write where the
  // operator finds it); empty when one exists.
  absl::StatusOr<std::string> BootstrapAdminToken();
  // Path of a finished job's model on this machine.
  absl::StatusOr<std::string> ModelPath(const std::string& job_id);
  // Path of the job's uploaded checkpoint before `step`.
  absl::StatusOr<std::string> CheckpointPath(const std::string& job_id, int64_t step);

  // Published models (model_registry.h): NOT_FOUND for an unknown job;
  // FAILED_PRECONDITION for one that did not succeed or has no model.
  absl::StatusOr<v1::ModelVersion> PublishModel(const v1::PublishModelRequest& request);
  std::vector<v1::ModelVersion> ListModels(const std::string& name) const {
    return models_->List(name);
  }
  absl::StatusOr<v1::FetchModelResponse> FetchModel(const v1::FetchModelRequest& request) const {
    return models_->Read(request);
  }
  // Publishes the queued jobs (spec.publish_as) and notes the outcome in
  // each job's history; a failure to write is queued again. Without mu_
  // (a publish reads, hashes and writes a file): call it from a thread of
  // its own.
  void PublishQueued() ABSL_LOCKS_EXCLUDED(mu_);

  // DiLoCo rounds (round_keeper.h's protocol): PERMISSION_DENIED unless
  // the caller is the worker named; FAILED_PRECONDITION unless it is a
  // replica of the job.
  absl::StatusOr<v1::RoundTicket> JoinRound(const v1::JoinRoundRequest& request,
                                            const security::Principal& caller);
  absl::StatusOr<v1::FetchParametersResponse> FetchParameters(
      const v1::FetchParametersRequest& request, const security::Principal& caller);
  absl::StatusOr<v1::PushUpdateResponse> PushUpdate(const v1::PushUpdateRequest& request,
                                                    const security::Principal& caller);

  // Expires leases and schedules; called periodically and on heartbeats.
  void Tick();
  CoordinatorMetrics metrics();

 private:
  struct Worker {
    v1::WorkerInfo info;
    absl::Time lease_expiry;
    bool lease_queued = false;  // lease_queue_ holds an entry for it
    std::string assigned_job;   // given to it and not yet released
    int rank = -1;
    int64_t generation_seen = 0;  // of assigned_job, in its last heartbeat
    bool draining = false;
    // Queued for its next heartbeat reply, or sent and not yet applied
    // (numbered: Directive.sequence); resent until a heartbeat's
    // directives_applied reaches them.
    std::vector<v1::Directive> pending;
    int64_t directives_sent = 0;  // the last sequence number given
    // A join's assignment to a member, until the joiners are ready.
    std::vector<v1::Directive> held;
    // The job it drained from: it may still finish it (rank 0's final
    // upload and report, when the drain came at the last steps).
    std::string left_job;
    // The job whose part it ended on its own (a rank that trained every
    // step before rank 0's final report): it is never asked to join that
    // job again, which would start a generation at the very end.
    std::string released_job;
  };

  Coordinator(JobStore* store, Clock* clock, CoordinatorOptions options)
      : store_(store), clock_(clock), options_(std::move(options)) {}

  absl::Status Transition(v1::JobStatus& job, v1::JobState state, const std::string& reason)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Records `reason` in the job's history without changing its state.
  void NoteLocked(v1::JobStatus& job, const std::string& reason) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Adds `what` to the job's history alone (its state and reason stay).
  void AppendHistory(const v1::JobStatus& job, const std::string& what);
  // O(leases due): lease_queue_'s entries up to now.
  void ExpireLeasesLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // w.assigned_job = job ("" : none), and the index by job with it.
  void SetAssignedJobLocked(Worker& w, const std::string& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The lease of worker `id` runs for its pool's TTL from now.
  void RenewLeaseLocked(const std::string& id, Worker& w) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Duration LeaseTtl(v1::WorkerPool pool) const {
    return pool == v1::WORKER_POOL_EDGE ? options_.edge_lease_ttl : options_.lease_ttl;
  }
  void ScheduleLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Gives workers `ids` their ranks (their index) in `base`'s job and
  // queues `base` for each with its rank, replacing an assignment of that
  // job not yet delivered. Shared by AssignGenerationLocked and the
  // hybrid ring's generations.
  void QueueGenerationLocked(const std::vector<std::string>& ids, const v1::Assignment& base)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The job's next generation on workers `ids` (rank order) from
  // `start_step`: bumps the generation, queues the assignments (replacing
  // any not yet delivered); returns the workers' names.
  std::vector<std::string> AssignGenerationLocked(v1::JobStatus& job,
                                                  const std::vector<std::string>& ids,
                                                  int64_t start_step, bool resume_in_memory,
                                                  bool abandon_previous)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Generations (see above), in generations.cc.
  // The ids of the job's members, by rank.
  std::vector<std::string> MembersLocked(const std::string& job_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Free workers `job` may take, fastest first.
  std::vector<std::string> FreeWorkersForLocked(const v1::JobStatus& job)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Takes worker `id` out of its job: lease revoked (LOST), undelivered
  // assignments dropped; remembered among the job's lost workers.
  void FenceLocked(const std::string& id, const std::string& why)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The members `keep` (rank order) plus free workers form the job's next
  // generation, or the job waits, or fails with no member left. `why` goes
  // into the history; `resume_step` (-1: unknown, about the last
  // progress) is the step the members are known to resume from. With
  // `add_free`, free workers join (up to max_workers); otherwise only as
  // many as min_workers needs (GrowJobsLocked adds more, after).
  void NextGenerationLocked(v1::JobStatus& job, const std::vector<std::string>& keep,
                            const std::string& why, bool abandon_previous, int64_t resume_step = -1,
                            bool add_free = false) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A survivors' report: fences the lost ranks, and the rest go on.
  void RegroupLocked(v1::JobStatus& job, const v1::ReportProgressRequest& report)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Free workers join RUNNING jobs below max_workers and WAITING ones.
  void GrowJobsLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // WAITING jobs past their deadline fail; re-adoptions past theirs fence
  // the members that did not come back.
  void ExpireWaitsLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Register's re-adoption of a worker into the job it says it runs.
  bool AdoptLocked(const std::string& id, const v1::RegisterRequest& request)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Tells every worker of `job_id` to stop it.
  void CancelWorkersLocked(const std::string& job_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FailJobLocked(const std::string& job_id, const std::string& reason)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  google::protobuf::Timestamp NowProto();
  // A new token stored hashed; returns the token.
  absl::StatusOr<std::string> MintToken(security::Role role, const std::string& subject,
                                        const std::string& label, v1::TokenInfo* info = nullptr);
  // Register's identity rule; a join token enrolls `name`: returns its new
  // credential (empty when the caller already is that worker). Stores the
  // credential (SQLite) outside mu_, so heartbeats go on meanwhile;
  // enrollments are serialized among themselves by enroll_mu_.
  absl::StatusOr<std::string> Enroll(const security::Principal& caller, const std::string& name)
      ABSL_LOCKS_EXCLUDED(mu_, enroll_mu_);
  static absl::Status CallerIs(const security::Principal& caller, const v1::WorkerInfo& worker);

  // DiLoCo jobs (diloco_jobs.cc; see "DiLoCo jobs" above).
  struct DiLoCoJob {
    std::unique_ptr<rounds::RoundKeeper> keeper;
    int failures = 0;       // replica errors since the last round closed
    std::string evaluator;  // the replica asked to evaluate the final model
    absl::Time evaluation_deadline = absl::InfiniteFuture();
    // Hybrid jobs (datacenter_ring.cc): the data-center ring that is one
    // replica — its members' worker ids by rank (empty: no ring now). Each
    // change of them is the job's next generation.
    bool hybrid = false;
    std::vector<std::string> ring;
  };
  // The name the ring of a hybrid job takes part in rounds under.
  static constexpr char kRingReplica[] = "datacenter-ring";
  static bool IsDiLoCo(const v1::JobSpec& spec) { return spec.sync().has_diloco(); }
  static bool IsHybrid(const v1::JobSpec& spec) {
    return IsDiLoCo(spec) && PoolAllowed(spec, v1::WORKER_POOL_DATACENTER) &&
           PoolAllowed(spec, v1::WORKER_POOL_EDGE);
  }
  // Every worker that holds `job_id` now, in no order (a diloco job's
  // replicas and ring members; MembersLocked maps by rank, and ring ranks
  // collide with replicas' shards).
  std::vector<std::string> ReplicaWorkersLocked(const std::string& job_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The name `w` takes part in `d`'s rounds under: its own, or the ring's.
  static std::string KeeperName(const Worker& w, const DiLoCoJob& d);
  // Hybrid jobs: the ring's next generation on `members` (worker ids, by
  // rank), after `why`. Forgets the ring's part in the open round; with no
  // members the ring is gone until a data-center worker is free again.
  void FormRingLocked(v1::JobStatus& job, DiLoCoJob& d, const std::vector<std::string>& members,
                      const std::string& why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Ring members `ids` left (fenced, drained, failed, ended their part):
  // the rest go on as the next generation. False if none was a member.
  // `job_id` by value: it may be a leaving member's assigned_job.
  bool RingMembersLeftLocked(std::string job_id, const std::vector<std::string>& ids,
                             const std::string& why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Free data-center workers of a hybrid job join its ring; true if any did.
  bool GrowRingLocked(v1::JobStatus& job, DiLoCoJob& d, const std::vector<std::string>& free)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Starts a queued diloco job (its keeper from the initial parameters).
  void StartDiLoCoJobLocked(v1::JobStatus& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A started diloco job found in the store at start: its keeper from the
  // checkpoint of its stored round.
  absl::Status ResumeDiLoCoJobLocked(v1::JobStatus& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Free workers become replicas of running diloco jobs.
  void AssignReplicasLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void AssignReplicaLocked(v1::JobStatus& job, DiLoCoJob& d, const std::string& id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Worker `id` is no replica of its diloco job any more (`why` logged).
  void DropReplicaLocked(const std::string& id, const std::string& why)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Closes the rounds that are due and ends the jobs whose evaluation is
  // overdue; `only` limits it to one job.
  void CloseRoundsLocked(const std::string& only = "") ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status CommitRoundLocked(v1::JobStatus& job, DiLoCoJob& d, const v1::RoundInfo& info)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The caller's replica entry in `job_id`'s diloco job.
  absl::StatusOr<std::pair<Worker*, DiLoCoJob*>> ReplicaLocked(const std::string& worker_id,
                                                               const std::string& job_id,
                                                               const security::Principal& caller)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A replica's report: an evaluation of the final model, or an error.
  absl::Status ReplicaReportLocked(v1::JobStatus& job, Worker& w,
                                   const v1::ReportProgressRequest& request)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string RoundDir(const std::string& job_id) const;
  // The registered worker `id` (lost ones too), or null.
  Worker* FindWorkerLocked(const std::string& id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  JobStore* store_;
  Clock* clock_;
  CoordinatorOptions options_;
  std::unique_ptr<ModelRegistry> models_;  // its own lock, taken after mu_
  absl::Mutex mu_;
  std::map<std::string, Worker> workers_ ABSL_GUARDED_BY(mu_);  // by id, in order (paging)
  // The same workers by id, hashed: the per-call lookups (a heartbeat, a
  // lease due) cost one probe, not a walk of a 100,000-node tree of string
  // keys (17% of the coordinator's CPU at 100,000 vehicles). Entries are
  // added and erased with workers_'s (Register); std::map nodes never move.
  absl::flat_hash_map<std::string, Worker*> worker_index_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> ids_by_name_ ABSL_GUARDED_BY(mu_);
  // Worker ids by the job assigned to them (Worker::assigned_job, kept by
  // SetAssignedJobLocked): a job's members without a scan of the fleet.
  std::map<std::string, std::set<std::string>> workers_by_job_ ABSL_GUARDED_BY(mu_);
  // (expiry, worker id), one entry per worker: a renewal only moves the
  // worker's lease_expiry, and an entry that comes due before it goes back
  // in at that time (once per TTL, not once per heartbeat). Entries of a
  // worker that registered again under a new id are dropped when due.
  // Expiry costs the leases due, not a scan of the fleet.
  std::priority_queue<std::pair<absl::Time, std::string>,
                      std::vector<std::pair<absl::Time, std::string>>,
                      std::greater<std::pair<absl::Time, std::string>>>
      lease_queue_ ABSL_GUARDED_BY(mu_);
  // Something a schedule could act on changed since the last one (a job
  // queued or ended, a worker free, ready, eligible, lost, draining): the
  // next heartbeat schedules. A heartbeat that changes nothing does not
  // (a fleet's steady heartbeats cost O(1)); Tick always does.
  bool schedule_due_ ABSL_GUARDED_BY(mu_) = true;
  security::TokenRegistry tokens_;  // its own lock
  // By job: every worker it lost, for the reason of a failure.
  std::map<std::string, std::vector<std::string>> lost_workers_ ABSL_GUARDED_BY(mu_);
  // Started jobs found in the store at start: until when their members may
  // re-register.
  std::map<std::string, absl::Time> adoption_deadline_ ABSL_GUARDED_BY(mu_);
  // Joins under way: by job, the joiners not yet ready (their heartbeat's
  // job_ready); the members' assignments are held until none is left.
  std::map<std::string, std::set<std::string>> awaiting_ready_ ABSL_GUARDED_BY(mu_);
  // Started diloco jobs, by id.
  std::map<std::string, DiLoCoJob> diloco_ ABSL_GUARDED_BY(mu_);
  CoordinatorMetrics metrics_ ABSL_GUARDED_BY(mu_);
  // Succeeded jobs whose spec says publish_as, for the next PublishQueued.
  std::vector<std::string> publish_queue_ ABSL_GUARDED_BY(mu_);
  // Workers whose stored copy is out of date (registered, lost): written
  // in one transaction by the next Tick, outside mu_.
  std::vector<v1::WorkerInfo> worker_rows_ ABSL_GUARDED_BY(mu_);
  absl::Mutex enroll_mu_;
};

}  // namespace nightshift::coordinator

#endif  // NIGHTSHIFT_COORDINATOR_COORDINATOR_H_
