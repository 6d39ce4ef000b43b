#include "worker/worker_daemon.h"

#include <unistd.h>

#include <chrono>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "collective/communicator.h"
#include "collective/transport/grpc/grpc_transport.h"
#include "glog/logging.h"
#include "grpcpp/grpcpp.h"
#include "kernels/model.h"
#include "kernels/random.h"
#include "kernels/threads.h"
#include "worker/trainer.h"

namespace nightshift {
namespace {

// How often a job's rank 0 reports progress: each report is a collective
// on every rank and a database write on the coordinator, and one every few
// steps costs a synchronous job on a busy machine ~10% of its throughput.
constexpr absl::Duration kProgressPeriod = absl::Milliseconds(500);

absl::Status FromGrpc(const grpc::Status& s) {
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

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

WorkerDaemon::WorkerDaemon(WorkerOptions options) : options_(std::move(options)) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  stub_ = v1::Coordinator::NewStub(
      grpc::CreateCustomChannel(options_.coordinator, grpc::InsecureChannelCredentials(), args));
}

WorkerDaemon::~WorkerDaemon() {
  {
    absl::MutexLock lock(&mu_);
    if (current_cancel_) current_cancel_->store(true);
  }
  if (job_thread_.joinable()) job_thread_.join();
  WaitForQueuedReports();
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

absl::Status WorkerDaemon::RegisterWithRetry() {
  v1::RegisterRequest request;
  request.set_name(options_.name);
  request.set_pool(options_.pool);
  request.set_cores(static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN)));
  request.set_memory_bytes(static_cast<int64_t>(sysconf(_SC_PHYS_PAGES)) * sysconf(_SC_PAGE_SIZE));
  request.set_samples_per_second(samples_per_second_);
  if (peer_server_ != nullptr) request.set_peer_address(peer_server_->address());
  while (!stop_.HasBeenNotified()) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    v1::RegisterResponse response;
    grpc::Status s = stub_->Register(&ctx, request, &response);
    if (s.ok()) {
      worker_id_ = response.worker_id();
      heartbeat_interval_ = absl::Milliseconds(std::max<int64_t>(100, response.heartbeat_interval_ms()));
      LOG(INFO) << "registered as " << worker_id_ << " (" << options_.name << ", "
                << static_cast<int>(samples_per_second_) << " samples/s)";
      return absl::OkStatus();
    }
    if (s.error_code() != grpc::StatusCode::UNAVAILABLE &&
        s.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED) {
      return FromGrpc(s);  // refused: no point retrying
    }
    LOG(WARNING) << "coordinator " << options_.coordinator << " unreachable: " << s.error_message();
    stop_.WaitForNotificationWithTimeout(absl::Seconds(1));
  }
  return absl::CancelledError("stopped");
}

absl::Status WorkerDaemon::Run() {
  SetComputeThreads(options_.threads);
  if (options_.pool == v1::WORKER_POOL_DATACENTER) {
    auto server = collective::PeerServer::Start(options_.listen);
    if (!server.ok()) return server.status();
    peer_server_ = *std::move(server);
    LOG(INFO) << "Peer service on " << peer_server_->address();
  }
  samples_per_second_ = MeasureComputeRate() / options_.simulated_slowdown;
  if (absl::Status s = RegisterWithRetry(); !s.ok()) return s;
  while (!stop_.WaitForNotificationWithTimeout(heartbeat_interval_)) {
    v1::HeartbeatRequest request;
    request.set_worker_id(worker_id_);
    {
      absl::MutexLock lock(&mu_);
      request.set_job_id(current_job_);
      request.set_generation(current_generation_);
    }
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    v1::HeartbeatResponse response;
    grpc::Status s = stub_->Heartbeat(&ctx, request, &response);
    if (s.error_code() == grpc::StatusCode::NOT_FOUND) {
      LOG(WARNING) << "coordinator does not know us (" << s.error_message() << "); registering again";
      if (absl::Status r = RegisterWithRetry(); !r.ok()) return r;
      continue;
    }
    if (!s.ok()) {
      LOG(WARNING) << "heartbeat failed: " << s.error_message();
      continue;
    }
    for (const v1::Directive& d : response.directives()) {
      if (d.has_assign() && !draining_) {
        StartJob(d.assign());
      } else if (!d.cancel_job_id().empty()) {
        absl::MutexLock lock(&mu_);
        if (current_job_ == d.cancel_job_id() && current_cancel_) {
          LOG(INFO) << "cancelling job " << current_job_;
          current_cancel_->store(true);
        }
      } else if (d.drain()) {
        draining_ = true;
      }
    }
  }
  return absl::OkStatus();
}

void WorkerDaemon::StartJob(const v1::Assignment& assignment) {
  if (job_thread_.joinable()) job_thread_.join();  // the previous job has ended
  auto cancelled = std::make_shared<std::atomic<bool>>(false);
  {
    absl::MutexLock lock(&mu_);
    current_job_ = assignment.job_id();
    current_generation_ = assignment.generation();
    current_cancel_ = cancelled;
  }
  LOG(INFO) << "job " << assignment.job_id() << " generation " << assignment.generation()
            << ": rank " << assignment.rank() << " of " << assignment.world_size();
  job_thread_ = std::thread([this, assignment, cancelled] { RunJob(assignment, cancelled); });
}

