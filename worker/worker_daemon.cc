#include "worker/worker_daemon.h"

#include <unistd.h>

#include <chrono>

#include "absl/strings/str_cat.h"
#include "base/filesystem.h"
#include "base/status_macros.h"
#include "collective/communicator.h"
#include "glog/logging.h"
#include "kernels/model.h"
#include "kernels/random.h"
#include "kernels/threads.h"
#include "spec/defaults.h"
#include "worker/trainer.h"

namespace nightshift {
namespace {

// How often a job's rank 0 reports progress: each report is a collective
// on every rank and a database write on the coordinator, and one every few
// steps costs a synchronous job on a busy machine ~10% of its throughput.
constexpr absl::Duration kProgressPeriod = absl::Milliseconds(500);
// How much longer than the job's wait_for_workers_seconds members wait
// for its next generation: the coordinator answers a survivors' report at
// once, or within a heartbeat, and cancels the job when the wait ends.
constexpr absl::Duration kNextGenerationMargin = absl::Seconds(30);
// How long a report of the running job is retried while the coordinator
// does not know this worker (it restarted; the worker registers again).
constexpr absl::Duration kReregistrationWait = absl::Seconds(10);
// Progress reports queued while the coordinator is unreachable.
constexpr size_t kMaxQueuedReports = 1000;
// Each wait between heartbeats is the interval times 1 ± this (uniform).
constexpr double kHeartbeatJitter = 0.1;
// The shortest heartbeat interval a coordinator may ask for.
constexpr absl::Duration kMinHeartbeatInterval = absl::Milliseconds(100);

// Samples/s of one training step of the Fashion-MNIST MLP at batch 64:
// the rate the coordinator splits batches by until jobs measure their own.
double MeasureComputeRate() {
  v1::ModelSpec spec;
  spec.add_layers()->mutable_dense()->set_units(512);
  spec.add_layers()->mutable_relu();
  spec.add_layers()->mutable_dense()->set_units(256);
  spec.add_layers()->mutable_relu();
  spec.add_layers()->mutable_dense()->set_units(10);
  auto model = Model::Create(spec, {784}, 1);
  if (!model.ok()) return 1;
  Tensor x({64, 784});
  std::vector<int32_t> labels(64, 3);
  Rng rng({1});
  for (float& v : x.span()) v = static_cast<float>(rng.Uniform());
  (*model)->ComputeGradients(x, labels, 1.f);  // creates the primitives
  const auto start = std::chrono::steady_clock::now();
  int steps = 0;
  double seconds = 0;
  while (seconds < 0.2) {
    (*model)->ComputeGradients(x, labels, 1.f);
    ++steps;
    seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  return 64.0 * steps / seconds;
}

}  // namespace

WorkerDaemon::WorkerDaemon(WorkerOptions options, CoordinatorClient* coordinator,
                           GroupTransports* transports, Clock* clock)
    : options_(std::move(options)),
      coordinator_(coordinator),
      transports_(transports),
      clock_(clock) {}

WorkerDaemon::~WorkerDaemon() {
  if (!stop_.HasBeenNotified()) stop_.Notify();  // no report waits for a coordinator now
  CancelCurrentJob("cancelled: the worker is stopping");
  if (job_thread_.joinable()) job_thread_.join();
  WaitForQueuedReports();
}

std::string WorkerDaemon::worker_id() const {
  absl::MutexLock lock(&mu_);
  return worker_id_;
}

std::string WorkerDaemon::current_job() const {
  absl::MutexLock lock(&mu_);
  return current_.id;
}

bool WorkerDaemon::AwaitNoJob(absl::Time deadline) const {
  absl::MutexLock lock(&mu_);
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return current_.id.empty(); };
  return mu_.AwaitWithDeadline(absl::Condition(&idle), deadline);
}

absl::Status WorkerDaemon::Run() {
  SetComputeThreads(options_.threads);
  while (!stop_.HasBeenNotified()) {
    RETURN_IF_ERROR(Tick());
    {
      absl::MutexLock lock(&leave_mu_);
      if (leave_deadline_.has_value() &&
          (current_job().empty() || absl::Now() >= *leave_deadline_)) {
        LOG(INFO) << "worker " << options_.name << ": leaving"
                  << (current_job().empty() ? "" : " (the grace period is over)");
        if (!stop_.HasBeenNotified()) stop_.Notify();  // ends report retries too
        return absl::OkStatus();
      }
    }
    // Jittered (±kHeartbeatJitter), so a fleet's heartbeats do not march
    // in step after an outage.
    const double jitter = 1 + kHeartbeatJitter * (2 * absl::Uniform<double>(jitter_rng_, 0, 1) - 1);
    const absl::Time due =
        clock_->Now() + (unreachable_ ? options_.retry_interval : jitter * heartbeat_interval_);
    absl::MutexLock lock(&wake_mu_);
    auto woken = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(wake_mu_) { return wake_; };
    wake_mu_.AwaitWithTimeout(absl::Condition(&woken), due - clock_->Now());
    wake_ = false;
  }
  return absl::OkStatus();
}

void WorkerDaemon::Leave(absl::Duration grace) {
  {
    absl::MutexLock lock(&leave_mu_);
    if (leave_deadline_.has_value()) return;
    leave_deadline_ = absl::Now() + grace;
  }
  LOG(INFO) << "worker " << options_.name << ": leaving within " << absl::FormatDuration(grace);
  Wake();
}

std::string WorkerDaemon::JobWorkerId(const std::string& job_id,
                                      const std::string& fallback) const {
  absl::MutexLock lock(&mu_);
  return current_.id == job_id && !current_.worker_id.empty() ? current_.worker_id : fallback;
}

// 1. Registration.
absl::Status WorkerDaemon::RegisterOnce() {
  if (rate_ == 0) {
    rate_ = options_.compute_rate > 0 ? options_.compute_rate : MeasureComputeRate();
    rate_ /= options_.simulated_slowdown;
  }
  v1::RegisterRequest request;
  request.set_name(options_.name);
  request.set_pool(options_.pool);
  request.set_cores(static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN)));
  request.set_memory_bytes(static_cast<int64_t>(sysconf(_SC_PHYS_PAGES)) * sysconf(_SC_PAGE_SIZE));
  request.set_samples_per_second(rate_);
  request.set_draining(draining_);
  if (transports_ != nullptr) {
    request.set_peer_address(transports_->peer_address());
    request.set_host_id(transports_->host_id());
  }
  {
    absl::MutexLock lock(&mu_);
    if (current_.cancel != nullptr && !current_.cancel->load()) {  // step 2: mid-job
      request.set_job_id(current_.id);
      request.set_generation(current_.generation);
      request.set_rank(current_.rank);
    }
  }
  absl::StatusOr<v1::RegisterResponse> response = coordinator_->Register(request);
  if (!response.ok()) {
    if (!IsUnreachable(response.status())) return response.status();  // refused: no retry
    unreachable_ = true;
    LOG(WARNING) << "worker " << options_.name
                 << ": coordinator unreachable: " << response.status().message();
    return absl::OkStatus();
  }
  unreachable_ = false;
  heartbeat_interval_ =
      std::max(kMinHeartbeatInterval, absl::Milliseconds(response->heartbeat_interval_ms()));
  {
    absl::MutexLock lock(&mu_);
    worker_id_ = response->worker_id();
    directives_applied_ = 0;  // numbered afresh for each worker id
    if (!request.job_id().empty() && current_.id == request.job_id()) {
      if (response->job_adopted()) {
        current_.worker_id = worker_id_;
      } else {
        CancelLocked("cancelled: fenced out of the job (a later generation runs without us)");
      }
    }
  }
  LOG(INFO) << "worker " << options_.name << ": registered as " << response->worker_id() << " ("
            << static_cast<int>(rate_) << " samples/s)"
            << (request.job_id().empty()
                    ? ""
                    : absl::StrCat(response->job_adopted() ? ", goes on with job " : ", left job ",
                                   request.job_id()));
  drain_sent_ = draining_;
  {
    // A replica backing off from a coordinator that was away tries again now.
    absl::MutexLock lock(&eligibility_mu_);
    ++replica_wakeups_;
  }
  return absl::OkStatus();
}

