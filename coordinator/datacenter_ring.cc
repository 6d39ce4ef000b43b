// The data-center ring of a hybrid DiLoCo job: the data-center workers
// that together are one replica (coordinator.h, "Hybrid jobs"). These are
// its steps: who is in it, each change of its members as the ring's next
// generation, and the name it takes part in rounds under.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "coordinator/coordinator.h"
#include "glog/logging.h"
#include "security/tokens.h"

namespace nightshift::coordinator {

std::vector<std::string> Coordinator::ReplicaWorkersLocked(const std::string& job_id) {
  std::vector<std::string> ids;
  auto assigned = workers_by_job_.find(job_id);
  if (job_id.empty() || assigned == workers_by_job_.end()) return ids;
  for (const std::string& id : assigned->second) {
    if (workers_[id].info.state() != v1::WORKER_STATE_LOST) ids.push_back(id);
  }
  return ids;
}

std::string Coordinator::KeeperName(const Worker& w, const DiLoCoJob& d) {
  const bool in_ring = std::find(d.ring.begin(), d.ring.end(), w.info.id()) != d.ring.end();
  return in_ring ? kRingReplica : w.info.name();
}

void Coordinator::FormRingLocked(v1::JobStatus& job, DiLoCoJob& d,
                                 const std::vector<std::string>& members, const std::string& why) {
  d.keeper->Forget(kRingReplica);  // its part in the open round, unless pushed, is lost
  d.ring = members;
  std::vector<std::string> names;
  for (const std::string& id : ReplicaWorkersLocked(job.id())) {
    names.push_back(workers_[id].info.name());
  }
  for (const std::string& id : members) {
    if (workers_[id].assigned_job != job.id()) names.push_back(workers_[id].info.name());
  }
  std::sort(names.begin(), names.end());
  job.clear_workers();
  for (const std::string& n : names) job.add_workers(n);
  if (members.empty()) {
    NoteLocked(job, absl::StrCat("the data-center ring is gone after ", why,
                                 "; the rounds go on with the vehicles"));
    return;
  }
  // The job's generation counts the ring's: stored with the job, so a
  // restarted coordinator's rings come after every one a worker has seen
  // (its Peer service refuses an older generation of a job).
  job.set_generation(job.generation() + 1);
  v1::Assignment base;
  base.set_job_id(job.id());
  *base.mutable_spec() = job.spec();
  base.set_generation(job.generation());
  base.set_world_size(static_cast<int>(members.size()));
  base.set_abandon_previous(true);  // the old ring stops at once
  base.set_group_key(security::RandomHex(32));
  base.set_replica_shard(d.keeper->ShardFor(kRingReplica));
  std::vector<std::string> ring_names;
  for (const std::string& id : members) {
    const v1::WorkerInfo& info = workers_[id].info;
    base.add_peer_addresses(info.peer_address());
    base.add_peer_host_ids(info.host_id());
    ring_names.push_back(info.name());
  }
  QueueGenerationLocked(members, base);
  NoteLocked(job, absl::StrCat("data-center ring generation ", job.generation(), " on ",
                               absl::StrJoin(ring_names, ", "), " (one replica, shard ",
                               base.replica_shard(), ") after ", why));
}

bool Coordinator::RingMembersLeftLocked(const std::string job_id,  // not a reference: see .h
                                        const std::vector<std::string>& ids,
                                        const std::string& why) {
  auto d = diloco_.find(job_id);
  if (d == diloco_.end() || !d->second.hybrid) return false;
  std::vector<std::string> rest;
  bool any = false;
  for (const std::string& member : d->second.ring) {
    const bool leaves = std::find(ids.begin(), ids.end(), member) != ids.end();
    any |= leaves;
    if (!leaves) rest.push_back(member);
  }
  if (!any) return false;
  // A ring asked to evaluate that loses a member may never report: the
  // next replica to join evaluates instead.
  if (d->second.evaluator == kRingReplica) d->second.evaluator.clear();
  for (const std::string& id : ids) {
    Worker& w = workers_[id];
    if (w.assigned_job != job_id) continue;  // fenced already
    SetAssignedJobLocked(w, "");
    w.released_job = job_id;
    w.rank = -1;
    w.info.clear_job_id();
    if (w.info.state() == v1::WORKER_STATE_BUSY) w.info.set_state(v1::WORKER_STATE_IDLE);
  }
  absl::StatusOr<v1::JobStatus> job = store_->GetJob(job_id);
  if (!job.ok() || job->state() != v1::JOB_STATE_RUNNING || d->second.keeper->done()) {
    // No next generation: the job ended, or its rounds did (the members
    // end their part one by one as rank 0 ends the ring).
    d->second.ring = rest;
    return true;
  }
  FormRingLocked(*job, d->second, rest, why);
  store_->UpdateJob(*job).IgnoreError();  // job.workers: informational
  return true;
}

bool Coordinator::GrowRingLocked(v1::JobStatus& job, DiLoCoJob& d,
                                 const std::vector<std::string>& free) {
  std::vector<std::string> joining;
  for (const std::string& id : free) {
    if (workers_[id].info.pool() == v1::WORKER_POOL_DATACENTER) joining.push_back(id);
  }
  if (joining.empty()) return false;
  // Not while the ring trains a round: a new generation would lose that
  // work. They join once it pushed (or withdrew), before its next round.
  if (!d.ring.empty() && d.keeper->Training(kRingReplica)) return false;
  std::vector<std::string> names;
  for (const std::string& id : joining) names.push_back(workers_[id].info.name());
  std::vector<std::string> members = d.ring;
  members.insert(members.end(), joining.begin(), joining.end());
  FormRingLocked(job, d, members, absl::StrCat(absl::StrJoin(names, ", "), " joined"));
  return true;
}

}  // namespace nightshift::coordinator
