#include "worker/worker_daemon.h"

#include <unistd.h>

#include <chrono>

#include "absl/strings/str_cat.h"
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
// How long survivors of a lost peer wait for the coordinator's next
// generation: it answers their report at once, or within a heartbeat.
constexpr absl::Duration kNextGenerationWait = absl::Seconds(10);
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
    const absl::Time due =
        clock_->Now() + (unreachable_ ? options_.retry_interval : heartbeat_interval_);
    absl::MutexLock lock(&wake_mu_);
    auto woken = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(wake_mu_) { return wake_; };
    wake_mu_.AwaitWithTimeout(absl::Condition(&woken), due - clock_->Now());
    wake_ = false;
  }
  return absl::OkStatus();
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
  }
  LOG(INFO) << "worker " << options_.name << ": registered as " << response->worker_id() << " ("
            << static_cast<int>(rate_) << " samples/s)";
  return absl::OkStatus();
}

absl::Status WorkerDaemon::Tick() {
  v1::HeartbeatRequest request;
  {
    absl::MutexLock lock(&mu_);
    request.set_worker_id(worker_id_);
    request.set_job_id(current_.id);
    request.set_generation(current_.generation);
  }
  if (request.worker_id().empty()) {
    // Not while a cancelled job winds down: the next assignment must not
    // find the job thread still busy.
    if (!request.job_id().empty()) return absl::OkStatus();
    return RegisterOnce();
  }
  // 2.
  absl::StatusOr<v1::HeartbeatResponse> response = coordinator_->Heartbeat(request);
  if (response.status().code() == absl::StatusCode::kNotFound) {
    LOG(WARNING) << "worker " << options_.name << ": lease lost (" << response.status().message()
                 << "); registering again";
    CancelCurrentJob("cancelled: this worker's lease was lost");
    {
      absl::MutexLock lock(&mu_);
      worker_id_.clear();
      if (!current_.id.empty()) return absl::OkStatus();  // registers once the job has stopped
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
  // 4.
  for (const v1::Directive& d : response->directives()) Apply(d);
  return absl::OkStatus();
}

void WorkerDaemon::Apply(const v1::Directive& d) {
  if (d.has_assign()) {
    {
      absl::MutexLock lock(&mu_);
      if (current_.id == d.assign().job_id() && d.assign().generation() > current_.generation) {
        // The next generation of the job running here: its thread regroups.
        current_.generation = d.assign().generation();
        current_.next_generation = d.assign();
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
  }
}

void WorkerDaemon::CancelLocked(const std::string& why) {
  if (current_.cancel == nullptr) return;
  LOG(INFO) << "job " << current_.id << " generation " << current_.generation << ": " << why;
  current_.cancel->store(true);
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
    current_ = {assignment.job_id(), assignment.generation(), cancelled};
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
  reports_.push_back(std::move(request));
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

void WorkerDaemon::Report(const v1::ReportProgressRequest& request) {
  if (absl::Status s = coordinator_->ReportProgress(request); !s.ok()) {
    LOG(WARNING) << "job " << request.job_id() << " generation " << request.generation()
                 << ": report failed: " << s;
  }
}

absl::StatusOr<v1::Assignment> WorkerDaemon::AwaitNextGeneration(
    const v1::Assignment& failed, const std::atomic<bool>* cancelled) {
  absl::MutexLock lock(&mu_);
  auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return cancelled->load() || current_.next_generation.has_value();
  };
  mu_.AwaitWithDeadline(absl::Condition(&ready), absl::Now() + kNextGenerationWait);
  if (cancelled->load()) return absl::CancelledError("cancelled while waiting to regroup");
  if (!current_.next_generation.has_value()) {
    return absl::DeadlineExceededError(absl::StrCat("no generation after ", failed.generation(),
                                                    " came within ",
                                                    absl::FormatDuration(kNextGenerationWait)));
  }
  v1::Assignment next = *std::move(current_.next_generation);
  current_.next_generation.reset();
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
  struct Unregister {
    WorkerDaemon* daemon;
    ~Unregister() {
      absl::MutexLock lock(&daemon->mu_);
      daemon->current_.communicator = nullptr;
    }
  } unregister{this};
  auto register_for_cancels = [&](collective::Communicator* c) -> absl::Status {
    absl::MutexLock lock(&mu_);
    if (cancelled->load()) return absl::CancelledError("cancelled");
    if (current_.cancel.get() == cancelled) current_.communicator = c;
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(register_for_cancels(comm.get()));
  TrainerOptions options;
  options.out_dir =
      absl::StrCat(options_.scratch_dir, "/", a.job_id(), "-g", a.generation(), "-r", a.rank());
  options.cancelled = cancelled;
  options.simulated_slowdown = options_.simulated_slowdown;
  options.compute_threads = options_.threads;
  options.progress_period = kProgressPeriod;
  options.data_parallel = DataParallel{comm.get(), weights_of(a), RebalanceIntervalSteps(a.spec())};
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
    absl::Status s = coordinator_->UploadCheckpoint(worker_id, a.job_id(), step, false, path);
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
  const absl::Time start = absl::Now();
  absl::StatusOr<TrainResult> run;
  // 6. Generations: a run that lost peers reports them, and the job goes
  // on in this process if the coordinator forms the next generation.
  while (true) {
    run = (*trainer)->Run();
    if (run.ok() || cancelled->load() || comm->lost_ranks().empty()) break;
    v1::ReportProgressRequest survivors;
    survivors.set_worker_id(worker_id);
    survivors.set_job_id(a.job_id());
    survivors.set_generation(a.generation());
    survivors.set_error(std::string(run.status().message()));
    for (int r : comm->lost_ranks()) survivors.add_lost_ranks(r);
    survivors.set_committed_step((*trainer)->last_commit().step);
    LOG(WARNING) << "job " << a.job_id() << " generation " << a.generation() << " rank " << a.rank()
                 << ": lost peers, last commit at step " << (*trainer)->last_commit().step << ": "
                 << run.status();
    WaitForQueuedReports();
    Report(survivors);
    Wake();  // the next generation comes in the reply to the next heartbeat
    absl::StatusOr<v1::Assignment> next = AwaitNextGeneration(a, cancelled);
    if (!next.ok()) {
      *reported = true;  // the survivors' report said why
      return next.status();
    }
    a = *std::move(next);  // from here on, failures are the new generation's
    failure->set_generation(a.generation());
    ASSIGN_OR_RETURN(std::unique_ptr<collective::Communicator> next_comm, join(a));
    RETURN_IF_ERROR(register_for_cancels(next_comm.get()));
    RETURN_IF_ERROR((*trainer)->Regroup(
        DataParallel{next_comm.get(), weights_of(a), RebalanceIntervalSteps(a.spec())}));
    LOG(INFO) << "job " << a.job_id() << " generation " << a.generation() << " rank " << a.rank()
              << ": resuming at step " << (*trainer)->last_commit().step << " on " << a.world_size()
              << " ranks";
    comm = std::move(next_comm);  // the failed group goes only now
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
  if (absl::Status s = coordinator_->UploadCheckpoint(worker_id, a.job_id(), result.steps, true,
                                                      result.model_path);
      !s.ok()) {
    return absl::Status(s.code(), absl::StrCat("model upload failed: ", s.message()));
  }
  v1::ReportProgressRequest done;
  done.set_worker_id(worker_id);
  done.set_job_id(a.job_id());
  done.set_generation(a.generation());
  done.set_finished(true);
  WaitForQueuedReports();  // the last progress lands before `finished`
  Report(done);
  return absl::OkStatus();
}

void WorkerDaemon::RunJob(v1::Assignment a, std::string worker_id,
                          std::shared_ptr<std::atomic<bool>> cancelled) {
  v1::ReportProgressRequest failed;
  failed.set_generation(a.generation());  // TrainJob moves it on with each regroup
  failed.set_committed_step(-1);
  bool reported = false;
  const absl::Status status = TrainJob(a, worker_id, cancelled.get(), &failed, &reported);
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