void WorkerDaemon::ReportLater(v1::ReportProgressRequest request) {
  absl::MutexLock lock(&report_mu_);
  reports_.push_back(std::move(request));
  if (reporting_) return;  // the reporter thread will pick it up
  reporting_ = true;
  if (reporter_.joinable()) reporter_.join();
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
    Report(std::move(next));
  }
}

void WorkerDaemon::Report(v1::ReportProgressRequest request) {
  request.set_worker_id(worker_id_);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::ReportProgressResponse response;
  grpc::Status s = stub_->ReportProgress(&ctx, request, &response);
  if (!s.ok()) LOG(WARNING) << "ReportProgress failed: " << s.error_message();
}

absl::Status WorkerDaemon::Upload(const std::string& job_id, int64_t step, bool final,
                                  const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::DataLossError(absl::StrCat(path, ": cannot read"));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  v1::UploadCheckpointResponse response;
  auto writer = stub_->UploadCheckpoint(&ctx, &response);
  std::string buffer(1 << 20, '\0');
  int64_t offset = 0;
  bool first = true;
  do {
    in.read(buffer.data(), buffer.size());
    v1::UploadCheckpointRequest chunk;
    if (first) {
      chunk.set_worker_id(worker_id_);
      chunk.set_job_id(job_id);
      chunk.set_step(step);
      chunk.set_final(final);
      first = false;
    }
    chunk.mutable_chunk()->set_offset(offset);
    chunk.mutable_chunk()->set_data(buffer.data(), in.gcount());
    offset += in.gcount();
    if (!writer->Write(chunk)) break;
  } while (in.gcount() > 0 && in);
  writer->WritesDone();
  return FromGrpc(writer->Finish());
}

void WorkerDaemon::RunJob(v1::Assignment a, std::shared_ptr<std::atomic<bool>> cancelled) {
  absl::Status status = [&]() -> absl::Status {
    if (peer_server_ == nullptr) {
      return absl::FailedPreconditionError("edge workers cannot join an all-reduce ring");
    }
    std::vector<std::string> peers(a.peer_addresses().begin(), a.peer_addresses().end());
    auto transport = collective::GrpcTransport::Create(
        peer_server_->service(),
        {a.job_id(), a.generation(), a.rank(), peers, /*shared_memory=*/true});
    if (!transport.ok()) return transport.status();
    collective::Communicator comm(*std::move(transport),
                                  {a.job_id(), a.generation(), options_.collective_timeout, false});
    TrainerOptions options;
    options.out_dir = absl::StrCat(options_.scratch_dir, "/", a.job_id(), "-g", a.generation(),
                                   "-r", a.rank());
    options.cancelled = cancelled.get();
    options.simulated_slowdown = options_.simulated_slowdown;
    options.compute_threads = options_.threads;
    options.progress_period = kProgressPeriod;
    const v1::AllReduceSync& sync = a.spec().sync().allreduce();
    std::vector<double> weights(a.shard_weights().begin(), a.shard_weights().end());
    if (sync.even_split()) weights.clear();
    const int64_t rebalance =
        sync.even_split() ? 0 : (sync.rebalance_interval_steps() > 0 ? sync.rebalance_interval_steps() : 50);
    options.data_parallel = DataParallel{&comm, weights, rebalance};
    auto report = [this, &a](const v1::Progress& p) {
      v1::ReportProgressRequest r;
      r.set_job_id(a.job_id());
      r.set_generation(a.generation());
      *r.mutable_progress() = p;
      ReportLater(std::move(r));
    };
    options.on_progress = report;
    options.on_evaluation = report;
    options.on_checkpoint = [this, &a](int64_t step, const std::string& path) {
      if (absl::Status s = Upload(a.job_id(), step, false, path); !s.ok()) {
        LOG(WARNING) << "checkpoint upload failed: " << s;  // training goes on
      }
    };
    auto trainer = Trainer::Create(a.spec(), options);
    if (!trainer.ok()) {
      return absl::Status(trainer.status().code(),
                          absl::StrCat(options_.name, ": ", trainer.status().message()));
    }
    auto result = (*trainer)->Run();
    if (!result.ok()) return result.status();
    if (a.rank() == 0) {
      if (absl::Status s = Upload(a.job_id(), result->steps, true, result->model_path); !s.ok()) {
        return absl::Status(s.code(), absl::StrCat("model upload failed: ", s.message()));
      }
      v1::ReportProgressRequest done;
      done.set_job_id(a.job_id());
      done.set_generation(a.generation());
      done.set_finished(true);
      WaitForQueuedReports();  // the last progress lands before `finished`
      Report(done);
    }
    return absl::OkStatus();
  }();
  if (!status.ok() && !cancelled->load()) {
    LOG(WARNING) << "job " << a.job_id() << " failed here: " << status;
    v1::ReportProgressRequest failed;
    failed.set_job_id(a.job_id());
    failed.set_generation(a.generation());
    failed.set_error(std::string(status.message()));
    Report(failed);
  } else {
    LOG(INFO) << "job " << a.job_id() << (status.ok() ? " done" : " cancelled");
  }
  absl::MutexLock lock(&mu_);
  current_job_.clear();
  current_cancel_.reset();
}

}  // namespace nightshift