absl::Status WorkerDaemon::Tick() {
  v1::HeartbeatRequest request;
  {
    absl::MutexLock lock(&mu_);
    request.set_worker_id(worker_id_);
    request.set_job_id(current_.id);
    request.set_generation(current_.generation);
    request.set_job_ready(current_.ready);
    request.set_directives_applied(directives_applied_);
  }
  if (request.worker_id().empty()) return RegisterOnce();
  if (options_.eligibility) *request.mutable_eligibility() = options_.eligibility();
  if (options_.followed_models) {
    for (v1::FollowedModel& f : options_.followed_models()) {
      *request.add_followed_models() = std::move(f);
    }
  }
  request.set_preemptions(preemptions_.load());
  {
    absl::MutexLock lock(&leave_mu_);
    if (leave_deadline_.has_value()) draining_ = true;
  }
  if (draining_ && !drain_sent_) {  // step 7
    absl::StatusOr<v1::WorkerInfo> drained = coordinator_->DrainWorker(request.worker_id());
    if (drained.ok()) {
      drain_sent_ = true;
    } else {
      LOG(WARNING) << "worker " << options_.name << ": drain refused: " << drained.status();
    }
  }
  // 2.
  absl::StatusOr<v1::HeartbeatResponse> response = coordinator_->Heartbeat(request);
  if (response.status().code() == absl::StatusCode::kNotFound) {
    LOG(WARNING) << "worker " << options_.name << ": lease lost (" << response.status().message()
                 << "); registering again";
    {
      absl::MutexLock lock(&mu_);
      worker_id_.clear();
    }
    return RegisterOnce();
  }
  // 3.
  if (!response.ok()) {
    unreachable_ = IsUnreachable(response.status());
    LOG(WARNING) << "worker " << options_.name << ": heartbeat failed: " << response.status();
    return absl::OkStatus();
  }
  unreachable_ = false;
  if (options_.on_model_updates && response->model_updates_size() > 0) {
    options_.on_model_updates(response->model_updates());
  }
  // 4.
  for (const v1::Directive& d : response->directives()) {
    if (d.sequence() != 0) {
      absl::MutexLock lock(&mu_);
      if (request.worker_id() != worker_id_ || d.sequence() <= directives_applied_) continue;
      directives_applied_ = d.sequence();
    }
    Apply(d);
  }
  return absl::OkStatus();
}

