// nightshift-fleet-sim: a simulated fleet of vehicles against a real
// coordinator (fleet/fleet_simulator.h).
//
//   nightshift-fleet-sim --coordinator=HOST:PORT --vehicles=N
//       --tls_ca=F --tls_cert=F --tls_key=F | --insecure
//       --token_file=JOIN_TOKEN [--coordinator_pid=PID]
//       [--warmup=20s] [--measure=60s] [--channels=16] [--start_hour=10]
//       [--speedup=1] [--seed=1] [--idle_policy=FILE] [--traces_csv=FILE]
//       [--round_threads=32] [--samples_per_second=2000] [--real_trainers=0]
//       [--check_view_every=D --viewer_token_file=F]
//
// Every vehicle enrolls with the join token under a name of this run,
// then heartbeats at the interval the coordinator gives its pool with the
// answer of its own idle policy on its trace, and takes part in rounds
// when the coordinator makes it a DiLoCo replica; prints heartbeat latency
// percentiles over the measured window, the coordinator's resident
// memory, eligibility by hour and the rounds' figures. Exit 1 if anything
// failed to run.
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <random>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "fleet/fleet_simulator.h"
#include "security/credentials.h"
#include "security/token_file.h"
#include "worker/edge/idle_policy.h"

ABSL_FLAG(std::string, coordinator, "127.0.0.1:7070", "coordinator gRPC address");
ABSL_FLAG(int64_t, vehicles, 1000, "simulated vehicles");
ABSL_FLAG(int, channels, 16, "connections the vehicles share");
ABSL_FLAG(absl::Duration, warmup, absl::Seconds(20), "heartbeats before the measured window");
ABSL_FLAG(absl::Duration, measure, absl::Seconds(60), "the measured window");
ABSL_FLAG(double, start_hour, 10, "virtual time of day at the start");
ABSL_FLAG(double, speedup, 1, "virtual seconds per real second");
ABSL_FLAG(uint64_t, seed, 1, "trace seed");
ABSL_FLAG(std::string, idle_policy, "", "textproto IdlePolicy (default: its defaults)");
ABSL_FLAG(int, coordinator_pid, 0, "the coordinator's pid, to read its memory and CPU");
ABSL_FLAG(std::string, traces_csv, "",
          "replay these traces (fleet/trace_csv.h) instead of generating");
ABSL_FLAG(absl::Duration, reevaluate, absl::Seconds(60), "virtual time between policy checks");
ABSL_FLAG(int, round_threads, 32, "vehicles in a round at once, at most");
ABSL_FLAG(double, samples_per_second, 2000, "a vehicle's modelled compute rate");
ABSL_FLAG(int, real_trainers, 0,
          "vehicles (the first N) that train for real, held to --samples_per_second");
ABSL_FLAG(bool, until_job_ends, false,
          "end when the job's rounds end (a replica is told so), within --measure");
ABSL_FLAG(absl::Duration, check_view_every, absl::ZeroDuration(),
          "compare the coordinator's view of eligibility with the vehicles' this often (0: never)");
ABSL_FLAG(std::string, viewer_token_file, "", "a viewer token, for --check_view_every");
ABSL_FLAG(std::string, hourly_csv, "", "also write the figures by virtual hour to this CSV");
ABSL_FLAG(std::string, token_file, "", "a worker join token");
ABSL_FLAG(std::string, tls_ca, "", "PEM CA file");
ABSL_FLAG(std::string, tls_cert, "", "PEM client certificate");
ABSL_FLAG(std::string, tls_key, "", "PEM client key");
ABSL_FLAG(bool, insecure, false, "no TLS (a coordinator started with --insecure)");

namespace nightshift::fleet {
namespace {

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "nightshift-fleet-sim: %s\n", s.ToString().c_str());
  return 1;
}

int Main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  // Debian's Abseil checks lock order on every acquisition: 3% of the
  // load generator's CPU at 100,000 vehicles, taken from the coordinator
  // it shares the cores with (the coordinator daemon turns it off too).
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  FleetSimOptions o;
  o.coordinator = absl::GetFlag(FLAGS_coordinator);
  absl::StatusOr<security::TransportSecurity> transport = security::TransportSecurityFromFlags(
      absl::GetFlag(FLAGS_insecure),
      {absl::GetFlag(FLAGS_tls_ca), absl::GetFlag(FLAGS_tls_cert), absl::GetFlag(FLAGS_tls_key)},
      "nightshift-fleet-sim");
  if (!transport.ok()) return Fail(transport.status());
  o.security = *transport;
  absl::StatusOr<std::string> token = security::ReadTokenFile(absl::GetFlag(FLAGS_token_file));
  if (!token.ok()) return Fail(token.status());
  o.join_token = *token;
  if (!absl::GetFlag(FLAGS_idle_policy).empty()) {
    absl::StatusOr<v1::IdlePolicy> policy = edge::LoadIdlePolicy(absl::GetFlag(FLAGS_idle_policy));
    if (!policy.ok()) return Fail(policy.status());
    o.policy = *policy;
  }
  // Names enroll once: every run its own.
  o.name_prefix = absl::StrCat("sim", std::random_device()() % 1000000);
  o.vehicles = absl::GetFlag(FLAGS_vehicles);
  o.channels = absl::GetFlag(FLAGS_channels);
  o.warmup = absl::GetFlag(FLAGS_warmup);
  o.measure = absl::GetFlag(FLAGS_measure);
  o.start_hour = absl::GetFlag(FLAGS_start_hour);
  o.speedup = absl::GetFlag(FLAGS_speedup);
  o.traces.seed = absl::GetFlag(FLAGS_seed);
  o.coordinator_pid = absl::GetFlag(FLAGS_coordinator_pid);
  o.traces_csv = absl::GetFlag(FLAGS_traces_csv);
  o.reevaluate = absl::GetFlag(FLAGS_reevaluate);
  o.round_threads = absl::GetFlag(FLAGS_round_threads);
  o.samples_per_second = absl::GetFlag(FLAGS_samples_per_second);
  o.real_trainers = absl::GetFlag(FLAGS_real_trainers);
  o.until_job_ends = absl::GetFlag(FLAGS_until_job_ends);
  o.check_view_every = absl::GetFlag(FLAGS_check_view_every);
  if (!absl::GetFlag(FLAGS_viewer_token_file).empty()) {
    absl::StatusOr<std::string> viewer =
        security::ReadTokenFile(absl::GetFlag(FLAGS_viewer_token_file));
    if (!viewer.ok()) return Fail(viewer.status());
    o.viewer_token = *viewer;
  }
  absl::StatusOr<FleetSimReport> report = RunFleetSim(o);
  if (!report.ok()) return Fail(report.status());
  std::fputs(FormatReport(*report).c_str(), stdout);
  if (!absl::GetFlag(FLAGS_hourly_csv).empty()) {
    std::ofstream out(absl::GetFlag(FLAGS_hourly_csv));
    out << HourlyCsv(*report);
    if (!out) return Fail(absl::DataLossError(absl::GetFlag(FLAGS_hourly_csv) + ": write failed"));
  }
  return 0;
}

}  // namespace
}  // namespace nightshift::fleet

int main(int argc, char** argv) { return nightshift::fleet::Main(argc, argv); }
