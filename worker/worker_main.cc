// nightshift-worker: lends this machine to a Nightshift coordinator.
//
//   nightshift-worker --coordinator=HOST:PORT --pool=datacenter|edge
//                     --threads=N --listen=HOST:PORT --name=NAME
//
// Dials out only; data-center workers also serve the Peer service on
// --listen for their ring neighbours. Stops on SIGINT/SIGTERM.
#include <signal.h>
#include <unistd.h>

#include <cstdio>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "base/allocator.h"
#include "glog/logging.h"
#include "worker/worker_daemon.h"

ABSL_FLAG(std::string, coordinator, "127.0.0.1:7070", "coordinator gRPC address");
ABSL_FLAG(std::string, pool, "datacenter", "datacenter or edge");
ABSL_FLAG(int, threads, 0, "compute threads (0: one per core)");
ABSL_FLAG(std::string, listen, "127.0.0.1:0", "Peer service address (data-center workers)");
ABSL_FLAG(std::string, name, "", "worker name (default: host name and pid)");
ABSL_FLAG(std::string, scratch_dir, "/tmp/nightshift-worker", "folder for job checkpoints");
ABSL_FLAG(double, simulated_slowdown, 1,
          "benchmarks: stretch compute by this factor, to stand for a slower machine");

namespace {

nightshift::WorkerDaemon* running = nullptr;  // for the signal handler only

void OnSignal(int) {
  if (running != nullptr) running->Stop();
}

}  // namespace

int main(int argc, char** argv) {
  nightshift::ConfigureAllocatorForLargeMessages();
  absl::ParseCommandLine(argc, argv);
  google::InitGoogleLogging(argv[0]);
  FLAGS_logtostderr = true;
  nightshift::WorkerOptions options;
  options.coordinator = absl::GetFlag(FLAGS_coordinator);
  const std::string pool = absl::GetFlag(FLAGS_pool);
  if (pool == "datacenter") {
    options.pool = nightshift::v1::WORKER_POOL_DATACENTER;
  } else if (pool == "edge") {
    options.pool = nightshift::v1::WORKER_POOL_EDGE;
  } else {
    std::fprintf(stderr, "nightshift-worker: --pool must be datacenter or edge, not '%s'\n",
                 pool.c_str());
    return 2;
  }
  options.threads = absl::GetFlag(FLAGS_threads);
  options.listen = absl::GetFlag(FLAGS_listen);
  options.name = absl::GetFlag(FLAGS_name);
  if (options.name.empty()) {
    char host[256] = "worker";
    gethostname(host, sizeof(host) - 1);
    options.name = std::string(host) + "-" + std::to_string(getpid());
  }
  options.scratch_dir = absl::GetFlag(FLAGS_scratch_dir) + "/" + options.name;
  options.simulated_slowdown = std::max(1.0, absl::GetFlag(FLAGS_simulated_slowdown));
  nightshift::WorkerDaemon daemon(options);
  running = &daemon;
  signal(SIGINT, OnSignal);
  signal(SIGTERM, OnSignal);
  absl::Status s = daemon.Run();
  running = nullptr;
  if (!s.ok()) {
    std::fprintf(stderr, "nightshift-worker: %s\n", s.ToString().c_str());
    return 1;
  }
  return 0;
}