WorkerDaemon::CommunicatorUnregister::~CommunicatorUnregister() {
  absl::MutexLock lock(&daemon->mu_);
  daemon->current_.communicator = nullptr;
}

void WorkerDaemon::Apply(const v1::Directive& d) {
  if (d.has_assign()) {
    {
      absl::MutexLock lock(&mu_);
      if (current_.id == d.assign().job_id() && d.assign().generation() > current_.generation &&
          current_.cancel != nullptr && !current_.cancel->load()) {
        // The next generation of the job running here: its thread yields
        // at the next commit point (step 6) and regroups.
        LOG(INFO) << "job " << current_.id << ": generation " << d.assign().generation()
                  << " comes; rank " << current_.rank << " -> " << d.assign().rank()
                  << (d.assign().abandon_previous() ? ", abandoning generation " : ", yielding ")
                  << current_.generation;
        current_.generation = d.assign().generation();
        current_.rank = d.assign().rank();
        current_.next_generation = d.assign();
        if (current_.yield != nullptr) current_.yield->store(true);
        if (d.assign().abandon_previous() && current_.communicator != nullptr) {
          current_.communicator->Interrupt(
              absl::AbortedError(absl::StrCat("generation ", d.assign().generation(), " of job ",
                                              current_.id, " was formed without a fenced member")));
        }
        return;
      }
    }
    if (draining_) {
      LOG(INFO) << "worker " << options_.name << ": draining, not taking job "
                << d.assign().job_id();
      return;
    }
    StartJob(d.assign());
  } else if (!d.cancel_job_id().empty()) {
    absl::MutexLock lock(&mu_);
    if (current_.id == d.cancel_job_id()) CancelLocked("cancelled by the coordinator");
  } else if (d.drain()) {
    LOG(INFO) << "worker " << options_.name << ": draining";
    draining_ = true;
    drain_sent_ = true;
  } else if (!d.yield_job_id().empty()) {
    absl::MutexLock lock(&mu_);
    if (current_.id == d.yield_job_id() && current_.yield != nullptr) current_.yield->store(true);
  }
}

