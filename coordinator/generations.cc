// The coordinator's elastic membership: who a started job's members are,
// and every change of them — losses, drains, joins, waits and the
// re-adoption of running jobs after a restart. The protocol is written
// down in coordinator.h ("Generations"); these are its steps.
#include <algorithm>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "coordinator/coordinator.h"
#include "glog/logging.h"
#include "google/protobuf/util/time_util.h"
#include "proto/job_state.h"
#include "spec/defaults.h"

namespace nightshift::coordinator {
namespace {

bool Started(const v1::JobStatus& job) {
  return job.state() == v1::JOB_STATE_RUNNING || job.state() == v1::JOB_STATE_WAITING;
}

}  // namespace

std::vector<std::string> Coordinator::MembersLocked(const std::string& job_id) {
  std::map<int, std::string> by_rank;
  for (const std::string& id : ReplicaWorkersLocked(job_id)) by_rank[workers_[id].rank] = id;
  std::vector<std::string> ids;
  for (const auto& [rank, id] : by_rank) ids.push_back(id);
  return ids;
}

std::vector<std::string> Coordinator::FreeWorkersForLocked(const v1::JobStatus& job) {
  std::vector<std::pair<double, std::string>> free;
  for (const auto& [id, w] : workers_) {
    if (w.info.state() == v1::WORKER_STATE_LOST || w.draining || !w.assigned_job.empty() ||
        w.released_job == job.id() || !PoolAllowed(job.spec(), w.info.pool()) ||
        (w.info.pool() == v1::WORKER_POOL_EDGE && !w.info.eligibility().eligible())) {
      continue;
    }
    free.push_back({-w.info.samples_per_second(), id});
  }
  std::sort(free.begin(), free.end());
  std::vector<std::string> ids;
  for (const auto& [rate, id] : free) ids.push_back(id);
  return ids;
}

void Coordinator::FenceLocked(const std::string& id, const std::string& why) {
  Worker& w = workers_[id];
  schedule_due_ = true;
  const std::string ring_job = w.assigned_job;  // if it is a ring member: below
  if (auto d = diloco_.find(w.assigned_job); d != diloco_.end()) {
    d->second.keeper->Forget(w.info.name());
  }
  if (!w.assigned_job.empty()) {
    LOG(WARNING) << "job " << w.assigned_job << ": fencing " << w.info.name() << " (rank " << w.rank
                 << "): " << why;
    lost_workers_[w.assigned_job].push_back(absl::StrCat(w.info.name(), " (", why, ")"));
  }
  w.pending.erase(std::remove_if(w.pending.begin(), w.pending.end(),
                                 [](const v1::Directive& d) { return d.has_assign(); }),
                  w.pending.end());
  w.held.clear();
  SetAssignedJobLocked(w, "");
  w.rank = -1;
  w.info.clear_job_id();
  w.info.set_state(v1::WORKER_STATE_LOST);
  worker_rows_.push_back(w.info);  // informational copy, written by Tick
  RingMembersLeftLocked(ring_job, {id}, absl::StrCat(w.info.name(), " was fenced: ", why));
}

void Coordinator::NextGenerationLocked(v1::JobStatus& job, const std::vector<std::string>& keep,
                                       const std::string& why, bool abandon_previous,
                                       int64_t resume_step, bool add_free) {
  std::vector<std::string> members = keep;
  std::vector<std::string> joined_ids, joined_names;
  const int wanted = add_free ? MaxWorkers(job.spec()) : MinWorkers(job.spec());
  for (const std::string& id : FreeWorkersForLocked(job)) {
    if (static_cast<int>(members.size()) >= wanted) break;
    members.push_back(id);
    joined_ids.push_back(id);
    joined_names.push_back(workers_[id].info.name());
  }
  const std::string joiners =
      joined_ids.empty() ? "" : absl::StrCat("; joining: ", absl::StrJoin(joined_names, ", "));
  if (members.empty()) {
    FailJobLocked(job.id(), absl::StrCat(why, "; no worker holds the model any more (lost: ",
                                         absl::StrJoin(lost_workers_[job.id()], ", "), ")"));
    return;
  }
  if (static_cast<int>(members.size()) < MinWorkers(job.spec())) {
    // Too few: the members hold the model until workers join.
    const absl::Time deadline = clock_->Now() + absl::Seconds(WaitForWorkersSeconds(job.spec()));
    if (job.state() != v1::JOB_STATE_WAITING) {
      *job.mutable_wait_deadline() =
          google::protobuf::util::TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(deadline));
    }
    for (const std::string& id : keep) {
      v1::Directive d;
      d.set_yield_job_id(job.id());
      workers_[id].pending.push_back(d);
    }
    const std::string reason = absl::StrCat(
        why, "; waiting for workers: ", members.size(), " of at least ", MinWorkers(job.spec()),
        ", until ", absl::FormatTime("%H:%M:%S", deadline, absl::UTCTimeZone()), " UTC");
    if (job.state() == v1::JOB_STATE_WAITING) {
      NoteLocked(job, reason);
    } else {
      Transition(job, v1::JOB_STATE_WAITING, reason).IgnoreError();  // its members still wait
    }
    return;
  }
  const int64_t step = resume_step >= 0 ? resume_step : job.progress().step();
  // Members wait for joiners to be ready unless they must stop at once.
  const bool hold_for_joiners = !abandon_previous;
  const std::vector<std::string> names =
      AssignGenerationLocked(job, members, step, /*resume_in_memory=*/true, abandon_previous);
  if (hold_for_joiners && !joined_ids.empty()) {
    // They train on until the joiners are ready (see Heartbeat).
    awaiting_ready_[job.id()] = std::set<std::string>(joined_ids.begin(), joined_ids.end());
    for (const std::string& id : keep) {
      Worker& w = workers_[id];
      auto assign = std::stable_partition(w.pending.begin(), w.pending.end(),
                                          [](const v1::Directive& d) { return !d.has_assign(); });
      w.held.assign(std::make_move_iterator(assign), std::make_move_iterator(w.pending.end()));
      w.pending.erase(assign, w.pending.end());
    }
  }
  const std::string reason =
      absl::StrCat("generation ", job.generation(), " on ", absl::StrJoin(names, ", "), " after ",
                   why, joiners, "; from the members' last commit (step ", step,
                   resume_step >= 0 ? " or the one before)" : " or before)");
  job.clear_wait_deadline();
  if (job.state() == v1::JOB_STATE_WAITING) {
    Transition(job, v1::JOB_STATE_RUNNING, reason).IgnoreError();  // assignments are queued
  } else {
    NoteLocked(job, reason);
  }
}

