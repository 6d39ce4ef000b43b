// The coordinator's DiLoCo jobs: their start, their replicas, the round
// calls, closing and committing rounds, and the final evaluation. The
// protocol is written down in coordinator.h ("DiLoCo jobs") and, for one
// round, in coordinator/rounds/round_keeper.h; these are its steps.
#include <algorithm>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "base/filesystem.h"
#include "base/status_macros.h"
#include "checkpoint/file_names.h"
#include "coordinator/coordinator.h"
#include "coordinator/rounds/round_checkpoint.h"
#include "glog/logging.h"
#include "google/protobuf/util/time_util.h"
#include "proto/job_state.h"
#include "spec/defaults.h"
#include "spec/diloco.h"
#include "spec/tensors.h"

namespace nightshift::coordinator {
namespace {

// Round checkpoints kept per job: the newest is the restart point; the one
// before it covers a crash while the newest was being committed.
constexpr int kRoundCheckpointsKept = 2;

void SetWorkers(v1::JobStatus& job, const std::vector<std::string>& names) {
  job.clear_workers();
  for (const std::string& n : names) job.add_workers(n);
}

}  // namespace

std::string Coordinator::RoundDir(const std::string& job_id) const {
  return absl::StrCat(options_.state_dir, "/checkpoints/", job_id);
}

void Coordinator::StartDiLoCoJobLocked(v1::JobStatus& job) {
  absl::StatusOr<std::vector<float>> initial = InitialParameters(job.spec());
  absl::StatusOr<std::unique_ptr<rounds::RoundKeeper>> keeper =
      initial.ok()
          ? rounds::RoundKeeper::Create(job.spec(), {0, *std::move(initial)}, clock_->Now())
          : absl::StatusOr<std::unique_ptr<rounds::RoundKeeper>>(initial.status());
  if (!keeper.ok()) {
    Transition(job, v1::JOB_STATE_FAILED,
               absl::StrCat("cannot start the rounds: ", keeper.status().message()))
        .IgnoreError();  // stays queued in the store; retried on the next pass
    return;
  }
  const DiLoCoSettings& s = (*keeper)->settings();
  job.set_generation(1);
  job.set_round(0);
  job.set_total_rounds(s.rounds);
  job.clear_workers();
  diloco_[job.id()].keeper = *std::move(keeper);
  diloco_[job.id()].hybrid = IsHybrid(job.spec());
  Transition(job, v1::JOB_STATE_RUNNING,
             absl::StrFormat("rounds start: %d rounds of %d inner steps; a round closes at %d "
                             "updates of %d selected replicas or after %d s; %s",
                             s.rounds, s.inner_steps, s.quorum, s.selected_per_round,
                             s.round_deadline_seconds, v1::Aggregation_Name(s.aggregation)))
      .IgnoreError();  // the store is the record; the keeper is rebuilt on restart
}

absl::Status Coordinator::ResumeDiLoCoJobLocked(v1::JobStatus& job) {
  rounds::RoundSnapshot start;
  if (job.round() > 0) {
    ASSIGN_OR_RETURN(
        start, rounds::ReadRoundCheckpoint(
                   PathIn(RoundDir(job.id()), RoundCheckpointFileName(job.round())), job.spec()));
    if (start.round != job.round()) {
      return absl::DataLossError(absl::StrCat("the round checkpoint holds round ", start.round,
                                              "; the job's stored round is ", job.round()));
    }
  } else {
    ASSIGN_OR_RETURN(start.parameters, InitialParameters(job.spec()));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<rounds::RoundKeeper> keeper,
                   rounds::RoundKeeper::Create(job.spec(), std::move(start), clock_->Now()));
  DiLoCoJob& d = diloco_[job.id()];
  d.keeper = std::move(keeper);
  d.hybrid = IsHybrid(job.spec());
  if (d.keeper->done()) {
    d.evaluation_deadline =
        clock_->Now() + absl::Seconds(d.keeper->settings().round_deadline_seconds);
  }
  job.clear_workers();
  NoteLocked(job, absl::StrCat("the coordinator restarted; the rounds go on from round ",
                               job.round(), " of ", job.total_rounds(),
                               " (an open round's updates are lost); replicas re-register"));
  return absl::OkStatus();
}

void Coordinator::AssignReplicasLocked() {
  const bool any_free = std::any_of(workers_.begin(), workers_.end(), [](const auto& e) {
    const Worker& w = e.second;
    return w.info.state() != v1::WORKER_STATE_LOST && !w.draining && w.assigned_job.empty();
  });
  if (!any_free) return;
  for (auto& [job_id, d] : diloco_) {
    absl::StatusOr<v1::JobStatus> job = store_->GetJob(job_id);
    if (!job.ok() || job->state() != v1::JOB_STATE_RUNNING || d.keeper->done()) continue;
    // The ring, if any, is one replica however many members it has.
    const std::string& id = job_id;  // C++17 lambdas do not capture bindings
    const DiLoCoJob& job_d = d;
    auto count_replicas = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return static_cast<int>(ReplicaWorkersLocked(id).size()) -
             static_cast<int>(job_d.ring.size()) + (job_d.ring.empty() ? 0 : 1);
    };
    int replicas = count_replicas();
    // At capacity only the ring may still grow.
    if (replicas >= MaxWorkers(job->spec()) && (!d.hybrid || d.ring.empty())) continue;
    const std::vector<std::string> free = FreeWorkersForLocked(*job);
    if (free.empty()) continue;
    bool changed = false;
    if (d.hybrid && (!d.ring.empty() || replicas < MaxWorkers(job->spec()))) {
      changed = GrowRingLocked(*job, d, free);
      replicas = count_replicas();
    }
    for (const std::string& worker : free) {
      if (replicas >= MaxWorkers(job->spec())) break;
      if (d.hybrid && workers_[worker].info.pool() == v1::WORKER_POOL_DATACENTER) continue;
      AssignReplicaLocked(*job, d, worker);
      ++replicas;
      changed = true;
    }
    if (changed) store_->UpdateJob(*job).IgnoreError();  // generation, workers
  }
}

