// nightshift-worker: lends this machine to a Nightshift coordinator.
//
//   nightshift-worker --coordinator=HOST:PORT --pool=datacenter|edge
//                     --threads=N --listen=HOST:PORT --name=NAME
//                     --tls_ca=FILE --tls_cert=FILE --tls_key=FILE | --insecure
//                     --token_file=FILE (a worker join token)
//                     edge agents: --vehicle_state=FILE | --vehicle_trace=FILE
//                                  [--idle_policy=FILE]
//                     [--follow_models=NAME,...] [--models_dir=DIR]
//
// Dials out only; data-center workers also serve the Peer service on
// --listen for their ring neighbours. Every link is mutual TLS with the
// --tls_* files (or plaintext under --insecure). The worker enrolls with
// the join token: the coordinator binds its name to a credential of its
// own, kept in --credential_file, which it presents from then on (and
// must present to register that name again). Stops on SIGINT/SIGTERM.
//
// An edge agent (--pool=edge) reads its vehicle's state from the JSON file
// its gateway rewrites (--vehicle_state) or replays a trace
// (--vehicle_trace), decides with the idle policy (--idle_policy, a
// textproto IdlePolicy; defaults in proto/nightshift/v1/vehicle.proto)
// whether it may compute, and reports that answer and its reason with
// every heartbeat (worker/edge/). With --follow_models, it keeps the
// newest published version of each of those models under --models_dir,
// fetched while the vehicle is eligible and its link unmetered
// (worker/edge/model_follower.h).
#include <unistd.h>

#include <cstdio>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/allocator.h"
#include "base/clock.h"
#include "base/filesystem.h"
#include "base/stop_signals.h"
#include "glog/logging.h"
#include "security/token_file.h"
#include "spec/job_spec.h"
#include "worker/edge/eligibility_monitor.h"
#include "worker/edge/model_follower.h"
#include "worker/group_transports.h"
#include "worker/grpc_coordinator_client.h"
#include "worker/worker_daemon.h"

ABSL_FLAG(std::string, coordinator, "127.0.0.1:7070", "coordinator gRPC address");
ABSL_FLAG(std::string, pool, "datacenter", "datacenter or edge");
ABSL_FLAG(int, threads, 0, "compute threads (0: one per core)");
ABSL_FLAG(std::string, listen, "127.0.0.1:0", "Peer service address (data-center workers)");
ABSL_FLAG(bool, share_memory, true,
          "data-center: exchange ring data with workers on this host through shared memory; "
          "false: over data sockets, as between machines");
ABSL_FLAG(std::string, name, "", "worker name (default: host name and pid)");
ABSL_FLAG(std::string, scratch_dir, "/tmp/nightshift-worker", "folder for job checkpoints");
ABSL_FLAG(absl::Duration, leave_grace, absl::Seconds(60),
          "on SIGTERM/SIGINT: drain, and stop once this worker has left its job or after this "
          "long (0: stop at once; a second signal always does)");
ABSL_FLAG(std::string, tls_ca, "", "PEM file of the CA that signs every component");
ABSL_FLAG(std::string, tls_cert, "", "PEM certificate chain of this worker (client and server)");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert");
ABSL_FLAG(bool, insecure, false,
          "no TLS (plaintext; development only, logged loudly); tokens still apply");
ABSL_FLAG(std::string, token_file, "",
          "file holding a worker join token (`nightshift token create --role=worker`)");
ABSL_FLAG(std::string, token, "", "a worker join token (prefer --token_file: flags show in ps)");
ABSL_FLAG(std::string, credential_file, "",
          "where this worker keeps its own credential (default: SCRATCH_DIR/NAME/credential)");
ABSL_FLAG(std::string, vehicle_state, "",
          "edge: the vehicle state JSON file the gateway rewrites (watched)");
ABSL_FLAG(std::string, vehicle_trace, "",
          "edge: a vehicle trace (JSON lines) to replay instead (tests, simulations)");
ABSL_FLAG(std::string, idle_policy, "", "edge: textproto IdlePolicy (default: its defaults)");
ABSL_FLAG(int64_t, round_chunk_bytes, 1 << 20,
          "edge: bytes per fetch/push call of a DiLoCo round (a cut link loses at most one)");
ABSL_FLAG(std::vector<std::string>, follow_models, {},
          "published models to keep the newest version of (comma-separated names): fetched "
          "while the vehicle is eligible and its link unmetered (data-center workers: always)");
ABSL_FLAG(std::string, models_dir, "",
          "where followed models are kept (default: SCRATCH_DIR/NAME/models)");
ABSL_FLAG(double, simulated_slowdown, 1,
          "for benchmarks only: stretch compute by this factor, to stand for a slower machine");

namespace nightshift {
namespace {

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "nightshift-worker: %s\n", s.ToString().c_str());
  return 1;
}