void Coordinator::RegroupLocked(v1::JobStatus& job, const v1::ReportProgressRequest& report) {
  const std::set<int> lost(report.lost_ranks().begin(), report.lost_ranks().end());
  std::vector<std::string> lost_names;
  for (const std::string& id : MembersLocked(job.id())) {
    const Worker& w = workers_[id];
    if (lost.count(w.rank) == 0) continue;
    lost_names.push_back(absl::StrCat(w.info.name(), " (rank ", w.rank, ")"));
    FenceLocked(id, absl::StrCat("its peers lost it at generation ", job.generation()));
  }
  // Another survivor's report of the same loss, while the job waits.
  if (lost_names.empty() && job.state() == v1::JOB_STATE_WAITING) return;
  const int64_t lost_at = job.progress().step();
  if (report.committed_step() >= 0) {
    metrics_.steps_redone += std::max<int64_t>(0, lost_at - report.committed_step());
  }
  const int64_t generation = job.generation();
  NextGenerationLocked(
      job, MembersLocked(job.id()),
      absl::StrCat("losing ", absl::StrJoin(lost_names, ", "), " near step ", lost_at,
                   " (the survivors' last commit: step ", report.committed_step(), ")"),
      /*abandon_previous=*/false, report.committed_step());
  if (job.generation() > generation) ++metrics_.recoveries;
}

void Coordinator::GrowJobsLocked() {
  // On every heartbeat: look at the store only when some worker is free.
  const bool any_free = std::any_of(workers_.begin(), workers_.end(), [](const auto& e) {
    const Worker& w = e.second;
    return w.info.state() != v1::WORKER_STATE_LOST && !w.draining && w.assigned_job.empty();
  });
  if (!any_free) return;
  for (v1::JobState state : {v1::JOB_STATE_RUNNING, v1::JOB_STATE_WAITING}) {
    absl::StatusOr<std::vector<v1::JobStatus>> jobs = store_->ListJobsInState(state);
    if (!jobs.ok()) continue;
    for (v1::JobStatus& job : *jobs) {
      if (adoption_deadline_.count(job.id()) > 0 || diloco_.count(job.id()) > 0) continue;
      const std::vector<std::string> members = MembersLocked(job.id());
      const std::vector<std::string> free = FreeWorkersForLocked(job);
      if (members.empty() || free.empty()) continue;
      if (state == v1::JOB_STATE_WAITING) {
        if (static_cast<int>(members.size() + free.size()) < MinWorkers(job.spec())) continue;
      } else {
        if (static_cast<int>(members.size()) >= MaxWorkers(job.spec())) continue;
        // Only from a settled generation: every member has started it.
        bool settled = true;
        for (const std::string& id : members) {
          settled &= workers_[id].generation_seen == job.generation();
        }
        if (!settled) continue;
      }
      NextGenerationLocked(job, members, "workers joined", /*abandon_previous=*/false,
                           /*resume_step=*/-1, /*add_free=*/true);
    }
  }
}

