#include "coordinator/coordinator.h"

#include <algorithm>
#include <fstream>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "base/filesystem.h"
#include "base/status_macros.h"
#include "checkpoint/file_names.h"
#include "coordinator/scheduler.h"
#include "coordinator/upload_check.h"
#include "glog/logging.h"
#include "google/protobuf/util/time_util.h"
#include "proto/job_state.h"
#include "security/tokens.h"
#include "spec/defaults.h"
#include "spec/job_spec.h"

namespace nightshift::coordinator {
namespace {

// An edge agent's reason is shown in `nightshift workers` and /v1/workers:
// kept to 256 bytes, cut at a character (UTF-8) boundary and marked "...".
// (Cut, not refused: a refused heartbeat would cost the agent its lease
// over a long file name in a parser's message.)
constexpr size_t kMaxEligibilityReasonBytes = 256;
void BoundReason(std::string& reason) {
  if (reason.size() <= kMaxEligibilityReasonBytes) return;
  size_t cut = kMaxEligibilityReasonBytes - 3;
  while (cut > 0 && (static_cast<unsigned char>(reason[cut]) & 0xC0) == 0x80) --cut;
  reason.resize(cut);
  reason += "...";
}

absl::Status ValidJobId(const std::string& id) {
  if (id.empty() || id.size() > 64) {
    return absl::InvalidArgumentError("job_id: must be 1 to 64 characters");
  }
  for (char c : id) {
    if (!(isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) {
      return absl::InvalidArgumentError(
          absl::StrCat("job_id: '", id, "' may use only letters, digits, '-', '_' and '.'"));
    }
  }
  return absl::OkStatus();
}

// Names the workers table and the logs show: bounded, printable.
absl::Status ValidWorkerName(const std::string& name) {
  if (name.empty() || name.size() > 64) {
    return absl::InvalidArgumentError("name: must be 1 to 64 characters");
  }
  for (char c : name) {
    if (!(isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) {
      return absl::InvalidArgumentError(
          absl::StrCat("name: '", name, "' may use only letters, digits, '-', '_' and '.'"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidRegisterRequest(const v1::RegisterRequest& r) {
  RETURN_IF_ERROR(ValidWorkerName(r.name()));
  if (r.peer_address().size() > 256) {
    return absl::InvalidArgumentError("peer_address: longer than 256 characters");
  }
  if (r.host_id().size() > 128) {
    return absl::InvalidArgumentError("host_id: longer than 128 characters");
  }
  if (!r.job_id().empty()) RETURN_IF_ERROR(ValidJobId(r.job_id()));
  return absl::OkStatus();
}

}  // namespace

google::protobuf::Timestamp Coordinator::NowProto() {
  return google::protobuf::util::TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(clock_->Now()));
}

absl::StatusOr<std::unique_ptr<Coordinator>> Coordinator::Create(JobStore* store, Clock* clock,
                                                                 CoordinatorOptions options) {
  std::unique_ptr<Coordinator> c(new Coordinator(store, clock, std::move(options)));
  ASSIGN_OR_RETURN(c->models_,
                   ModelRegistry::Create(store, absl::StrCat(c->options_.state_dir, "/models")));
  ASSIGN_OR_RETURN(auto tokens, store->ListTokens());
  for (auto& [hash, info] : tokens) {
    absl::StatusOr<security::Role> role = security::ParseRole(info.role());
    if (!role.ok())
      return absl::DataLossError(absl::StrCat("token ", info.id(), ": ", role.status().message()));
    c->tokens_.Add(hash, security::Principal{*role, info.subject(), info.label()});
  }
  ASSIGN_OR_RETURN(std::vector<v1::JobStatus> jobs, store->ListJobs());
  absl::MutexLock lock(&c->mu_);
  std::set<std::pair<std::string, std::string>> published;  // (job, name)
  for (const v1::ModelVersion& v : c->models_->List("")) published.insert({v.job_id(), v.name()});
  for (v1::JobStatus& job : jobs) {
    // Succeeded just before a stop, not yet published.
    if (job.state() == v1::JOB_STATE_SUCCEEDED && !job.spec().publish_as().empty() &&
        published.count({job.id(), job.spec().publish_as()}) == 0) {
      c->publish_queue_.push_back(job.id());
    }
    if (job.state() != v1::JOB_STATE_RUNNING && job.state() != v1::JOB_STATE_WAITING) continue;
    if (IsDiLoCo(job.spec())) {
      if (absl::Status resumed = c->ResumeDiLoCoJobLocked(job); !resumed.ok()) {
        c->Transition(job, v1::JOB_STATE_FAILED,
                      absl::StrCat("cannot resume the rounds after a restart: ", resumed.message()))
            .IgnoreError();  // reported again at the next start
      }
      continue;
    }
    // Its workers train on without us; they re-register with it (Register).
    c->adoption_deadline_[job.id()] = clock->Now() + c->options_.lease_ttl;
    c->NoteLocked(job, absl::StrCat("the coordinator restarted; generation ", job.generation(),
                                    " goes on while its workers re-register"));
  }
  return c;
}

absl::Status Coordinator::Transition(v1::JobStatus& job, v1::JobState state,
                                     const std::string& reason) {
  LOG(INFO) << "job " << job.id() << " generation " << job.generation() << " step "
            << job.progress().step() << ": " << JobStateName(job.state()) << " -> "
            << JobStateName(state) << (reason.empty() ? "" : ": ") << reason;
  job.set_state(state);
  job.set_reason(reason);
  schedule_due_ = true;
  if (state == v1::JOB_STATE_RUNNING) *job.mutable_start_time() = NowProto();
  if (IsTerminal(state)) {
    *job.mutable_end_time() = NowProto();
    awaiting_ready_.erase(job.id());  // a join under way ends with the job
    diloco_.erase(job.id());
    for (auto& [id, w] : workers_) {
      if (w.assigned_job == job.id()) w.held.clear();
    }
  }
  RETURN_IF_ERROR(store_->UpdateJob(job));
  v1::JobEvent event;
  *event.mutable_time() = NowProto();
  event.set_state(state);
  event.set_reason(reason);
  if (state == v1::JOB_STATE_SUCCEEDED) {
    ++metrics_.jobs_succeeded;
    if (!job.spec().publish_as().empty()) publish_queue_.push_back(job.id());
  }
  if (state == v1::JOB_STATE_FAILED) ++metrics_.jobs_failed;
  if (state == v1::JOB_STATE_CANCELLED) ++metrics_.jobs_cancelled;
  return store_->AppendEvent(job.id(), event);
}

void Coordinator::NoteLocked(v1::JobStatus& job, const std::string& reason) {
  LOG(INFO) << "job " << job.id() << " generation " << job.generation() << ": " << reason;
  job.set_reason(reason);
  store_->UpdateJob(job).IgnoreError();  // the history below is the record
  AppendHistory(job, reason);
}

void Coordinator::AppendHistory(const v1::JobStatus& job, const std::string& what) {
  v1::JobEvent event;
  *event.mutable_time() = NowProto();
  event.set_state(job.state());
  event.set_reason(what);
  store_->AppendEvent(job.id(), event).IgnoreError();  // a note; the outcome was logged
}

absl::StatusOr<v1::JobStatus> Coordinator::SubmitJob(const v1::SubmitJobRequest& request) {
  RETURN_IF_ERROR(ValidateJobSpec(request.spec()));
  absl::MutexLock lock(&mu_);
  std::string id = request.job_id();
  if (!id.empty()) {
    RETURN_IF_ERROR(ValidJobId(id));
    absl::StatusOr<v1::JobStatus> existing = store_->GetJob(id);
    if (existing.ok()) return *existing;  // a retried submit: same job, not a second one
  } else {
    ASSIGN_OR_RETURN(std::vector<v1::JobStatus> jobs, store_->ListJobs());
    const std::string base = request.spec().name().empty() ? "job" : request.spec().name();
    for (size_t n = jobs.size() + 1;; ++n) {
      id = absl::StrFormat("%s-%d", base, n);
      if (!store_->GetJob(id).ok()) break;
    }
    RETURN_IF_ERROR(ValidJobId(id));
  }
  v1::JobStatus job;
  job.set_id(id);
  *job.mutable_spec() = request.spec();
  job.set_state(v1::JOB_STATE_QUEUED);
  job.set_reason("queued");
  *job.mutable_create_time() = NowProto();
  RETURN_IF_ERROR(store_->InsertJob(job));
  v1::JobEvent event;
  *event.mutable_time() = job.create_time();
  event.set_state(v1::JOB_STATE_QUEUED);
  event.set_reason("submitted");
  RETURN_IF_ERROR(store_->AppendEvent(id, event));
  ++metrics_.jobs_submitted;
  ScheduleLocked();
  return store_->GetJob(id);
}

absl::StatusOr<v1::JobStatus> Coordinator::GetJob(const std::string& id) {
  return store_->GetJob(id);
}

absl::StatusOr<std::vector<v1::JobStatus>> Coordinator::ListJobs() { return store_->ListJobs(); }

absl::StatusOr<v1::JobStatus> Coordinator::CancelJob(const std::string& id,
                                                     const std::string& reason) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(v1::JobStatus job, store_->GetJob(id));
  if (IsTerminal(job.state())) {
    return absl::FailedPreconditionError(
        absl::StrCat("job ", id, " already ended: ", JobStateName(job.state())));
  }
  RETURN_IF_ERROR(
      Transition(job, v1::JOB_STATE_CANCELLED, reason.empty() ? "cancelled by the user" : reason));
  CancelWorkersLocked(id);
  return job;
}

absl::StatusOr<v1::GetJobHistoryResponse> Coordinator::GetJobHistory(const std::string& id) {
  RETURN_IF_ERROR(store_->GetJob(id).status());
  v1::GetJobHistoryResponse history;
  ASSIGN_OR_RETURN(std::vector<v1::JobEvent> events, store_->Events(id));
  ASSIGN_OR_RETURN(std::vector<v1::Progress> progress, store_->ProgressHistory(id));
  ASSIGN_OR_RETURN(std::vector<v1::RoundInfo> rounds, store_->Rounds(id));
  for (auto& e : events) *history.add_events() = std::move(e);
  for (auto& p : progress) *history.add_progress() = std::move(p);
  for (auto& r : rounds) *history.add_rounds() = std::move(r);
  return history;
}

absl::StatusOr<v1::ListWorkersResponse> Coordinator::ListWorkers(
    const v1::ListWorkersRequest& request) {
  if (request.page_size() < 0 || request.page_size() > kMaxWorkerPageSize) {
    return absl::InvalidArgumentError(absl::StrCat("page_size: ", request.page_size(),
                                                   " is not in [0, ", kMaxWorkerPageSize, "]"));
  }
  const int size = request.page_size() == 0 ? kDefaultWorkerPageSize : request.page_size();
  v1::ListWorkersResponse page;
  absl::MutexLock lock(&mu_);
  ExpireLeasesLocked();
  for (auto it = workers_.upper_bound(request.page_token()); it != workers_.end(); ++it) {
    const v1::WorkerInfo& info = it->second.info;
    if (request.pool() != v1::WORKER_POOL_UNSPECIFIED && info.pool() != request.pool()) continue;
    if (request.state() != v1::WORKER_STATE_UNSPECIFIED && info.state() != request.state()) {
      continue;
    }
    if (page.workers_size() == size) {
      page.set_next_page_token(page.workers(size - 1).id());
      break;
    }
    *page.add_workers() = info;
  }
  return page;
}

Coordinator::WorkerCounts Coordinator::CountWorkers() {
  WorkerCounts counts;
  absl::MutexLock lock(&mu_);
  ExpireLeasesLocked();
  for (const auto& [id, w] : workers_) {
    ++counts.by_pool_and_state[{w.info.pool(), w.info.state()}];
    ++counts.total;
    if (w.info.pool() == v1::WORKER_POOL_EDGE && w.info.state() != v1::WORKER_STATE_LOST) {
      counts.edge_eligible += w.info.eligibility().eligible();
      counts.edge_preemptions += w.info.preemptions();
    }
  }
  return counts;
}

std::vector<v1::WorkerInfo> Coordinator::ListWorkers() {
  absl::MutexLock lock(&mu_);
  ExpireLeasesLocked();
  std::vector<v1::WorkerInfo> out;
  for (const auto& [id, w] : workers_) out.push_back(w.info);
  return out;
}

absl::StatusOr<v1::WorkerInfo> Coordinator::DrainWorker(const std::string& worker) {
  absl::MutexLock lock(&mu_);
  schedule_due_ = true;
  auto it = workers_.find(worker);
  if (it == workers_.end()) {
    auto named = ids_by_name_.find(worker);
    if (named != ids_by_name_.end()) it = workers_.find(named->second);
    if (it != workers_.end() && it->second.info.state() == v1::WORKER_STATE_LOST) {
      it = workers_.end();
    }
  }
  if (it == workers_.end()) {
    return absl::NotFoundError(absl::StrCat("worker ", worker, " is not registered"));
  }
  const std::string id = it->first;
  Worker& w = it->second;
  if (w.draining) return w.info;
  w.draining = true;
  v1::Directive d;
  d.set_drain(true);
  w.pending.push_back(d);
  if (w.info.state() != v1::WORKER_STATE_LOST) w.info.set_state(v1::WORKER_STATE_DRAINING);
  LOG(INFO) << "worker " << w.info.name() << " (" << id << "): draining";
  const std::string job_id = w.assigned_job;
  if (diloco_.count(job_id) > 0) {  // a replica: it stops now; the rounds go on
    v1::Directive cancel;
    cancel.set_cancel_job_id(job_id);
    w.pending.push_back(cancel);
    DropReplicaLocked(id, "drained");
    return w.info;
  }
  absl::StatusOr<v1::JobStatus> job = store_->GetJob(job_id);
  std::vector<std::string> others = MembersLocked(job_id);
  others.erase(std::remove(others.begin(), others.end(), id), others.end());
  if (job_id.empty() || !job.ok() || others.empty() || adoption_deadline_.count(job_id) > 0) {
    return w.info;  // alone (or not yet re-adopted): it finishes its job first
  }
  // It yields with its group at the next commit point and leaves.
  v1::Directive leave;
  leave.set_yield_job_id(job_id);
  w.pending.push_back(leave);
  const std::string name = w.info.name();
  const int rank = w.rank;
  w.left_job = job_id;
  SetAssignedJobLocked(w, "");
  w.rank = -1;
  w.info.clear_job_id();
  NextGenerationLocked(*job, others, absl::StrCat(name, " (rank ", rank, ") drained"),
                       /*abandon_previous=*/false);
  return workers_[id].info;
}

absl::StatusOr<v1::RegisterResponse> Coordinator::Register(const v1::RegisterRequest& request,
                                                           const security::Principal& caller) {
  RETURN_IF_ERROR(ValidRegisterRequest(request));
  if (request.pool() == v1::WORKER_POOL_UNSPECIFIED) {
    return absl::InvalidArgumentError("pool: must be WORKER_POOL_DATACENTER or WORKER_POOL_EDGE");
  }
  if (request.pool() == v1::WORKER_POOL_DATACENTER && request.peer_address().empty()) {
    return absl::InvalidArgumentError("peer_address: data-center workers must serve Peer");
  }
  ASSIGN_OR_RETURN(const std::string credential, Enroll(caller, request.name()));
  absl::MutexLock lock(&mu_);
  // A daemon that registers again under its name replaced the old one
  // (its lease ran out, or it restarted): the old entry's place in a job is
  // re-adopted below, or lost.
  std::string replaced_job;
  if (auto named = ids_by_name_.find(request.name()); named != ids_by_name_.end()) {
    if (auto it = workers_.find(named->second); it != workers_.end()) {
      if (!it->second.assigned_job.empty()) {
        replaced_job = it->second.assigned_job;
        FenceLocked(it->first, "registered again");
      }
      SetAssignedJobLocked(it->second, "");  // out of the index before it goes
      worker_index_.erase(it->first);
      workers_.erase(it);  // its entry in lease_queue_ is dropped when due
    }
    ids_by_name_.erase(named);
  }
  const std::string id = absl::StrCat("w-", security::RandomHex(8));
  Worker w;
  w.info.set_id(id);
  w.info.set_name(request.name());
  w.info.set_pool(request.pool());
  w.info.set_cores(request.cores());
  w.info.set_memory_bytes(request.memory_bytes());
  w.info.set_samples_per_second(request.samples_per_second());
  w.info.set_peer_address(request.peer_address());
  w.info.set_host_id(request.host_id());
  w.draining = request.draining();
  w.info.set_state(w.draining ? v1::WORKER_STATE_DRAINING : v1::WORKER_STATE_IDLE);
  *w.info.mutable_last_heartbeat() = NowProto();
  VLOG(1) << "worker " << request.name() << ": registered as " << id << " ("
          << v1::WorkerPool_Name(request.pool()) << ", " << request.peer_address() << ")";
  if (request.pool() != v1::WORKER_POOL_EDGE) {
    LOG(INFO) << "worker " << request.name() << ": registered as " << id << " ("
              << v1::WorkerPool_Name(request.pool()) << ", " << request.peer_address() << ")";
  }
  Worker& added = workers_[id] = std::move(w);
  worker_index_[id] = &added;
  ids_by_name_[request.name()] = id;
  RenewLeaseLocked(id, added);
  schedule_due_ = true;
  const bool edge = request.pool() == v1::WORKER_POOL_EDGE;
  v1::RegisterResponse response;
  response.set_worker_id(id);
  response.set_worker_credential(credential);
  response.set_lease_ttl_ms(absl::ToInt64Milliseconds(LeaseTtl(request.pool())));
  response.set_heartbeat_interval_ms(absl::ToInt64Milliseconds(
      edge ? options_.edge_heartbeat_interval : options_.heartbeat_interval));
  if (!request.job_id().empty()) response.set_job_adopted(AdoptLocked(id, request));
  worker_rows_.push_back(workers_[id].info);  // informational copy, written by Tick
  // A replaced member not re-adopted is lost to its job.
  if (!replaced_job.empty() && workers_[id].assigned_job != replaced_job) {
    absl::StatusOr<v1::JobStatus> job = store_->GetJob(replaced_job);
    if (job.ok() && !IsTerminal(job->state()) && adoption_deadline_.count(replaced_job) == 0 &&
        diloco_.count(replaced_job) == 0) {
      NextGenerationLocked(*job, MembersLocked(replaced_job),
                           absl::StrCat("worker ", request.name(), " restarted during the job"),
                           /*abandon_previous=*/true);
    }
  }
  return response;
}

absl::StatusOr<v1::HeartbeatResponse> Coordinator::Heartbeat(const v1::HeartbeatRequest& request,
                                                             const security::Principal& caller) {
  absl::MutexLock lock(&mu_);
  ++metrics_.heartbeats;
  ExpireLeasesLocked();
  Worker* found = FindWorkerLocked(request.worker_id());
  if (found == nullptr || found->info.state() == v1::WORKER_STATE_LOST) {
    return absl::NotFoundError(
        absl::StrCat("worker ", request.worker_id(),
                     " is not registered (or its lease ran out); register again"));
  }
  RETURN_IF_ERROR(CallerIs(caller, found->info));
  Worker& w = *found;
  RenewLeaseLocked(request.worker_id(), w);
  // What a schedule could act on (schedule_due_).
  if (request.has_eligibility() &&
      request.eligibility().eligible() != w.info.eligibility().eligible()) {
    schedule_due_ = true;
  }
  if (request.job_id() != w.info.job_id() ||
      (!w.assigned_job.empty() && request.generation() != w.generation_seen)) {
    schedule_due_ = true;
  }
  if (request.job_ready()) {  // a joiner ready (job_ready stays set for the job's length)
    auto awaiting = awaiting_ready_.find(w.assigned_job);
    if (awaiting != awaiting_ready_.end() && awaiting->second.count(request.worker_id()) > 0) {
      schedule_due_ = true;
    }
  }
  if (request.has_eligibility()) {
    *w.info.mutable_eligibility() = request.eligibility();
    BoundReason(*w.info.mutable_eligibility()->mutable_reason());
  }
  *w.info.mutable_last_heartbeat() = NowProto();
  if (request.samples_per_second() > 0) w.info.set_samples_per_second(request.samples_per_second());
  w.info.set_preemptions(request.preemptions());
  // Directives the worker applied are delivered; the rest go again below.
  w.pending.erase(std::remove_if(w.pending.begin(), w.pending.end(),
                                 [&](const v1::Directive& d) {
                                   return d.sequence() != 0 &&
                                          d.sequence() <= request.directives_applied();
                                 }),
                  w.pending.end());
  // 4. Released: the job it was given is no longer running there.
  const bool assignment_pending = std::any_of(
      w.pending.begin(), w.pending.end(), [](const v1::Directive& d) { return d.has_assign(); });
  if (!w.assigned_job.empty() && !assignment_pending && request.job_id() != w.assigned_job &&
      diloco_.count(w.assigned_job) > 0) {
    DropReplicaLocked(request.worker_id(), "it ended its part");
  }
  if (!w.assigned_job.empty() && !assignment_pending && request.job_id() != w.assigned_job) {
    const std::string released = w.assigned_job;
    w.released_job = released;
    SetAssignedJobLocked(w, "");
    w.rank = -1;
    // Every member gone quietly (say, all finished a generation that a
    // drain had just replaced, and no `finished` came): never a silent stall.
    absl::StatusOr<v1::JobStatus> job = store_->GetJob(released);
    const bool finishing = std::any_of(workers_.begin(), workers_.end(), [&](const auto& e) {
      return e.second.left_job == released && e.second.info.state() != v1::WORKER_STATE_LOST;
    });
    if (job.ok() && !IsTerminal(job->state()) && job->state() != v1::JOB_STATE_QUEUED &&
        MembersLocked(released).empty() && adoption_deadline_.count(released) == 0 && !finishing) {
      FailJobLocked(released,
                    absl::StrCat("every worker left the job; the last was ", w.info.name(),
                                 " (lost: ", absl::StrJoin(lost_workers_[released], ", "), ")"));
    }
  }
  if (!w.assigned_job.empty() && request.job_id() == w.assigned_job) {
    w.generation_seen = request.generation();
    // A joiner ready: once all are, the members get their assignments.
    auto awaiting = awaiting_ready_.find(w.assigned_job);
    if (request.job_ready() && awaiting != awaiting_ready_.end() &&
        awaiting->second.erase(request.worker_id()) > 0 && awaiting->second.empty()) {
      const std::string job_id = w.assigned_job;
      awaiting_ready_.erase(awaiting);
      for (const std::string& id : MembersLocked(job_id)) {
        Worker& member = workers_[id];
        for (v1::Directive& d : member.held) member.pending.push_back(std::move(d));
        member.held.clear();
      }
    }
  }
  w.info.set_job_id(w.assigned_job);
  const v1::WorkerState state = w.draining               ? v1::WORKER_STATE_DRAINING
                                : w.assigned_job.empty() ? v1::WORKER_STATE_IDLE
                                                         : v1::WORKER_STATE_BUSY;
  if (state != w.info.state()) schedule_due_ = true;
  w.info.set_state(state);
  if (schedule_due_) ScheduleLocked();
  v1::HeartbeatResponse response;
  for (v1::Directive& d : w.pending) {
    if (d.sequence() == 0) d.set_sequence(++w.directives_sent);
    *response.add_directives() = d;
  }
  for (v1::ModelVersion& v : models_->Newer(request.followed_models())) {
    *response.add_model_updates() = std::move(v);
  }
  return response;
}

absl::Status Coordinator::ReportProgress(const v1::ReportProgressRequest& request,
                                         const security::Principal& caller) {
  absl::MutexLock lock(&mu_);
  // An end, an error or a survivors' report may free workers (the state
  // changes below set it too); plain progress changes nothing to schedule.
  if (request.finished() || !request.error().empty()) schedule_due_ = true;
  auto it = workers_.find(request.worker_id());
  if (it == workers_.end()) {
    return absl::NotFoundError(absl::StrCat("worker ", request.worker_id(), " is not registered"));
  }
  RETURN_IF_ERROR(CallerIs(caller, it->second.info));
  ASSIGN_OR_RETURN(v1::JobStatus job, store_->GetJob(request.job_id()));
  if (IsTerminal(job.state())) return absl::OkStatus();  // a late report of a job that ended
  if (diloco_.count(job.id()) > 0) return ReplicaReportLocked(job, it->second, request);
  if (request.generation() != job.generation()) {
    // Errors of an older generation are what the newer one recovers from;
    // its progress, or its rank 0 finishing the job just as the next
    // generation formed, still counts if that worker is a member.
    const bool member = it->second.assigned_job == job.id() || it->second.left_job == job.id();
    if (!member || request.generation() > job.generation() || !request.error().empty()) {
      return absl::OkStatus();
    }
  }
  if (!request.error().empty()) {
    Worker& w = it->second;
    if (w.assigned_job != job.id()) return absl::OkStatus();  // fenced or left: not ours
    auto joining = awaiting_ready_.find(job.id());
    if (joining != awaiting_ready_.end() && joining->second.count(w.info.id()) > 0) {
      // A joiner that failed before it was ready: the members go on.
      const std::string why = absl::StrCat(w.info.name(), " failed to join: ", request.error());
      FenceLocked(w.info.id(), "failed to join");
      NextGenerationLocked(job, MembersLocked(job.id()), why, /*abandon_previous=*/false);
      return absl::OkStatus();
    }
    if (job.state() == v1::JOB_STATE_WAITING && request.lost_ranks_size() == 0) {
      return absl::OkStatus();  // the members hold the model; joins or the deadline decide
    }
  }
  if (!request.error().empty() && request.lost_ranks_size() > 0 &&
      (job.state() == v1::JOB_STATE_RUNNING || job.state() == v1::JOB_STATE_WAITING)) {
    RegroupLocked(job, request);
    return absl::OkStatus();
  }
  if (!request.error().empty()) {
    FailJobLocked(job.id(), absl::StrCat("worker ", it->second.info.name(), " (rank ",
                                         it->second.rank, "): ", request.error()));
    return absl::OkStatus();
  }
  if (request.has_progress()) {
    *job.mutable_progress() = request.progress();
    RETURN_IF_ERROR(store_->UpdateJob(job));
    RETURN_IF_ERROR(store_->AppendProgress(job.id(), request.progress()));
  }
  if (request.finished()) {
    RETURN_IF_ERROR(
        Transition(job, v1::JOB_STATE_SUCCEEDED,
                   absl::StrFormat("finished %d steps, test accuracy %.2f%%", job.progress().step(),
                                   100 * job.progress().test_accuracy())));
    CancelWorkersLocked(job.id());  // a next generation that was forming ends here
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::CheckpointInfo> Coordinator::StoreCheckpoint(const std::string& worker_id,
                                                                const std::string& job_id,
                                                                int64_t step, bool final,
                                                                const std::string& bytes,
                                                                const security::Principal& caller) {
  {
    absl::MutexLock lock(&mu_);
    auto it = workers_.find(worker_id);
    if (it != workers_.end()) RETURN_IF_ERROR(CallerIs(caller, it->second.info));
  }
  // The caller first, then the bytes, outside the lock: parsing a large
  // upload never delays a heartbeat.
  ASSIGN_OR_RETURN(const v1::JobStatus stored, store_->GetJob(job_id));
  if (absl::Status valid = CheckUpload(stored.spec(), final, bytes); !valid.ok()) {
    LOG(WARNING) << "job " << job_id << ": refused an upload from " << worker_id << ": "
                 << valid.message();
    return valid;
  }
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(worker_id);
  if (it == workers_.end()) {  // (a restarted coordinator, before it registers again)
    return absl::NotFoundError(absl::StrCat("worker ", worker_id, " is not registered"));
  }
  RETURN_IF_ERROR(CallerIs(caller, it->second.info));
  if (it->second.assigned_job != job_id && !(final && it->second.left_job == job_id)) {
    return absl::FailedPreconditionError(
        absl::StrCat("worker ", worker_id, " is not running job ", job_id));
  }
  ASSIGN_OR_RETURN(v1::JobStatus job, store_->GetJob(job_id));
  const std::string dir = absl::StrCat(options_.state_dir, "/checkpoints/", job_id);
  RETURN_IF_ERROR(MakeDirectories(dir));
  const std::string path =
      PathIn(dir, final ? std::string(kModelFileName) : CheckpointFileName(step));
  {
    std::ofstream out(path + ".tmp", std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), bytes.size());
    if (!out) return absl::DataLossError(absl::StrCat(path, ": write failed"));
  }
  if (std::rename((path + ".tmp").c_str(), path.c_str()) != 0) {
    return absl::DataLossError(absl::StrCat(path, ": rename failed"));
  }
  v1::CheckpointInfo info;
  info.set_step(step);
  info.set_path(path);
  info.set_size_bytes(static_cast<int64_t>(bytes.size()));
  *info.mutable_time() = NowProto();
  *job.add_checkpoints() = info;
  RETURN_IF_ERROR(store_->UpdateJob(job));
  return info;
}

absl::StatusOr<std::string> Coordinator::CheckpointPath(const std::string& job_id, int64_t step) {
  ASSIGN_OR_RETURN(v1::JobStatus job, store_->GetJob(job_id));
  for (const v1::CheckpointInfo& c : job.checkpoints()) {
    if (c.step() == step && !IsModelFile(c.path())) return c.path();
  }
  return absl::NotFoundError(absl::StrCat("job ", job_id, " has no checkpoint at step ", step));
}

absl::StatusOr<std::string> Coordinator::ModelPath(const std::string& job_id) {
  ASSIGN_OR_RETURN(v1::JobStatus job, store_->GetJob(job_id));
  for (int i = job.checkpoints_size() - 1; i >= 0; --i) {
    const std::string& p = job.checkpoints(i).path();
    if (IsModelFile(p)) return p;
  }
  return absl::FailedPreconditionError(
      absl::StrCat("job ", job_id, " has no exported model yet (", JobStateName(job.state()), ")"));
}

void Coordinator::Tick() {
  std::vector<v1::WorkerInfo> rows;
  {
    absl::MutexLock lock(&mu_);
    ExpireLeasesLocked();
    ExpireWaitsLocked();
    CloseRoundsLocked();
    ScheduleLocked();
    rows.swap(worker_rows_);
  }
  store_->PutWorkers(rows).IgnoreError();  // informational copies
}

absl::StatusOr<v1::ModelVersion> Coordinator::PublishModel(const v1::PublishModelRequest& request) {
  RETURN_IF_ERROR(ValidateModelName(request.model_name(), "model_name"));
  ASSIGN_OR_RETURN(v1::JobStatus job, store_->GetJob(request.job_id()));
  std::string path;
  if (job.state() == v1::JOB_STATE_SUCCEEDED) {
    ASSIGN_OR_RETURN(path, ModelPath(job.id()));
  }
  ASSIGN_OR_RETURN(ModelRegistry::Published published,
                   models_->Publish(job, request.model_name(), path, clock_->Now()));
  const v1::ModelVersion& v = published.version;
  if (published.created) {
    LOG(INFO) << "job " << job.id() << ": published as model " << v.name() << " v" << v.version();
    AppendHistory(job, absl::StrCat("published as model ", v.name(), " version ", v.version(),
                                    " (sha256 ", v.sha256().substr(0, 12), "...)"));
    absl::MutexLock lock(&mu_);
    ++metrics_.models_published;
  }
  return v;
}

void Coordinator::PublishQueued() {
  std::vector<std::string> queue;
  {
    absl::MutexLock lock(&mu_);
    queue.swap(publish_queue_);
  }
  for (const std::string& id : queue) {
    absl::StatusOr<v1::JobStatus> job = store_->GetJob(id);
    if (!job.ok()) continue;
    v1::PublishModelRequest request;
    request.set_job_id(id);
    request.set_model_name(job->spec().publish_as());
    absl::StatusOr<v1::ModelVersion> v = PublishModel(request);
    if (!v.ok()) {
      LOG(WARNING) << "job " << id << ": not published as " << request.model_name() << ": "
                   << v.status();
      AppendHistory(*job, absl::StrCat("not published as model ", request.model_name(), ": ",
                                       v.status().message()));
      // A write that failed (a full disk) is tried again; a model that does
      // not check never will be.
      if (v.status().code() == absl::StatusCode::kDataLoss ||
          v.status().code() == absl::StatusCode::kUnavailable) {
        absl::MutexLock lock(&mu_);
        publish_queue_.push_back(id);
      }
    }
  }
}

CoordinatorMetrics Coordinator::metrics() {
  absl::MutexLock lock(&mu_);
  return metrics_;
}

void Coordinator::SetAssignedJobLocked(Worker& w, const std::string& job) {
  if (w.assigned_job == job) return;
  if (!w.assigned_job.empty()) {
    auto it = workers_by_job_.find(w.assigned_job);
    if (it != workers_by_job_.end()) {
      it->second.erase(w.info.id());
      if (it->second.empty()) workers_by_job_.erase(it);
    }
  }
  w.assigned_job = job;
  if (!job.empty()) workers_by_job_[job].insert(w.info.id());
}

Coordinator::Worker* Coordinator::FindWorkerLocked(const std::string& id) {
  auto it = worker_index_.find(id);
  return it == worker_index_.end() ? nullptr : it->second;
}

void Coordinator::RenewLeaseLocked(const std::string& id, Worker& w) {
  w.lease_expiry = clock_->Now() + LeaseTtl(w.info.pool());
  if (!w.lease_queued) lease_queue_.emplace(w.lease_expiry, id);
  w.lease_queued = true;
}

void Coordinator::ExpireLeasesLocked() {
  const absl::Time now = clock_->Now();
  std::vector<std::string> expired;
  while (!lease_queue_.empty() && lease_queue_.top().first <= now) {
    const std::string id = lease_queue_.top().second;
    lease_queue_.pop();
    Worker* found = FindWorkerLocked(id);
    if (found == nullptr) continue;  // registered again under another id
    if (found->info.state() == v1::WORKER_STATE_LOST) {
      found->lease_queued = false;
      continue;
    }
    if (now < found->lease_expiry) {  // renewed since: due again at its expiry
      lease_queue_.emplace(found->lease_expiry, id);
      continue;
    }
    found->lease_queued = false;
    const Worker& w = *found;
    LOG(WARNING) << "worker " << w.info.name() << " (" << id << "): lease expired"
                 << (w.assigned_job.empty() ? "" : " during job ") << w.assigned_job;
    ++metrics_.leases_expired;
    expired.push_back(id);
    found->info.set_state(v1::WORKER_STATE_LOST);
  }
  if (!expired.empty()) schedule_due_ = true;
  for (const std::string& id : expired) {
    Worker& w = workers_[id];
    const std::string job_id = w.assigned_job;
    const std::string why =
        absl::StrCat(w.info.name(), " (rank ", w.rank, ") lost its lease: no heartbeat for ",
                     absl::FormatDuration(LeaseTtl(w.info.pool())));
    FenceLocked(id, "lease expired");  // a replica's place in its round is freed too
    absl::StatusOr<v1::JobStatus> job = store_->GetJob(job_id);
    if (job_id.empty() || !job.ok() || IsTerminal(job->state()) ||
        adoption_deadline_.count(job_id) > 0 || diloco_.count(job_id) > 0) {
      continue;
    }
    const int64_t generation = job->generation();
    NextGenerationLocked(*job, MembersLocked(job_id), why, /*abandon_previous=*/true);
    if (job->generation() > generation) ++metrics_.recoveries;
  }
}

void Coordinator::FailJobLocked(const std::string& job_id, const std::string& reason) {
  absl::StatusOr<v1::JobStatus> job = store_->GetJob(job_id);
  if (!job.ok() || IsTerminal(job->state())) return;
  Transition(*job, v1::JOB_STATE_FAILED, reason).IgnoreError();  // already failing
  CancelWorkersLocked(job_id);
}

void Coordinator::CancelWorkersLocked(const std::string& job_id) {
  for (auto& [id, w] : workers_) {
    if (w.assigned_job != job_id) continue;
    // An assignment not yet sent is simply withdrawn; one sent may have
    // arrived (its reply may be lost, or the ack still on its way): it is
    // not sent again, and a cancel follows it.
    auto assigned = std::find_if(w.pending.begin(), w.pending.end(), [&](const v1::Directive& d) {
      return d.has_assign() && d.assign().job_id() == job_id;
    });
    if (assigned != w.pending.end()) {
      const bool sent = assigned->sequence() != 0;
      w.pending.erase(assigned);
      if (!sent) {
        SetAssignedJobLocked(w, "");
        w.info.clear_job_id();
        w.info.set_state(v1::WORKER_STATE_IDLE);
        continue;
      }
    }
    v1::Directive d;
    d.set_cancel_job_id(job_id);
    w.pending.push_back(d);
  }
}

std::vector<std::string> Coordinator::AssignGenerationLocked(v1::JobStatus& job,
                                                             const std::vector<std::string>& ids,
                                                             int64_t start_step,
                                                             bool resume_in_memory,
                                                             bool abandon_previous) {
  job.set_generation(job.generation() + 1);
  ++metrics_.generations;
  awaiting_ready_.erase(job.id());  // a join under way is superseded
  job.clear_workers();
  std::vector<std::string> names;
  double total_rate = 0;
  for (const std::string& id : ids) {
    total_rate += std::max(workers_[id].info.samples_per_second(), 1.0);
  }
  v1::Assignment base;
  base.set_job_id(job.id());
  *base.mutable_spec() = job.spec();
  base.set_generation(job.generation());
  base.set_world_size(static_cast<int>(ids.size()));
  base.set_start_step(start_step);
  base.set_resume_in_memory(resume_in_memory);
  if (!resume_in_memory && start_step > 0) base.set_resume_checkpoint_step(start_step);
  base.set_abandon_previous(abandon_previous);
  base.set_group_key(security::RandomHex(32));
  for (const std::string& id : ids) {
    const v1::WorkerInfo& info = workers_[id].info;
    base.add_peer_addresses(info.peer_address());
    base.add_peer_host_ids(info.host_id());
    base.add_shard_weights(std::max(info.samples_per_second(), 1.0) / total_rate);
    names.push_back(info.name());
    job.add_workers(info.name());
  }
  QueueGenerationLocked(ids, base);
  return names;
}

void Coordinator::QueueGenerationLocked(const std::vector<std::string>& ids,
                                        const v1::Assignment& base) {
  for (size_t r = 0; r < ids.size(); ++r) {
    Worker& w = workers_[ids[r]];
    SetAssignedJobLocked(w, base.job_id());
    w.rank = static_cast<int>(r);
    w.info.set_job_id(base.job_id());
    w.info.set_state(w.draining ? v1::WORKER_STATE_DRAINING : v1::WORKER_STATE_BUSY);
    // An older generation not yet applied there is replaced by this one.
    w.held.clear();
    w.pending.erase(std::remove_if(w.pending.begin(), w.pending.end(),
                                   [&](const v1::Directive& p) {
                                     return p.has_assign() && p.assign().job_id() == base.job_id();
                                   }),
                    w.pending.end());
    v1::Directive d;
    *d.mutable_assign() = base;
    d.mutable_assign()->set_rank(static_cast<int>(r));
    w.pending.push_back(std::move(d));
  }
}

void Coordinator::ScheduleLocked() {
  ++metrics_.schedules;
  absl::StatusOr<std::vector<v1::JobStatus>> queued = store_->ListJobsInState(v1::JOB_STATE_QUEUED);
  if (queued.ok()) {
    // Diloco jobs start without workers: their replicas come as they may.
    auto diloco = std::stable_partition(queued->begin(), queued->end(),
                                        [](const v1::JobStatus& j) { return !IsDiLoCo(j.spec()); });
    for (auto it = diloco; it != queued->end(); ++it) StartDiLoCoJobLocked(*it);
    queued->erase(diloco, queued->end());
  }
  if (!queued.ok() || queued->empty()) {
    GrowJobsLocked();
    AssignReplicasLocked();
    schedule_due_ = false;
    return;
  }
  std::vector<FreeWorker> free;
  for (const auto& [id, w] : workers_) {
    if (w.info.state() != v1::WORKER_STATE_LOST && !w.draining && w.assigned_job.empty()) {
      free.push_back({id, w.info.pool(), w.info.samples_per_second()});
    }
  }
  for (const Placement& p : PlanPlacements(*queued, free)) {
    absl::StatusOr<v1::JobStatus> job = store_->GetJob(p.job_id);
    if (!job.ok()) continue;
    std::vector<std::string> ids;
    for (const FreeWorker& f : p.workers) ids.push_back(f.id);
    // Queued again (every worker and the coordinator were lost): from the
    // latest uploaded checkpoint.
    int64_t from = 0;
    for (const v1::CheckpointInfo& c : job->checkpoints()) {
      if (!IsModelFile(c.path())) from = std::max(from, c.step());
    }
    const std::vector<std::string> names = AssignGenerationLocked(*job, ids, from, false, false);
    Transition(
        *job, v1::JOB_STATE_RUNNING,
        absl::StrCat("started on ", names.size(), " worker", names.size() > 1 ? "s" : "", ": ",
                     absl::StrJoin(names, ", "), " (generation ", job->generation(), ")",
                     from > 0 ? absl::StrCat(", from the checkpoint at step ", from) : ""))
        .IgnoreError();  // the job stays QUEUED in the store if this fails
  }
  GrowJobsLocked();
  AssignReplicasLocked();
  schedule_due_ = false;
}

}  // namespace nightshift::coordinator