void WorkerDaemon::CancelLocked(const std::string& why) {
  if (current_.cancel == nullptr) return;
  LOG(INFO) << "job " << current_.id << " generation " << current_.generation << ": " << why;
  current_.cancel->store(true);
  compute_stop_.store(true);  // a replica's round stops at its next micro-batch
  if (current_.communicator != nullptr) {
    current_.communicator->Interrupt(
        absl::CancelledError(absl::StrCat("job ", current_.id, " ", why)));
  }
}

void WorkerDaemon::CancelCurrentJob(const std::string& why) {
  absl::MutexLock lock(&mu_);
  CancelLocked(why);
}

void WorkerDaemon::StartJob(const v1::Assignment& assignment) {
  if (job_thread_.joinable()) job_thread_.join();  // the previous job has ended
  auto cancelled = std::make_shared<std::atomic<bool>>(false);
  std::string worker_id;
  {
    absl::MutexLock lock(&mu_);
    current_ = Job{};
    current_.id = assignment.job_id();
    current_.generation = assignment.generation();
    current_.rank = assignment.rank();
    current_.worker_id = worker_id_;
    current_.cancel = cancelled;
    current_.yield = std::make_shared<std::atomic<bool>>(false);
    worker_id = worker_id_;
  }
  LOG(INFO) << "job " << assignment.job_id() << " generation " << assignment.generation()
            << " rank " << assignment.rank() << ": starting, " << assignment.world_size()
            << " ranks";
  job_thread_ = std::thread(
      [this, assignment, worker_id, cancelled] { RunJob(assignment, worker_id, cancelled); });
}

void WorkerDaemon::ReportLater(v1::ReportProgressRequest request) {
  absl::MutexLock lock(&report_mu_);
  // Behind (the coordinator is away or slows this worker down): a plain
  // progress report replaces the one still waiting before it, so a fast
  // job never queues more than the coordinator takes, and `finished` or an
  // error is never stuck behind stale progress.
  auto progress_only = [](const v1::ReportProgressRequest& r) {
    return r.error().empty() && !r.finished() && r.lost_ranks_size() == 0;
  };
  if (!reports_.empty() && progress_only(request) && progress_only(reports_.back()) &&
      reports_.back().job_id() == request.job_id() &&
      reports_.back().generation() == request.generation()) {
    reports_.back() = std::move(request);
    return;
  }
  reports_.push_back(std::move(request));
  if (reports_.size() > kMaxQueuedReports) {
    reports_.pop_front();  // the coordinator is away: the oldest progress goes
  }
  if (reporting_) return;  // the reporter thread will pick it up
  reporting_ = true;
  if (reporter_.joinable()) reporter_.join();  // it has returned: reporting_ was false
  reporter_ = std::thread([this] { ReportQueued(); });
}

void WorkerDaemon::ReportQueued() {
  while (true) {
    v1::ReportProgressRequest next;
    {
      absl::MutexLock lock(&report_mu_);
      if (reports_.empty()) {
        reporting_ = false;
        return;
      }
      next = std::move(reports_.front());
      reports_.pop_front();
    }
    Report(next);
  }
}

void WorkerDaemon::WaitForQueuedReports() {
  std::thread reporter;
  {
    absl::MutexLock lock(&report_mu_);
    auto idle = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(report_mu_) { return !reporting_; };
    report_mu_.Await(absl::Condition(&idle));
    reporter = std::move(reporter_);
  }
  if (reporter.joinable()) reporter.join();
}

absl::Status WorkerDaemon::CallUntilItLands(const std::function<absl::Status()>& call,
                                            const std::atomic<bool>* cancelled,
                                            absl::Time unknown_until) {
  absl::Duration backoff = absl::Milliseconds(100);
  while (true) {
    const absl::Status s = call();
    // Unreachable, rate-limited ("slow down"), or not known yet after a
    // coordinator restart: try again.
    const bool retry = IsUnreachable(s) || absl::IsResourceExhausted(s) ||
                       (absl::IsNotFound(s) && absl::Now() < unknown_until);
    if (s.ok() || !retry || stop_.HasBeenNotified() ||
        (cancelled != nullptr && cancelled->load())) {
      return s;
    }
    stop_.WaitForNotificationWithTimeout(backoff);
    backoff = std::min(2 * backoff, absl::Seconds(2));
  }
}

