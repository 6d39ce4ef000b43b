// Vehicle traces as CSV: the generator's output, and the format in which a
// fleet operator brings real logs to replay (fleet/vehicle_traces.h).
//
// A header row names the columns, then one row per state change:
//
//   vehicle,at_seconds,ignition,gear,occupied,charging,charger_power_kw,
//   state_of_charge,estimated_range_km,pack_temperature_c,
//   cabin_temperature_c,compute_temperature_c,network,metered,
//   data_budget_bytes,predicted_departure_seconds,place
//
//   - The header may list the columns in any order. All but the last two
//     are required; predicted_departure_seconds (seconds on the clock of
//     at_seconds) and place may be left out, or left empty in a row:
//     unknown.
//   - vehicle: a name without commas, quotes or line breaks (there is no
//     quoting). Rows of different vehicles may interleave (a log sorted by
//     time); one vehicle's at_seconds never go back.
//   - at_seconds: seconds from local midnight of the trace's first day, a
//     number >= 0; data_budget_bytes a whole number >= 0.
//   - ignition OFF|ACCESSORY|ON, gear PARK|REVERSE|NEUTRAL|DRIVE, network
//     NONE|ETHERNET|WIFI|CELLULAR|SATELLITE, each also UNSPECIFIED (the
//     policy's "unknown"); place DRIVING|HOME|WORK|ELSEWHERE.
//   - occupied, charging, metered: 0, 1, false or true.
//   - Ranges: charger_power_kw [0, 1000], state_of_charge [0, 1],
//     estimated_range_km [0, 10000], temperatures [-100, 200] degC.
//   - Lines end in \n or \r\n; blank lines are skipped.
// The writer prints numbers in their shortest exact form, so writing and
// reading a trace gives it back bit for bit. A state's own
// predicted_departure and observed (absolute times) are not written.
//
// Bad input is refused with InvalidArgument naming the file, the line
// and the column: "fleet.csv:17: column state_of_charge: '1.7' is not in
// [0, 1]". Reading is bounded (TraceCsvLimits): a file over its bound is
// refused before it is read, a line over its bound when it is reached,
// each named.
//
// All functions are thread-compatible (no shared state).
#ifndef NIGHTSHIFT_FLEET_TRACE_CSV_H_
#define NIGHTSHIFT_FLEET_TRACE_CSV_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "fleet/vehicle_traces.h"

namespace nightshift::fleet {

// Traces by vehicle name (std::less<>: look up by string_view).
using VehicleTraces = std::map<std::string, VehicleTrace, std::less<>>;

struct TraceCsvLimits {
  // 1 GiB: about 8 million rows, some 230,000 vehicle-days at the
  // generator's ~35 rows a day, held in memory at ~180 bytes a row.
  int64_t max_file_bytes = int64_t{1} << 30;
  // A row of the generator is ~130 bytes; 1 KiB leaves room for names.
  int64_t max_line_bytes = 1024;
};

// The header row, with its line break.
std::string TraceCsvHeader();

// Appends one row per step to `out`; InvalidArgument for a vehicle name
// the format cannot hold.
absl::Status AppendTraceCsvRows(absl::string_view vehicle, const VehicleTrace& trace,
                                std::string* out);

// Writes the header and every vehicle's rows to `path`. A name the format
// cannot hold is refused before the file is created; an I/O error is
// Internal and may leave part of the file.
absl::Status WriteTraceCsv(const std::string& path, const VehicleTraces& traces);

// `where` names the text in errors (a file name).
absl::StatusOr<VehicleTraces> ParseTraceCsv(absl::string_view text, absl::string_view where,
                                            const TraceCsvLimits& limits = {});
absl::StatusOr<VehicleTraces> ReadTraceCsv(const std::string& path,
                                           const TraceCsvLimits& limits = {});

}  // namespace nightshift::fleet

#endif  // NIGHTSHIFT_FLEET_TRACE_CSV_H_
