// nightshift-coordinator: accepts jobs, leases workers, schedules, and
// reports status over gRPC (with health checking and reflection) and HTTP.
//
//   nightshift-coordinator --listen=HOST:PORT --http=HOST:PORT --state_dir=DIR
//                          --tls_ca=FILE --tls_cert=FILE --tls_key=FILE
//                          [--admin_token_file=FILE] | --insecure
//
// State (jobs, history, workers, checkpoints, token hashes) lives under
// --state_dir and survives restarts. gRPC is mutual TLS and HTTP is TLS,
// both with the --tls_* files (security/credentials.h); every call needs a
// token. At first start (no admin token yet) it writes a new admin token
// to --admin_token_file (default STATE_DIR/admin.token, mode 0600). Stops
// cleanly on SIGINT/SIGTERM.

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "base/clock.h"
#include "base/filesystem.h"
#include "base/stop_signals.h"
#include "coordinator/coordinator.h"
#include "coordinator/coordinator_service.h"
#include "coordinator/http_api.h"
#include "coordinator/rpc_metrics.h"
#include "coordinator/rpc_metrics_interceptor.h"
#include "glog/logging.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "security/credentials.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:7070", "gRPC address (HOST:PORT)");
ABSL_FLAG(std::string, http, "127.0.0.1:8080", "HTTP status API address (HOST:PORT)");
ABSL_FLAG(std::string, state_dir, "nightshift-state",
          "folder for the SQLite state and checkpoints");
ABSL_FLAG(int, lease_ttl_ms, 6000, "a data-center worker silent this long is lost");
ABSL_FLAG(int, heartbeat_ms, 500, "how often data-center workers should heartbeat");
ABSL_FLAG(int, edge_lease_ttl_ms, 35000, "an edge agent silent this long is lost");
ABSL_FLAG(int, edge_heartbeat_ms, 10000,
          "how often edge agents should heartbeat (eligibility flips are sent at once)");
ABSL_FLAG(std::string, tls_ca, "", "PEM file of the CA that signs every component");
ABSL_FLAG(std::string, tls_cert, "", "PEM certificate chain of this coordinator");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert");
ABSL_FLAG(bool, insecure, false,
          "no TLS (plaintext; development only, logged loudly); tokens still apply");
ABSL_FLAG(std::string, admin_token_file, "",
          "where the first start writes a new admin token (default: STATE_DIR/admin.token)");

