// nightshift-fleet-traces: generates a fleet's vehicle traces
// (fleet/vehicle_traces.h), optionally writes them as CSV
// (fleet/trace_csv.h), and says how fast it went.
//
//   nightshift-fleet-traces --vehicles=N [--seed=S] [--days=D]
//       [--first_day_of_week=0..6] [--satellite_share=F] [--ev_share=F]
//       [--out=FILE.csv]
//
// Prints the vehicles, the state changes, the seconds generation took on
// this one thread (writing timed apart), the memory a state change takes,
// and the traces' statistics beside their published targets. Vehicles are
// generated one at a time and written as they come, so memory stays that
// of one trace.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "fleet/trace_csv.h"
#include "fleet/trace_statistics.h"
#include "fleet/vehicle_traces.h"

ABSL_FLAG(int64_t, vehicles, 1000, "how many vehicles (indices 0 to N-1)");
ABSL_FLAG(uint64_t, seed, 1, "the fleet's seed");
ABSL_FLAG(int, days, 1, "whole days from midnight");
ABSL_FLAG(int, first_day_of_week, 0, "day 0's weekday: 0 = Monday ... 6 = Sunday");
ABSL_FLAG(double, satellite_share, nightshift::fleet::FleetTraceOptions().satellite_share,
          "share of vehicles on satellite links");
ABSL_FLAG(double, ev_share, nightshift::fleet::FleetTraceOptions().ev_share,
          "share of electric vehicles");
ABSL_FLAG(std::string, out, "", "write the traces here as CSV (nothing written if empty)");

namespace nightshift::fleet {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "nightshift-fleet-traces: %s\n", std::string(status.message()).c_str());
  return 1;
}

// Bytes a step holds: the struct in the vector and the state message.
int64_t StepBytes(const TraceStep& step) {
  return sizeof(TraceStep) + static_cast<int64_t>(step.entry.state().SpaceUsedLong());
}

int Run() {
  FleetTraceOptions options;
  options.seed = absl::GetFlag(FLAGS_seed);
  options.days = absl::GetFlag(FLAGS_days);
  options.first_day_of_week = absl::GetFlag(FLAGS_first_day_of_week);
  options.satellite_share = absl::GetFlag(FLAGS_satellite_share);
  options.ev_share = absl::GetFlag(FLAGS_ev_share);
  const int64_t vehicles = absl::GetFlag(FLAGS_vehicles);
  if (vehicles < 1) return Fail(absl::InvalidArgumentError("--vehicles must be at least 1"));
  absl::StatusOr<FleetTraceGenerator> generator = FleetTraceGenerator::Create(options);
  if (!generator.ok()) return Fail(generator.status());

  const std::string path = absl::GetFlag(FLAGS_out);
  std::ofstream file;
  std::string buffer;
  if (!path.empty()) {
    file.open(path, std::ios::binary | std::ios::trunc);
    buffer = TraceCsvHeader();
  }
  FleetStatisticsCounter statistics(generator->horizon_seconds());
  double generate_seconds = 0, write_seconds = 0;
  int64_t sampled_steps = 0, sampled_bytes = 0, written_bytes = 0;
  for (int64_t v = 0; v < vehicles; ++v) {
    const Clock::time_point start = Clock::now();
    const VehicleTrace trace = generator->Generate(v);
    generate_seconds += SecondsSince(start);
    statistics.Add(trace);
    if (v < 1000) {
      for (const TraceStep& step : trace) sampled_bytes += StepBytes(step);
      sampled_steps += trace.size();
    }
    if (!path.empty()) {
      const Clock::time_point write_start = Clock::now();
      if (absl::Status s = AppendTraceCsvRows(VehicleName(v), trace, &buffer); !s.ok()) {
        return Fail(s);
      }
      if (buffer.size() >= (4 << 20) || v + 1 == vehicles) {
        file.write(buffer.data(), static_cast<std::streamsize>(buffer.size()));
        written_bytes += buffer.size();
        buffer.clear();
      }
      write_seconds += SecondsSince(write_start);
    }
  }
  const FleetStatistics result = statistics.Result();
  std::printf("vehicles %lld, days %d, state changes %lld\n", static_cast<long long>(vehicles),
              options.days, static_cast<long long>(result.state_changes));
  std::printf("generated in %.3f s on one thread: %.0f vehicle-days/s, %.0f ns per state change\n",
              generate_seconds, result.vehicle_days / generate_seconds,
              1e9 * generate_seconds / result.state_changes);
  std::printf("memory: %.0f bytes per state change (first %lld vehicles)\n",
              static_cast<double>(sampled_bytes) / sampled_steps,
              static_cast<long long>(std::min<int64_t>(vehicles, 1000)));
  if (!path.empty()) {
    file.close();
    if (!file) return Fail(absl::InternalError(absl::StrCat(path, ": cannot write")));
    std::printf("wrote %s: %.1f MB in %.3f s\n", path.c_str(), written_bytes / 1e6, write_seconds);
  }
  std::printf("%s", FormatStatistics(result).c_str());
  return 0;
}

}  // namespace
}  // namespace nightshift::fleet

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return nightshift::fleet::Run();
}