void Coordinator::AssignReplicaLocked(v1::JobStatus& job, DiLoCoJob& d, const std::string& id) {
  Worker& w = workers_[id];
  const int shard = d.keeper->ShardFor(w.info.name());
  v1::Directive directive;
  v1::Assignment& a = *directive.mutable_assign();
  a.set_job_id(job.id());
  *a.mutable_spec() = job.spec();
  a.set_generation(job.generation());
  a.set_rank(shard);
  a.set_world_size(d.keeper->settings().shard_count);
  w.pending.push_back(std::move(directive));
  SetAssignedJobLocked(w, job.id());
  w.rank = shard;
  w.info.set_job_id(job.id());
  w.info.set_state(v1::WORKER_STATE_BUSY);
  job.add_workers(w.info.name());
  LOG(INFO) << "job " << job.id() << ": " << w.info.name() << " is a replica (shard " << shard
            << ")";
}

void Coordinator::DropReplicaLocked(const std::string& id, const std::string& why) {
  Worker& w = workers_[id];
  schedule_due_ = true;
  auto d = diloco_.find(w.assigned_job);
  if (d == diloco_.end()) return;
  if (RingMembersLeftLocked(w.assigned_job, {id}, absl::StrCat(w.info.name(), " left: ", why))) {
    return;
  }
  LOG(INFO) << "job " << w.assigned_job << ": replica " << w.info.name() << " left: " << why;
  d->second.keeper->Forget(w.info.name());
  absl::StatusOr<v1::JobStatus> job = store_->GetJob(w.assigned_job);
  w.released_job = w.assigned_job;
  SetAssignedJobLocked(w, "");
  w.rank = -1;
  w.info.clear_job_id();
  if (w.info.state() == v1::WORKER_STATE_BUSY) w.info.set_state(v1::WORKER_STATE_IDLE);
  if (!job.ok()) return;
  std::vector<std::string> names;
  for (const std::string& member : ReplicaWorkersLocked(job->id())) {
    names.push_back(workers_[member].info.name());
  }
  std::sort(names.begin(), names.end());
  SetWorkers(*job, names);
  store_->UpdateJob(*job).IgnoreError();  // job.workers: informational
}

absl::StatusOr<std::pair<Coordinator::Worker*, Coordinator::DiLoCoJob*>> Coordinator::ReplicaLocked(
    const std::string& worker_id, const std::string& job_id, const security::Principal& caller) {
  Worker* w = FindWorkerLocked(worker_id);
  if (w == nullptr || w->info.state() == v1::WORKER_STATE_LOST) {
    return absl::NotFoundError(
        absl::StrCat("worker ", worker_id, " is not registered (or its lease ran out)"));
  }
  RETURN_IF_ERROR(CallerIs(caller, w->info));
  auto d = diloco_.find(job_id);
  if (w->assigned_job != job_id || d == diloco_.end()) {
    return absl::FailedPreconditionError(
        absl::StrCat("worker ", w->info.name(), " is not a replica of diloco job ", job_id));
  }
  if (KeeperName(*w, d->second) == kRingReplica && w->rank != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("worker ", w->info.name(), " is rank ", w->rank, " of job ", job_id,
                     "'s data-center ring: only its rank 0 takes part in rounds"));
  }
  return std::make_pair(w, &d->second);
}