namespace nightshift::coordinator {
namespace {

// First start: a new admin token, written for the operator (0600).
absl::Status WriteBootstrapAdminToken(Coordinator* coordinator, const std::string& state_dir) {
  absl::StatusOr<std::string> token = coordinator->BootstrapAdminToken();
  if (!token.ok()) return token.status();
  if (token->empty()) return absl::OkStatus();  // an admin token exists
  std::string path = absl::GetFlag(FLAGS_admin_token_file);
  if (path.empty()) path = absl::StrCat(state_dir, "/admin.token");
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) return absl::FailedPreconditionError(absl::StrCat(path, ": cannot write"));
  const std::string line = *token + "\n";
  const bool written = write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
  close(fd);
  if (!written) return absl::DataLossError(absl::StrCat(path, ": write failed"));
  LOG(INFO) << "coordinator: first start: a new admin token is in " << path
            << " (nightshift --token_file=" << path << ", or copy it to the config directory)";
  return absl::OkStatus();
}

int Main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  google::InitGoogleLogging(argv[0]);
  FLAGS_logtostderr = true;
  // Debian's Abseil checks every Mutex acquisition for lock-order cycles
  // (a graph update per Lock): 5.5% of the coordinator's CPU under a
  // fleet's heartbeats (bench/README.md, "A fleet on one machine"). The
  // unit and sanitizer tests keep the check; the daemon does not.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  // Before any thread starts, so that every thread inherits the mask.
  absl::Notification stop;
  auto signals = StopOnSignals::Install([&stop] {
    if (!stop.HasBeenNotified()) stop.Notify();
  });
  if (!signals.ok()) {
    std::fprintf(stderr, "nightshift-coordinator: %s\n", signals.status().ToString().c_str());
    return 1;
  }
  absl::StatusOr<security::TransportSecurity> transport = security::TransportSecurityFromFlags(
      absl::GetFlag(FLAGS_insecure),
      {absl::GetFlag(FLAGS_tls_ca), absl::GetFlag(FLAGS_tls_cert), absl::GetFlag(FLAGS_tls_key)},
      "nightshift-coordinator");
  if (!transport.ok()) {
    std::fprintf(stderr, "nightshift-coordinator: %s\n", transport.status().ToString().c_str());
    return 1;
  }
  const std::string dir = absl::GetFlag(FLAGS_state_dir);
  if (absl::Status made = MakeDirectories(dir); !made.ok()) {
    std::fprintf(stderr, "nightshift-coordinator: --state_dir: %s\n", made.ToString().c_str());
    return 1;
  }
  auto store = JobStore::Open(absl::StrCat(dir, "/state.db"));
  if (!store.ok()) {
    std::fprintf(stderr, "nightshift-coordinator: %s\n", store.status().ToString().c_str());
    return 1;
  }
  RealClock clock;
  CoordinatorOptions options;
  options.state_dir = dir;
  options.lease_ttl = absl::Milliseconds(absl::GetFlag(FLAGS_lease_ttl_ms));
  options.heartbeat_interval = absl::Milliseconds(absl::GetFlag(FLAGS_heartbeat_ms));
  options.edge_lease_ttl = absl::Milliseconds(absl::GetFlag(FLAGS_edge_lease_ttl_ms));
  options.edge_heartbeat_interval = absl::Milliseconds(absl::GetFlag(FLAGS_edge_heartbeat_ms));
  auto coordinator = Coordinator::Create(store->get(), &clock, options);
  if (!coordinator.ok()) {
    std::fprintf(stderr, "nightshift-coordinator: %s\n", coordinator.status().ToString().c_str());
    return 1;
  }
  if (absl::Status s = WriteBootstrapAdminToken(coordinator->get(), dir); !s.ok()) {
    std::fprintf(stderr, "nightshift-coordinator: %s\n", s.ToString().c_str());
    return 1;
  }
  CoordinatorService service(coordinator->get(), &clock);
  RpcMetrics grpc_metrics(&clock);  // every call's latency, for /metrics
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(absl::GetFlag(FLAGS_listen),
                           security::ServerCredentials(*transport, absl::GetFlag(FLAGS_listen)),
                           &port);
  builder.SetMaxReceiveMessageSize(kMaxMessageBytes);
  builder.RegisterService(&service);
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(std::make_unique<RpcMetricsInterceptorFactory>(&grpc_metrics));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::fprintf(stderr, "nightshift-coordinator: cannot listen on %s\n",
                 absl::GetFlag(FLAGS_listen).c_str());
    return 1;
  }
  HttpApiOptions http_options;
  http_options.grpc_metrics = &grpc_metrics;
  http_options.clock = &clock;
  auto http =
      HttpApi::Start(coordinator->get(), absl::GetFlag(FLAGS_http), *transport, http_options);
  if (!http.ok()) {
    std::fprintf(stderr, "nightshift-coordinator: --http: %s\n", http.status().ToString().c_str());
    return 1;
  }
  LOG(INFO) << "coordinator: gRPC on port " << port << ", HTTP" << (transport->insecure ? "" : "S")
            << " on port " << (*http)->port() << ", state in " << dir
            << (transport->insecure ? ", INSECURE (no TLS)" : ", mutual TLS");

  // Publishes (spec.publish_as) on a thread of their own: a model's file
  // work never holds up the ticks.
  std::thread publisher([&] {
    while (!stop.WaitForNotificationWithTimeout(absl::Milliseconds(250))) {
      (*coordinator)->PublishQueued();
    }
  });
  // Leases expire even when no worker calls in.
  while (!stop.WaitForNotificationWithTimeout(absl::Milliseconds(250))) {
    (*coordinator)->Tick();
  }
  publisher.join();
  LOG(INFO) << "coordinator: stopping";
  (*http)->Stop();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  return 0;
}

}  // namespace
}  // namespace nightshift::coordinator

int main(int argc, char** argv) { return nightshift::coordinator::Main(argc, argv); }
