// The trace CSV's columns, and the printing and parsing of their values
// (fleet/trace_csv.h describes the format). Internal to fleet/.
#ifndef NIGHTSHIFT_FLEET_INTERNAL_CSV_FIELDS_H_
#define NIGHTSHIFT_FLEET_INTERNAL_CSV_FIELDS_H_

#include <array>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "fleet/vehicle_traces.h"

namespace nightshift::fleet::internal {

enum CsvColumn {
  kVehicle,
  kAtSeconds,
  kIgnition,
  kGear,
  kOccupied,
  kCharging,
  kChargerPowerKw,
  kStateOfCharge,
  kEstimatedRangeKm,
  kPackTemperatureC,
  kCabinTemperatureC,
  kComputeTemperatureC,
  kNetwork,
  kMetered,
  kDataBudgetBytes,
  kPredictedDepartureSeconds,  // optional from here on
  kPlace,
  kCsvColumns
};
inline constexpr int kRequiredCsvColumns = kPredictedDepartureSeconds;
inline constexpr std::array<const char*, kCsvColumns> kCsvColumnNames = {
    "vehicle",
    "at_seconds",
    "ignition",
    "gear",
    "occupied",
    "charging",
    "charger_power_kw",
    "state_of_charge",
    "estimated_range_km",
    "pack_temperature_c",
    "cabin_temperature_c",
    "compute_temperature_c",
    "network",
    "metered",
    "data_budget_bytes",
    "predicted_departure_seconds",
    "place"};

// Short names: "OFF", "PARK", "WIFI"; "UNSPECIFIED" for a value newer
// than the format.
const char* CsvName(v1::VehicleState::Ignition ignition);
const char* CsvName(v1::VehicleState::Gear gear);
const char* CsvName(v1::VehicleState::Network network);

// Appends the shortest text that reads back as the same double.
void AppendCsvNumber(double value, std::string* out);

// "where:line: column name: 'value' why", as InvalidArgument.
absl::Status CsvFieldError(absl::string_view where, int line_number, int column,
                           absl::string_view value, absl::string_view why);

// The header's columns, each as its CsvColumn; errors name where:line.
absl::StatusOr<std::vector<int>> ParseCsvHeader(absl::string_view line, absl::string_view where,
                                                int line_number);

// One row into `step`: fields[i] is column columns[i].
absl::Status ParseCsvRow(absl::string_view where, int line_number, const std::vector<int>& columns,
                         const std::vector<absl::string_view>& fields, TraceStep* step);

}  // namespace nightshift::fleet::internal

#endif  // NIGHTSHIFT_FLEET_INTERNAL_CSV_FIELDS_H_