void WorkerDaemon::Report(v1::ReportProgressRequest request, const std::atomic<bool>* cancelled) {
  // A coordinator back from a restart knows this worker only once the
  // control thread has registered again (a round or two); only a report of
  // the job running here waits for that.
  const bool running_here = !JobWorkerId(request.job_id(), "").empty();
  const absl::Status s = CallUntilItLands(
      [&] {
        request.set_worker_id(JobWorkerId(request.job_id(), request.worker_id()));
        return coordinator_->ReportProgress(request);
      },
      cancelled, running_here ? absl::Now() + kReregistrationWait : absl::InfinitePast());
  if (!s.ok()) {
    LOG(WARNING) << "job " << request.job_id() << " generation " << request.generation()
                 << ": report failed: " << s;
  }
}

bool WorkerDaemon::HasNextGeneration() {
  absl::MutexLock lock(&mu_);
  return current_.next_generation.has_value();
}

absl::StatusOr<v1::Assignment> WorkerDaemon::AwaitNextGeneration(
    const v1::Assignment& previous, const std::atomic<bool>* cancelled) {
  const absl::Duration wait =
      absl::Seconds(WaitForWorkersSeconds(previous.spec())) + kNextGenerationMargin;
  absl::MutexLock lock(&mu_);
  auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return cancelled->load() || current_.next_generation.has_value();
  };
  mu_.AwaitWithDeadline(absl::Condition(&ready), absl::Now() + wait);
  if (cancelled->load()) return absl::CancelledError("cancelled while waiting to regroup");
  if (!current_.next_generation.has_value()) {
    return absl::DeadlineExceededError(absl::StrCat("no generation after ", previous.generation(),
                                                    " came within ", absl::FormatDuration(wait)));
  }
  v1::Assignment next = *std::move(current_.next_generation);
  current_.next_generation.reset();
  if (current_.yield != nullptr) current_.yield->store(false);
  return next;
}