// The edge agent's eligibility from its flags: exactly one state source,
// and the policy file if given.
absl::StatusOr<std::unique_ptr<edge::EligibilityMonitor>> StartEligibility(
    Clock* clock, std::function<void(const v1::Eligibility&)> on_change) {
  const std::string state = absl::GetFlag(FLAGS_vehicle_state);
  const std::string trace = absl::GetFlag(FLAGS_vehicle_trace);
  if (state.empty() == trace.empty()) {
    return absl::InvalidArgumentError(
        "--pool=edge needs the vehicle's state: exactly one of --vehicle_state=FILE (the JSON "
        "file its gateway rewrites) and --vehicle_trace=FILE");
  }
  v1::IdlePolicy policy;
  if (!absl::GetFlag(FLAGS_idle_policy).empty()) {
    absl::StatusOr<v1::IdlePolicy> loaded = edge::LoadIdlePolicy(absl::GetFlag(FLAGS_idle_policy));
    if (!loaded.ok()) return loaded.status();
    policy = *loaded;
  }
  std::unique_ptr<edge::VehicleStateSource> source;
  if (!state.empty()) {
    absl::StatusOr<std::unique_ptr<edge::JsonFileSource>> file = edge::JsonFileSource::Start(state);
    if (!file.ok()) return file.status();
    source = *std::move(file);
  } else {
    absl::StatusOr<std::unique_ptr<edge::TraceSource>> replay =
        edge::TraceSource::Load(trace, clock);
    if (!replay.ok()) return replay.status();
    source = *std::move(replay);
  }
  return std::make_unique<edge::EligibilityMonitor>(std::move(source), policy, clock,
                                                    std::move(on_change));
}