void Coordinator::ExpireWaitsLocked() {
  const absl::Time now = clock_->Now();
  absl::StatusOr<std::vector<v1::JobStatus>> waiting =
      store_->ListJobsInState(v1::JOB_STATE_WAITING);
  for (v1::JobStatus& job : waiting.ok() ? *waiting : std::vector<v1::JobStatus>()) {
    if (adoption_deadline_.count(job.id()) > 0) continue;
    const absl::Time deadline = absl::FromUnixNanos(
        google::protobuf::util::TimeUtil::TimestampToNanoseconds(job.wait_deadline()));
    if (now < deadline) continue;
    FailJobLocked(job.id(), absl::StrCat("too few workers: no worker joined within ",
                                         WaitForWorkersSeconds(job.spec()),
                                         " s of falling below min_workers ", MinWorkers(job.spec()),
                                         "; lost: ", absl::StrJoin(lost_workers_[job.id()], ", ")));
  }
  for (auto it = adoption_deadline_.begin(); it != adoption_deadline_.end();) {
    if (now < it->second) {
      ++it;
      continue;
    }
    const std::string job_id = it->first;
    it = adoption_deadline_.erase(it);
    absl::StatusOr<v1::JobStatus> job = store_->GetJob(job_id);
    if (!job.ok() || !Started(*job)) continue;
    const std::vector<std::string> members = MembersLocked(job_id);
    if (members.empty()) {
      job->clear_workers();
      Transition(*job, v1::JOB_STATE_QUEUED,
                 "none of its workers came back after the coordinator restarted; it starts again, "
                 "from its latest uploaded checkpoint if it has one")
          .IgnoreError();  // stays started in the store; retried at the next restart
      continue;
    }
    if (static_cast<int>(members.size()) == job->workers_size()) continue;  // all back
    std::vector<std::string> missing;
    for (const std::string& name : job->workers()) {
      bool back = false;
      for (const std::string& id : members) back |= workers_[id].info.name() == name;
      if (!back) missing.push_back(name);
    }
    for (const std::string& name : missing) {
      lost_workers_[job_id].push_back(absl::StrCat(name, " (did not come back)"));
    }
    NextGenerationLocked(*job, members,
                         absl::StrCat(absl::StrJoin(missing, ", "),
                                      " did not re-register after the coordinator restarted"),
                         /*abandon_previous=*/true);
  }
}

bool Coordinator::AdoptLocked(const std::string& id, const v1::RegisterRequest& request) {
  if (auto d = diloco_.find(request.job_id()); d != diloco_.end()) {
    // A replica back (it restarted, or its lease ran out on a cut link):
    // its shard is its own still; it joins the open round again as any
    // replica does (the lost lease freed its place).
    absl::StatusOr<v1::JobStatus> job = store_->GetJob(request.job_id());
    if (!job.ok() || job->state() != v1::JOB_STATE_RUNNING) return false;
    Worker& w = workers_[id];
    // A ring member is not taken back: free, it joins the ring afresh.
    if (d->second.hybrid && w.info.pool() == v1::WORKER_POOL_DATACENTER) return false;
    const int shard = d->second.keeper->ShardFor(w.info.name());
    if (request.rank() != shard) return false;  // not the replica it says it is
    SetAssignedJobLocked(w, job->id());
    w.rank = shard;
    w.generation_seen = request.generation();
    w.info.set_job_id(job->id());
    w.info.set_state(w.draining ? v1::WORKER_STATE_DRAINING : v1::WORKER_STATE_BUSY);
    if (std::find(job->workers().begin(), job->workers().end(), w.info.name()) ==
        job->workers().end()) {
      job->add_workers(w.info.name());
      store_->UpdateJob(*job).IgnoreError();  // job.workers: informational
    }
    return true;
  }
  // Only a restarted coordinator's jobs: a worker fenced by this one
  // (its lease ran out, its peers lost it) stays out.
  if (adoption_deadline_.count(request.job_id()) == 0) return false;
  absl::StatusOr<v1::JobStatus> job = store_->GetJob(request.job_id());
  if (!job.ok()) return false;
  // A member may still run the generation before the stored one: a join's
  // assignments were held for it when the old coordinator stopped.
  const bool generation_known =
      request.generation() == job->generation() || request.generation() == job->generation() - 1;
  if (!Started(*job) || !generation_known || request.rank() < 0 ||
      request.rank() >= job->workers_size() || job->workers(request.rank()) != request.name()) {
    return false;  // fenced out, or the job ended
  }
  for (const std::string& member : MembersLocked(job->id())) {
    if (workers_[member].rank == request.rank()) return false;  // its place is taken
  }
  Worker& w = workers_[id];
  SetAssignedJobLocked(w, job->id());
  w.rank = request.rank();
  w.generation_seen = request.generation();
  w.info.set_job_id(job->id());
  w.info.set_state(w.draining ? v1::WORKER_STATE_DRAINING : v1::WORKER_STATE_BUSY);
  const std::vector<std::string> members = MembersLocked(job->id());
  if (static_cast<int>(members.size()) == job->workers_size()) {
    adoption_deadline_.erase(job->id());
    NoteLocked(*job, absl::StrCat("re-adopted after the coordinator restarted: all ",
                                  members.size(), " workers of generation ", job->generation(),
                                  " came back, at step ", job->progress().step()));
    bool mixed = false;
    for (const std::string& member : members) {
      mixed |= workers_[member].generation_seen != job->generation();
    }
    if (mixed) {  // a join was under way: all regroup in one new generation
      NextGenerationLocked(*job, members, "a join interrupted by the coordinator restart",
                           /*abandon_previous=*/true);
    }
  }
  return true;
}

}  // namespace nightshift::coordinator
