// WorkerDaemon: the `nightshift-worker` process's life — dial out to the
// coordinator, hold a lease, and run the jobs it is handed.
//
//  1. Measure a compute rate (samples/s of a fixed MLP step) and register
//     with name, pool, cores, memory, rate and (data-center workers) the
//     address of this process's Peer service.
//  2. Heartbeat every interval the coordinator asked for, reporting the job
//     running here; NOT_FOUND (lease lost, coordinator restarted) means
//     register again. An unreachable coordinator is retried.
//  3. Directives: `assign` starts the job on its own thread — the current
//     job is set before the next heartbeat, so the coordinator never sees
//     this worker idle while it starts; `cancel` sets the job's cancel
//     flag (the trainer stops at the next step); `drain` stops taking jobs.
//  4. A job: GrpcTransport group (job, generation, rank, peers) ->
//     Communicator -> Trainer (data-parallel). Rank 0 reports progress and
//     evaluations, uploads each checkpoint and, at the end, the model, then
//     reports `finished`. Any failure is reported as the job's error.
// One worker runs one job at a time. Run() blocks until Stop().
#ifndef NIGHTSHIFT_WORKER_WORKER_DAEMON_H_
#define NIGHTSHIFT_WORKER_WORKER_DAEMON_H_

#include <atomic>
#include <deque>
#include <memory>
#include <string>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "collective/transport/grpc/peer_server.h"
#include "nightshift/v1/coordinator.grpc.pb.h"

namespace nightshift {

struct WorkerOptions {
  std::string coordinator;  // HOST:PORT
  v1::WorkerPool pool = v1::WORKER_POOL_DATACENTER;
  int threads = 0;          // compute threads; 0: one per core
  std::string listen;       // Peer service address (data-center workers)
  std::string name;
  std::string scratch_dir;  // per-job folders for checkpoints
  absl::Duration collective_timeout = absl::Seconds(30);
  double simulated_slowdown = 1;  // benchmarks: act this many times slower
};

class WorkerDaemon {
 public:
  explicit WorkerDaemon(WorkerOptions options);
  ~WorkerDaemon();

  absl::Status Run();
  void Stop() {
    if (!stop_.HasBeenNotified()) stop_.Notify();
  }

 private:
  absl::Status RegisterWithRetry();
  void StartJob(const v1::Assignment& assignment);
  void RunJob(v1::Assignment assignment, std::shared_ptr<std::atomic<bool>> cancelled);
  absl::Status Upload(const std::string& job_id, int64_t step, bool final, const std::string& path);
  // Sends at once (blocking), for the final and error reports.
  void Report(v1::ReportProgressRequest request);
  // Queues for the reporter thread, so the training loop never waits on
  // the coordinator; ReportQueued() drains the queue first.
  void ReportLater(v1::ReportProgressRequest request);
  void ReportQueued();
  void WaitForQueuedReports();

  WorkerOptions options_;
  std::unique_ptr<collective::PeerServer> peer_server_;
  std::unique_ptr<v1::Coordinator::Stub> stub_;
  std::string worker_id_;
  double samples_per_second_ = 0;
  absl::Duration heartbeat_interval_ = absl::Seconds(1);
  absl::Notification stop_;
  bool draining_ = false;

  absl::Mutex mu_;
  std::string current_job_ ABSL_GUARDED_BY(mu_);
  int64_t current_generation_ ABSL_GUARDED_BY(mu_) = 0;
  std::shared_ptr<std::atomic<bool>> current_cancel_ ABSL_GUARDED_BY(mu_);
  std::thread job_thread_;
  absl::Mutex report_mu_;
  std::deque<v1::ReportProgressRequest> reports_ ABSL_GUARDED_BY(report_mu_);
  bool reporting_ ABSL_GUARDED_BY(report_mu_) = false;
  std::thread reporter_;
};

}  // namespace nightshift

#endif  // NIGHTSHIFT_WORKER_WORKER_DAEMON_H_