// 5.
absl::Status WorkerDaemon::TrainJob(const v1::Assignment& first, const std::string& worker_id,
                                    const std::atomic<bool>* cancelled,
                                    v1::ReportProgressRequest* failure, bool* reported) {
  if (transports_ == nullptr) {
    return absl::FailedPreconditionError("edge workers cannot join an all-reduce ring");
  }
  v1::Assignment a = first;  // this rank's place in the current generation
  auto join =
      [&](const v1::Assignment& g) -> absl::StatusOr<std::unique_ptr<collective::Communicator>> {
    ASSIGN_OR_RETURN(std::unique_ptr<collective::Transport> transport, transports_->Connect(g));
    return std::make_unique<collective::Communicator>(
        std::move(transport), collective::CommunicatorOptions{g.job_id(), g.generation(),
                                                              options_.collective_timeout, false});
  };
  auto weights_of = [](const v1::Assignment& g) {
    std::vector<double> w(g.shard_weights().begin(), g.shard_weights().end());
    if (g.spec().sync().allreduce().even_split()) w.clear();
    return w;
  };
  ASSIGN_OR_RETURN(std::unique_ptr<collective::Communicator> comm, join(a));
  // Cancels interrupt the current group from now on, until `unregister`
  // goes — before any communicator does.
  CommunicatorUnregister unregister{this};
  auto register_for_cancels = [&](collective::Communicator* c) -> absl::Status {
    absl::MutexLock lock(&mu_);
    if (cancelled->load()) return absl::CancelledError("cancelled");
    if (current_.cancel.get() == cancelled) current_.communicator = c;
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(register_for_cancels(comm.get()));
  std::shared_ptr<std::atomic<bool>> yield;
  {
    absl::MutexLock lock(&mu_);
    yield = current_.yield;
  }
  TrainerOptions options;
  options.out_dir =
      absl::StrCat(options_.scratch_dir, "/", a.job_id(), "-g", a.generation(), "-r", a.rank());
  options.cancelled = cancelled;
  options.yield_requested = yield.get();
  options.simulated_slowdown = options_.simulated_slowdown;
  options.compute_threads = options_.threads;
  options.progress_period = kProgressPeriod;
  options.checkpoint_period = absl::Seconds(CheckpointPeriodSeconds(a.spec()));
  if (!a.resume_in_memory() && a.resume_checkpoint_step() > 0) {  // queued again
    options.resume_path =
        absl::StrCat(options.out_dir, "-resume-", a.resume_checkpoint_step(), ".safetensors");
    RETURN_IF_ERROR(MakeDirectories(options_.scratch_dir));
    if (absl::Status s = coordinator_->DownloadCheckpoint(a.job_id(), a.resume_checkpoint_step(),
                                                          options.resume_path);
        !s.ok()) {
      return absl::Status(s.code(), absl::StrCat("checkpoint download failed: ", s.message()));
    }
  }
  auto group_of = [&](const v1::Assignment& g, collective::Communicator* c) {
    return DataParallel{c, weights_of(g), RebalanceIntervalSteps(g.spec())};
  };
  // A joiner's trainer starts alone; Regroup binds it and gives it the model.
  const bool joiner = a.resume_in_memory();
  if (!joiner) options.data_parallel = group_of(a, comm.get());
  auto report = [&](const v1::Progress& p) {
    v1::ReportProgressRequest r;
    r.set_worker_id(worker_id);
    r.set_job_id(a.job_id());
    r.set_generation(a.generation());
    *r.mutable_progress() = p;
    ReportLater(std::move(r));
  };
  options.on_progress = report;
  options.on_evaluation = report;
  options.on_checkpoint = [&](int64_t step, const std::string& path) {
    absl::Status s = coordinator_->UploadCheckpoint(JobWorkerId(a.job_id(), worker_id), a.job_id(),
                                                    step, false, path);
    if (!s.ok()) {
      LOG(WARNING) << "job " << a.job_id() << " generation " << a.generation() << " rank "
                   << a.rank() << " step " << step << ": checkpoint upload failed: " << s;
    }  // training goes on
  };
  absl::StatusOr<std::unique_ptr<Trainer>> trainer = Trainer::Create(a.spec(), options);
  if (!trainer.ok()) {
    return absl::Status(trainer.status().code(),
                        absl::StrCat(options_.name, ": ", trainer.status().message()));
  }
  {
    absl::MutexLock lock(&mu_);
    if (current_.cancel.get() == cancelled) current_.ready = true;
  }
  Wake();  // a joiner's members wait for this
  auto regroup = [&](collective::Communicator* c) -> absl::Status {
    RETURN_IF_ERROR((*trainer)->Regroup(group_of(a, c)));
    LOG(INFO) << "job " << a.job_id() << " generation " << a.generation() << " rank " << a.rank()
              << ": resuming at step " << (*trainer)->last_commit().step << " on " << a.world_size()
              << " ranks" << (joiner && c == comm.get() ? " (joined)" : "");
    return absl::OkStatus();
  };
  // A regroup that fails on a lost peer is handled as a run that does.
  absl::Status regrouped = joiner ? regroup(comm.get()) : absl::OkStatus();
  const absl::Time start = absl::Now();
  absl::StatusOr<TrainResult> run;
  // 6. Generations: the job goes on in this process through every change
  // of members the coordinator makes.
  while (true) {
    bool survivors_reported = false;
    run = regrouped.ok() ? (*trainer)->Run() : absl::StatusOr<TrainResult>(regrouped);
    if (cancelled->load()) return absl::CancelledError("cancelled");
    if (run.ok() && !run->yielded) break;  // the end
    if (run.ok()) {
      LOG(INFO) << "job " << a.job_id() << " generation " << a.generation() << " rank " << a.rank()
                << ": yielded at step " << run->steps;
      if (draining_ && !HasNextGeneration()) {
        *reported = true;  // nothing to report: the job goes on without us
        return absl::OkStatus();
      }
    } else if (!HasNextGeneration()) {
      // A group failure (a peer died, stalled or gave up — say, fenced and
      // cancelled) is reported and waited out: the coordinator either forms
      // the next generation or, if nothing explains it, fails the job. Any
      // other failure is the job's own.
      const absl::StatusCode code = run.status().code();
      if (code != absl::StatusCode::kUnavailable && code != absl::StatusCode::kDeadlineExceeded &&
          code != absl::StatusCode::kAborted) {
        break;
      }
      v1::ReportProgressRequest survivors;
      survivors.set_worker_id(worker_id);
      survivors.set_job_id(a.job_id());
      survivors.set_generation(a.generation());
      survivors.set_error(std::string(run.status().message()));
      for (int r : comm->lost_ranks()) survivors.add_lost_ranks(r);
      survivors.set_committed_step((*trainer)->last_commit().step);
      LOG(WARNING) << "job " << a.job_id() << " generation " << a.generation() << " rank "
                   << a.rank() << ": group failed"
                   << (comm->lost_ranks().empty() ? "" : " (lost peers)")
                   << ", last commit at step " << (*trainer)->last_commit().step << ": "
                   << run.status();
      WaitForQueuedReports();
      Report(survivors, cancelled);
      survivors_reported = true;
      Wake();  // the next generation comes in the reply to the next heartbeat
    }
    absl::StatusOr<v1::Assignment> next = AwaitNextGeneration(a, cancelled);
    if (!next.ok()) {
      *reported = survivors_reported;  // it said why
      return next.status();
    }
    a = *std::move(next);  // from here on, failures are the new generation's
    failure->set_generation(a.generation());
    ASSIGN_OR_RETURN(std::unique_ptr<collective::Communicator> next_comm, join(a));
    RETURN_IF_ERROR(register_for_cancels(next_comm.get()));
    regrouped = regroup(next_comm.get());
    comm = std::move(next_comm);  // the previous group goes only now
  }
  if (!run.ok()) {
    for (int r : comm->lost_ranks()) failure->add_lost_ranks(r);
    failure->set_committed_step((*trainer)->last_commit().step);
    return run.status();
  }
  const TrainResult& result = *run;
  const absl::Duration run_time = absl::Now() - start;
  LOG(INFO) << "job " << a.job_id() << " generation " << a.generation() << " rank " << a.rank()
            << " step " << result.steps << ": " << result.commits << " commit points took "
            << absl::FormatDuration(result.commit_time) << " of " << absl::FormatDuration(run_time)
            << " (" << 100 * absl::FDivDuration(result.commit_time, run_time) << "%)";
  if (a.rank() != 0) return absl::OkStatus();
  // The model waits for a coordinator that is away (step 3).
  const absl::Status uploaded = CallUntilItLands(
      [&] {
        return coordinator_->UploadCheckpoint(JobWorkerId(a.job_id(), worker_id), a.job_id(),
                                              result.steps, true, result.model_path);
      },
      cancelled, absl::Now() + kReregistrationWait);
  if (!uploaded.ok()) {
    return absl::Status(uploaded.code(), absl::StrCat("model upload failed: ", uploaded.message()));
  }
  v1::ReportProgressRequest done;
  done.set_worker_id(worker_id);
  done.set_job_id(a.job_id());
  done.set_generation(a.generation());
  done.set_finished(true);
  WaitForQueuedReports();  // the last progress lands before `finished`
  Report(done, cancelled);
  return absl::OkStatus();
}

void WorkerDaemon::RunJob(v1::Assignment a, std::string worker_id,
                          std::shared_ptr<std::atomic<bool>> cancelled) {
  v1::ReportProgressRequest failed;
  failed.set_generation(a.generation());  // TrainJob moves it on with each regroup
  failed.set_committed_step(-1);
  bool reported = false;
  const absl::Status status =
      !a.spec().sync().has_diloco() ? TrainJob(a, worker_id, cancelled.get(), &failed, &reported)
      : a.peer_addresses_size() > 0 ? RunRingReplica(a, worker_id, cancelled.get(), &failed)
                                    : RunReplica(a, worker_id, cancelled.get());
  if (!status.ok() && !cancelled->load() && !reported) {
    LOG(WARNING) << "job " << a.job_id() << " generation " << a.generation() << " rank " << a.rank()
                 << ": failed here: " << status;
    failed.set_worker_id(worker_id);
    failed.set_job_id(a.job_id());
    failed.set_error(std::string(status.message()));
    Report(failed);
  } else {
    LOG(INFO) << "job " << a.job_id() << " generation " << a.generation() << " rank " << a.rank()
              << (status.ok() ? ": done" : ": stopped (cancelled)");
  }
  absl::MutexLock lock(&mu_);
  if (current_.cancel == cancelled) current_ = Job{};
}

}  // namespace nightshift