absl::StatusOr<v1::RoundTicket> Coordinator::JoinRound(const v1::JoinRoundRequest& request,
                                                       const security::Principal& caller) {
  absl::MutexLock lock(&mu_);
  ExpireLeasesLocked();
  ASSIGN_OR_RETURN(auto replica, ReplicaLocked(request.worker_id(), request.job_id(), caller));
  auto [w, d] = replica;
  CloseRoundsLocked(request.job_id());     // a deadline may have passed since the last Tick
  if (!diloco_.count(request.job_id())) {  // it ended just now
    v1::RoundTicket ended;
    ended.set_job_ended(true);
    ended.set_reason("the job ended");
    return ended;
  }
  const std::string name = KeeperName(*w, *d);
  if (d->keeper->done()) {
    if (d->evaluator.empty() || d->evaluator == name) {
      d->evaluator = name;
      return d->keeper->EvaluationTicket();
    }
    v1::RoundTicket ended;
    ended.set_job_ended(true);
    ended.set_reason(absl::StrCat("all rounds are done; ", d->evaluator, " evaluates the model"));
    return ended;
  }
  return d->keeper->Join(name, clock_->Now());
}

absl::StatusOr<v1::FetchParametersResponse> Coordinator::FetchParameters(
    const v1::FetchParametersRequest& request, const security::Principal& caller) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(auto replica, ReplicaLocked(request.worker_id(), request.job_id(), caller));
  return replica.second->keeper->Fetch(KeeperName(*replica.first, *replica.second), request);
}

absl::StatusOr<v1::PushUpdateResponse> Coordinator::PushUpdate(const v1::PushUpdateRequest& request,
                                                               const security::Principal& caller) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(auto replica, ReplicaLocked(request.worker_id(), request.job_id(), caller));
  ASSIGN_OR_RETURN(
      v1::PushUpdateResponse response,
      replica.second->keeper->Push(KeeperName(*replica.first, *replica.second), request));
  if (response.complete()) {
    schedule_due_ = true;  // a ring that pushed (or withdrew) may take a joiner now
    CloseRoundsLocked(request.job_id());
  }
  return response;
}

void Coordinator::CloseRoundsLocked(const std::string& only) {
  const absl::Time now = clock_->Now();
  std::vector<std::string> ids;
  for (const auto& [id, d] : diloco_) {
    if (only.empty() || id == only) ids.push_back(id);
  }
  for (const std::string& id : ids) {
    absl::StatusOr<v1::JobStatus> job = store_->GetJob(id);
    if (!job.ok()) continue;
    DiLoCoJob& d = diloco_[id];
    if (d.keeper->done()) {
      if (now < d.evaluation_deadline) continue;
      const std::string why = absl::StrCat(
          "finished ", d.keeper->round(), " rounds; test accuracy not measured: ",
          d.evaluator.empty() ? "no replica joined" : d.evaluator + " did not report", " within ",
          d.keeper->settings().round_deadline_seconds, " s of the last round");
      Transition(*job, v1::JOB_STATE_SUCCEEDED, why).IgnoreError();  // retried on the next Tick
      CancelWorkersLocked(id);
      continue;
    }
    std::optional<v1::RoundInfo> closed = d.keeper->MaybeClose(now);
    if (!closed.has_value()) continue;
    if (absl::Status s = CommitRoundLocked(*job, d, *closed); !s.ok()) {
      FailJobLocked(id,
                    absl::StrCat("round ", closed->round(), " could not be saved: ", s.message()));
    }
  }
}

absl::Status Coordinator::CommitRoundLocked(v1::JobStatus& job, DiLoCoJob& d,
                                            const v1::RoundInfo& info) {
  schedule_due_ = true;  // a closed round may let a ring take a joiner
  const std::string dir = RoundDir(job.id());
  RETURN_IF_ERROR(MakeDirectories(dir));
  const int64_t round = d.keeper->round();
  RETURN_IF_ERROR(rounds::WriteRoundCheckpoint(PathIn(dir, RoundCheckpointFileName(round)),
                                               job.spec(), d.keeper->Snapshot()));
  RETURN_IF_ERROR(store_->PutRound(job.id(), info));
  ++metrics_.rounds_closed;
  metrics_.updates_accepted += info.accepted_size();
  metrics_.updates_refused += info.refused_size();
  d.failures = 0;
  const int64_t h = d.keeper->settings().inner_steps;
  v1::Progress progress = job.progress();
  progress.set_step(round * h);
  progress.set_total_steps(d.keeper->total_rounds() * h);
  progress.set_workers(info.accepted_size());
  const double seconds = google::protobuf::util::TimeUtil::DurationToMilliseconds(
                             info.close_time() - info.open_time()) /
                         1000.0;
  if (seconds > 0) progress.set_samples_per_second(info.samples() / seconds);
  *progress.mutable_time() = info.close_time();
  *job.mutable_progress() = progress;
  job.set_round(round);
  if (d.keeper->done()) {
    const std::string model = PathIn(dir, kModelFileName);
    const absl::Span<const float> p = d.keeper->parameters();
    RETURN_IF_ERROR(rounds::WriteRoundModel(model, job.spec(), {p.begin(), p.end()}));
    v1::CheckpointInfo saved;
    saved.set_step(progress.step());
    saved.set_path(model);
    saved.set_size_bytes(static_cast<int64_t>(std::filesystem::file_size(model)));
    *saved.mutable_time() = info.close_time();
    *job.add_checkpoints() = saved;
    d.evaluation_deadline =
        clock_->Now() + absl::Seconds(d.keeper->settings().round_deadline_seconds);
  }
  // The commit: a restart goes on from this round.
  RETURN_IF_ERROR(store_->UpdateJob(job));
  RETURN_IF_ERROR(store_->AppendProgress(job.id(), progress));
  if (d.keeper->done()) {
    NoteLocked(job, absl::StrCat("all ", round,
                                 " rounds closed; the model is written; the next "
                                 "replica to join evaluates it"));
  }
  // Older round checkpoints go.
  for (int64_t old = round - kRoundCheckpointsKept; old >= 1; --old) {
    const std::string path = PathIn(dir, RoundCheckpointFileName(old));
    if (!std::filesystem::exists(path)) break;
    std::filesystem::remove(path);
  }
  LOG(INFO) << "job " << job.id() << ": round " << info.round() << " closed ("
            << info.close_reason() << "): " << info.accepted_size() << " accepted, "
            << info.refused_size() << " refused, norm " << info.update_norm();
  return absl::OkStatus();
}