int Main(int argc, char** argv) {
  ConfigureAllocatorForLargeMessages();
  absl::ParseCommandLine(argc, argv);
  google::InitGoogleLogging(argv[0]);
  FLAGS_logtostderr = true;
  WorkerOptions options;
  const std::string pool = absl::GetFlag(FLAGS_pool);
  if (pool == "datacenter") {
    options.pool = v1::WORKER_POOL_DATACENTER;
  } else if (pool == "edge") {
    options.pool = v1::WORKER_POOL_EDGE;
  } else {
    std::fprintf(stderr, "nightshift-worker: --pool must be datacenter or edge, not '%s'\n",
                 pool.c_str());
    return 2;
  }
  options.threads = absl::GetFlag(FLAGS_threads);
  options.name = absl::GetFlag(FLAGS_name);
  if (options.name.empty()) {
    char host[256] = "worker";
    gethostname(host, sizeof(host) - 1);
    options.name = std::string(host) + "-" + std::to_string(getpid());
  }
  options.scratch_dir = absl::GetFlag(FLAGS_scratch_dir) + "/" + options.name;
  options.simulated_slowdown = std::max(1.0, absl::GetFlag(FLAGS_simulated_slowdown));
  if (absl::GetFlag(FLAGS_round_chunk_bytes) < 1024 ||
      absl::GetFlag(FLAGS_round_chunk_bytes) > (2 << 20)) {
    return Fail(absl::InvalidArgumentError(
        absl::StrCat("--round_chunk_bytes=", absl::GetFlag(FLAGS_round_chunk_bytes),
                     ": expected 1024 to 2097152 (the coordinator takes 2 MiB chunks at most)")));
  }
  options.round_chunk_bytes = absl::GetFlag(FLAGS_round_chunk_bytes);
  absl::StatusOr<security::TransportSecurity> transport = security::TransportSecurityFromFlags(
      absl::GetFlag(FLAGS_insecure),
      {absl::GetFlag(FLAGS_tls_ca), absl::GetFlag(FLAGS_tls_cert), absl::GetFlag(FLAGS_tls_key)},
      "nightshift-worker");
  if (!transport.ok()) return Fail(transport.status());
  WorkerIdentity identity;
  identity.join_token = absl::GetFlag(FLAGS_token);
  if (!absl::GetFlag(FLAGS_token_file).empty()) {
    absl::StatusOr<std::string> token = security::ReadTokenFile(absl::GetFlag(FLAGS_token_file));
    if (!token.ok()) return Fail(token.status());
    identity.join_token = *token;
  }
  identity.credential_file = absl::GetFlag(FLAGS_credential_file);
  if (identity.credential_file.empty()) {
    if (absl::Status made = MakeDirectories(options.scratch_dir); !made.ok()) return Fail(made);
    identity.credential_file = options.scratch_dir + "/credential";
  }
  if (identity.join_token.empty() && !FileExists(identity.credential_file)) {
    return Fail(absl::FailedPreconditionError(
        "no join token: pass --token_file=FILE (a worker token: `nightshift token create "
        "--role=worker`)"));
  }

  RealClock clock;
  // The monitor starts before the daemon exists and ends after it: its
  // flips reach the daemon (preemption) while it runs.
  absl::Mutex preempt_mu;
  WorkerDaemon* preemptible = nullptr;
  edge::ModelFollower* follower_to_wake = nullptr;  // under preempt_mu
  std::unique_ptr<edge::EligibilityMonitor> eligibility;
  if (options.pool == v1::WORKER_POOL_EDGE) {
    absl::StatusOr<std::unique_ptr<edge::EligibilityMonitor>> monitor =
        StartEligibility(&clock, [&](const v1::Eligibility& e) {
          absl::MutexLock lock(&preempt_mu);
          if (preemptible != nullptr) preemptible->EligibilityChanged(e.eligible());
          if (follower_to_wake != nullptr) follower_to_wake->Wake();
        });
    if (!monitor.ok()) return Fail(monitor.status());
    eligibility = *std::move(monitor);
    options.eligibility = [m = eligibility.get()] { return m->Current(); };
  }

  // Before any thread starts, so that every thread inherits the mask.
  WorkerDaemon* daemon_to_stop = nullptr;
  absl::Mutex stop_mu;
  // The first signal leaves gracefully: the job goes on without this
  // worker from its next commit point. A second one stops at once.
  bool leaving = false;
  const absl::Duration grace = absl::GetFlag(FLAGS_leave_grace);
  auto signals = StopOnSignals::Install([&] {
    absl::MutexLock lock(&stop_mu);
    if (daemon_to_stop == nullptr) return;
    if (leaving || grace <= absl::ZeroDuration()) {
      daemon_to_stop->Stop();
    } else {
      leaving = true;
      daemon_to_stop->Leave(grace);
    }
  });
  if (!signals.ok()) return Fail(signals.status());
  std::unique_ptr<GroupTransports> transports;
  if (options.pool == v1::WORKER_POOL_DATACENTER) {
    auto server =
        StartPeerServer(absl::GetFlag(FLAGS_listen), *transport, absl::GetFlag(FLAGS_share_memory));
    if (!server.ok()) return Fail(server.status());
    transports = *std::move(server);
    LOG(INFO) << "worker " << options.name << ": Peer service on " << transports->peer_address();
  }
  std::unique_ptr<CoordinatorClient> client =
      NewGrpcCoordinatorClient(absl::GetFlag(FLAGS_coordinator), *transport, identity);
  // Followed models: fetched by their own thread, between the heartbeats
  // that offer them.
  std::unique_ptr<edge::ModelFollower> follower;
  if (!absl::GetFlag(FLAGS_follow_models).empty()) {
    edge::ModelFollowerOptions follow;
    follow.models = absl::GetFlag(FLAGS_follow_models);
    for (const std::string& name : follow.models) {
      if (absl::Status valid = ValidateModelName(name, "--follow_models"); !valid.ok()) {
        return Fail(valid);
      }
    }
    follow.dir = absl::GetFlag(FLAGS_models_dir);
    if (follow.dir.empty()) follow.dir = options.scratch_dir + "/models";
    std::function<bool()> may_download = [] { return true; };
    if (eligibility != nullptr) {
      may_download = [m = eligibility.get()] {
        const v1::Eligibility e = m->Current();
        return e.eligible() && e.unmetered_link();
      };
    }
    absl::StatusOr<std::unique_ptr<edge::ModelFollower>> made =
        edge::ModelFollower::Create(follow, client.get(), &clock, std::move(may_download));
    if (!made.ok()) return Fail(made.status());
    follower = *std::move(made);
    options.followed_models = [f = follower.get()] { return f->Held(); };
    options.on_model_updates = [f = follower.get()](const auto& updates) { f->Offer(updates); };
    follower->Start();
    absl::MutexLock lock(&preempt_mu);
    follower_to_wake = follower.get();
    LOG(INFO) << "worker " << options.name << ": following models "
              << absl::StrJoin(follow.models, ", ") << " in " << follow.dir;
  }
  WorkerDaemon daemon(options, client.get(), transports.get(), &clock);
  {
    absl::MutexLock lock(&preempt_mu);
    preemptible = &daemon;
  }
  {
    absl::MutexLock lock(&stop_mu);
    daemon_to_stop = &daemon;
  }
  absl::Status s = daemon.Run();
  {
    absl::MutexLock lock(&stop_mu);
    daemon_to_stop = nullptr;
  }
  {
    absl::MutexLock lock(&preempt_mu);
    preemptible = nullptr;
    follower_to_wake = nullptr;
  }
  follower.reset();  // its thread stops before the client goes
  return s.ok() ? 0 : Fail(s);
}

}  // namespace
}  // namespace nightshift

int main(int argc, char** argv) { return nightshift::Main(argc, argv); }
