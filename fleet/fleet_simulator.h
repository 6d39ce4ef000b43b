// FleetSimulator: a fleet of simulated vehicles against a real coordinator
// over real gRPC (mutual TLS and tokens, as agents dial it), each running
// the edge agent's own idle policy (worker/edge/idle_policy.h) on its own
// trace (generated: vehicle_traces.h, or an operator's CSV: trace_csv.h)
// and, when the coordinator makes it a DiLoCo replica, the agent's own
// round client (worker/edge/round_client.h) — computing for real on a
// chosen few vehicles, modelled (a wait of the compute time a vehicle of
// that rate would take) on the rest.
//
// Time: every vehicle lives on the virtual clock of its trace, from
// `start_hour` of day 0, running `speedup` times real time; the
// coordinator runs on real time (its leases and heartbeat intervals are
// real). The protocol, per vehicle, as the agent's:
//  1. Enroll: Register with the fleet's join token under a name of this
//     run (PREFIX-NAME); the reply gives its credential, worker id and its
//     pool's heartbeat interval. At most `max_in_flight` at once.
//  2. Heartbeat every interval (real), ±jitter, the first at a uniform
//     offset, with the policy's answer and the job it holds; directives
//     are applied (a DiLoCo assignment makes it a replica; a cancel ends
//     that) and acknowledged. A heartbeat still out when the next is due
//     skips it (counted late). NOT_FOUND re-registers.
//  3. The policy re-evaluates at every state change of the trace and every
//     `reevaluate` of virtual time; a flip sends a heartbeat at once (as
//     the agent's eligibility monitor wakes its daemon) and, to
//     ineligible, raises the replica's stop flag.
//  4. A replica that is eligible runs RoundClient::RunOnce on one of
//     `round_threads` threads, over its own credential; a wait answer
//     (not selected) is retried after the coordinator's retry_after.
//     Its compute (vehicle_compute.h) takes the time a vehicle of
//     `samples_per_second` would: modelled, or real training held to that
//     rate on the first `real_trainers` vehicles (one data set in memory
//     for all of them, one oneDNN thread each).
//
// Measured: heartbeat latency from send to reply (the measured window:
// the beats due after `warmup`), and how late each went out; the CPU the
// simulator and the coordinator used meanwhile; the coordinator's resident memory
// (/proc/PID); per virtual hour, eligible vehicles; the replicas' eligible time and the compute
// time of rounds that counted (pushed) against all rounds (preempted, withdrawn, refused: work
// lost); bytes fetched and pushed; compute that overlapped a driving span of its vehicle's trace
// (must be none beyond the preemption latency); and, every `check_view_every`, the coordinator's
// view of each vehicle's eligibility (paged /v1/workers over gRPC) against the vehicle's own
// answer, allowing those that flipped within one heartbeat interval.
//
// Thread-safety: Run() from one thread (it dispatches from it); calls
// complete on gRPC's threads and rounds run on the simulator's own.
#ifndef NIGHTSHIFT_FLEET_FLEET_SIMULATOR_H_
#define NIGHTSHIFT_FLEET_FLEET_SIMULATOR_H_

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "fleet/vehicle_traces.h"
#include "nightshift/v1/vehicle.pb.h"
#include "security/credentials.h"

namespace nightshift::fleet {

struct FleetSimOptions {
  std::string coordinator;  // HOST:PORT
  security::TransportSecurity security;
  std::string join_token;                         // a worker token
  std::string viewer_token;                       // for check_view_every: a viewer or admin token
  std::string name_prefix;                        // unique per run: names enroll once
  int64_t vehicles = 1000;                        // generated traces (ignored with traces_csv)
  std::string traces_csv;                         // an operator's traces to replay instead
  int channels = 16;                              // connections the vehicles share
  int max_in_flight = 512;                        // registrations at once
  double jitter = 0.1;                            // of the heartbeat interval, each way
  absl::Duration warmup = absl::Seconds(20);      // real, not measured
  absl::Duration measure = absl::Seconds(60);     // real, measured
  double start_hour = 10;                         // virtual time of day at the start
  double speedup = 1;                             // virtual seconds per real second
  absl::Duration reevaluate = absl::Seconds(60);  // virtual
  FleetTraceOptions traces;
  v1::IdlePolicy policy;  // unset fields at their defaults
  // Rounds.
  int round_threads = 32;
  double samples_per_second = 2000;  // a vehicle's modelled compute rate
  int real_trainers = 0;             // vehicles (by index) that train for real
  // End when a replica's job ends (a round's answer says so, or its
  // assignment is cancelled); the measured window's end still bounds the
  // run. For runs of one job.
  bool until_job_ends = false;
  absl::Duration check_view_every = absl::ZeroDuration();  // real; 0: never
  int coordinator_pid = 0;                                 // > 0: sample its memory and CPU
};

struct FleetSimReport {
  int64_t vehicles = 0;
  absl::Duration enroll_time;
  double heartbeat_interval_s = 0;  // as the coordinator chose it
  // The measured window.
  int64_t heartbeats = 0;                 // answered OK
  int64_t late = 0;                       // skipped: the previous one not back
  std::map<std::string, int64_t> errors;  // by code
  double heartbeats_per_second = 0;
  double p50_ms = 0, p90_ms = 0, p99_ms = 0, p999_ms = 0, max_ms = 0;
  // How late the simulator sent its beats (due to sent): above a few ms,
  // the load generator itself was short of CPU and sent in bursts.
  double send_lag_p99_ms = 0, send_lag_max_ms = 0;
  int64_t coordinator_rss_bytes = 0;       // at the end
  int64_t coordinator_peak_rss_bytes = 0;  // VmHWM
  // CPU used in the measured window, in cores (CPU seconds per second):
  // the coordinator's per heartbeat is its cost of one.
  double coordinator_cores = 0, simulator_cores = 0;
  // The whole run, on the virtual clock.
  double virtual_hours = 0;
  std::array<double, 24> mean_eligible_by_hour{};  // vehicles; -1: hour not simulated
  std::array<int64_t, 24> counted_by_hour{};       // pushed updates, by virtual hour
  std::array<int64_t, 24> preempted_by_hour{};
  double eligible_vehicle_hours = 0;
  double replica_eligible_hours = 0;  // eligible while a DiLoCo replica
  int64_t flips = 0;                  // eligibility changes
  int64_t replicas = 0;               // vehicles given a DiLoCo job
  int64_t rounds_run = 0;             // RunOnce calls that trained
  int64_t rounds_counted = 0;         // ... whose update the round took
  int64_t rounds_preempted = 0;       // ... stopped by a lapse
  double compute_hours = 0;           // virtual, in rounds that trained
  double counted_compute_hours = 0;   // ... that counted
  int64_t bytes_fetched = 0, bytes_pushed = 0;
  // RunOnce errors by code (a version gone before its fetch finished: the
  // rounds of a sped-up day close faster than a replica's calls).
  std::map<std::string, int64_t> round_errors;
  double max_driving_overlap_s = 0;  // virtual compute inside a drive, worst vehicle
  int64_t view_checks = 0, view_mismatches = 0;
};

absl::StatusOr<FleetSimReport> RunFleetSim(const FleetSimOptions& options);

// One line per figure, for logs and bench/README.md.
std::string FormatReport(const FleetSimReport& report);
// "hour,eligible_vehicles,updates_counted,rounds_preempted" and a row per
// simulated hour (bench/run_fleet.sh plots it).
std::string HourlyCsv(const FleetSimReport& report);

}  // namespace nightshift::fleet

#endif  // NIGHTSHIFT_FLEET_FLEET_SIMULATOR_H_