absl::Status Coordinator::ReplicaReportLocked(v1::JobStatus& job, Worker& w,
                                              const v1::ReportProgressRequest& request) {
  auto d = diloco_.find(job.id());
  if (d == diloco_.end() || w.assigned_job != job.id()) return absl::OkStatus();  // not ours
  const bool in_ring = KeeperName(w, d->second) == kRingReplica;
  if (!request.error().empty() && in_ring && request.generation() < job.generation()) {
    return absl::OkStatus();  // an older ring's failure: the newer one recovers from it
  }
  if (!request.error().empty() && in_ring && request.lost_ranks_size() > 0) {
    // A survivor says which members its ring lost: they are fenced, the
    // rest (the survivor too) go on as the next generation.
    std::vector<std::string> lost;
    std::vector<std::string> lost_names;
    for (int r : request.lost_ranks()) {
      if (r < 0 || r >= static_cast<int>(d->second.ring.size()) || d->second.ring[r] == w.info.id())
        continue;
      lost.push_back(d->second.ring[r]);
      lost_names.push_back(workers_[d->second.ring[r]].info.name());
    }
    if (lost.empty()) return absl::OkStatus();
    RingMembersLeftLocked(job.id(), lost,
                          absl::StrCat("its peers lost ", absl::StrJoin(lost_names, ", ")));
    for (const std::string& id : lost) FenceLocked(id, "its ring peers lost it");
    return absl::OkStatus();
  }
  if (!request.error().empty()) {
    const std::string why = absl::StrCat(w.info.name(), " failed: ", request.error());
    const int failures = ++d->second.failures;
    const int limit = d->second.keeper->settings().selected_per_round;
    if (d->second.evaluator == KeeperName(w, d->second)) d->second.evaluator.clear();
    DropReplicaLocked(w.info.id(), why);
    // The drop stored the job (its workers; for a ring member, the ring's
    // next generation): go on from that, not from the copy taken before.
    ASSIGN_OR_RETURN(job, store_->GetJob(job.id()));
    if (failures >= limit) {
      FailJobLocked(job.id(), absl::StrCat(failures,
                                           " replicas failed with no round closing; the "
                                           "last: ",
                                           why));
    } else {
      NoteLocked(job, absl::StrCat(why, "; the job goes on without it"));
    }
    return absl::OkStatus();
  }
  if (request.evaluated_version() > 0 && d->second.keeper->done() &&
      request.evaluated_version() == d->second.keeper->round()) {
    v1::Progress progress = job.progress();
    progress.set_test_accuracy(request.progress().test_accuracy());
    progress.set_test_loss(request.progress().test_loss());
    *progress.mutable_time() = NowProto();
    *job.mutable_progress() = progress;
    RETURN_IF_ERROR(store_->AppendProgress(job.id(), progress));
    RETURN_IF_ERROR(Transition(
        job, v1::JOB_STATE_SUCCEEDED,
        absl::StrFormat("finished %d rounds of %d inner steps, test accuracy %.2f%% (evaluated "
                        "by %s)",
                        d->second.keeper->round(), d->second.keeper->settings().inner_steps,
                        100 * progress.test_accuracy(), w.info.name())));
    CancelWorkersLocked(job.id());
  }
  return absl::OkStatus();  // replicas' own progress: the rounds are the record
}

}  // namespace nightshift::coordinator
