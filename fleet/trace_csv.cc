#include "fleet/trace_csv.h"

#include <filesystem>
#include <fstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "base/status_macros.h"
#include "fleet/internal/csv_fields.h"

namespace nightshift::fleet {

using internal::AppendCsvNumber;
using internal::CsvName;
using State = v1::VehicleState;

std::string TraceCsvHeader() {
  return absl::StrCat(absl::StrJoin(internal::kCsvColumnNames, ","), "\n");
}

absl::Status AppendTraceCsvRows(absl::string_view vehicle, const VehicleTrace& trace,
                                std::string* out) {
  if (vehicle.empty() || vehicle.find_first_of(",\"\r\n") != absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "vehicle name '", vehicle, "' cannot be written to a trace CSV: empty, or with a comma, ",
        "quote or line break"));
  }
  for (const TraceStep& step : trace) {
    const State& s = step.entry.state();
    absl::StrAppend(out, vehicle, ",");
    AppendCsvNumber(step.entry.at_seconds(), out);
    absl::StrAppend(out, ",", CsvName(s.ignition()), ",", CsvName(s.gear()), ",",
                    s.occupied() ? "1," : "0,", s.charging() ? "1," : "0,");
    for (double v : {s.charger_power_kw(), s.state_of_charge(), s.estimated_range_km(),
                     s.pack_temperature_c(), s.cabin_temperature_c(), s.compute_temperature_c()}) {
      AppendCsvNumber(v, out);
      out->push_back(',');
    }
    absl::StrAppend(out, CsvName(s.network()), ",", s.metered() ? "1," : "0,",
                    s.data_budget_bytes(), ",");
    if (step.predicted_departure_seconds.has_value()) {
      AppendCsvNumber(*step.predicted_departure_seconds, out);
    }
    absl::StrAppend(out, ",", PlaceName(step.place), "\n");
  }
  return absl::OkStatus();
}

absl::Status WriteTraceCsv(const std::string& path, const VehicleTraces& traces) {
  std::string buffer = TraceCsvHeader();
  for (const auto& [vehicle, trace] : traces) {  // names first: no half-written file for one
    RETURN_IF_ERROR(AppendTraceCsvRows(vehicle, {}, &buffer));
  }
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  if (!file) return absl::InternalError(absl::StrCat(path, ": cannot create the file"));
  for (const auto& [vehicle, trace] : traces) {
    RETURN_IF_ERROR(AppendTraceCsvRows(vehicle, trace, &buffer));
    if (buffer.size() >= (1 << 20)) {
      file.write(buffer.data(), static_cast<std::streamsize>(buffer.size()));
      buffer.clear();
    }
  }
  file.write(buffer.data(), static_cast<std::streamsize>(buffer.size()));
  file.close();
  if (!file) return absl::InternalError(absl::StrCat(path, ": cannot write the vehicle traces"));
  return absl::OkStatus();
}

absl::StatusOr<VehicleTraces> ParseTraceCsv(absl::string_view text, absl::string_view where,
                                            const TraceCsvLimits& limits) {
  if (static_cast<int64_t>(text.size()) > limits.max_file_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": ", text.size(),
                                                   " bytes is over the bound of ",
                                                   limits.max_file_bytes, " bytes for a trace"));
  }
  struct Building {
    VehicleTrace trace;
    int last_line = 0;
  };
  std::map<std::string, Building, std::less<>> building;
  std::vector<int> columns;
  std::vector<absl::string_view> fields;
  Building* current = nullptr;  // the last row's vehicle
  absl::string_view current_name;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    if (static_cast<int64_t>(line.size()) > limits.max_line_bytes) {
      return absl::InvalidArgumentError(absl::StrCat(where, ":", line_number, ": a line of ",
                                                     line.size(), " bytes is over the bound of ",
                                                     limits.max_line_bytes, " bytes"));
    }
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    if (columns.empty()) {  // the first line that is not blank
      ASSIGN_OR_RETURN(columns, internal::ParseCsvHeader(line, where, line_number));
      continue;
    }
    fields = absl::StrSplit(line, ',');
    if (fields.size() != columns.size()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ":", line_number, ": ", fields.size(),
                                                     " columns where the header has ",
                                                     columns.size()));
    }
    TraceStep step;
    RETURN_IF_ERROR(internal::ParseCsvRow(where, line_number, columns, fields, &step));
    absl::string_view vehicle;
    for (size_t i = 0; i < columns.size(); ++i) {
      if (columns[i] == internal::kVehicle) vehicle = fields[i];
    }
    if (current == nullptr || vehicle != current_name) {
      auto it = building.find(vehicle);
      if (it == building.end()) it = building.emplace(std::string(vehicle), Building()).first;
      current = &it->second;
      current_name = it->first;
    }
    if (!current->trace.empty() &&
        step.entry.at_seconds() < current->trace.back().entry.at_seconds()) {
      size_t at_field = 0;
      while (columns[at_field] != internal::kAtSeconds) ++at_field;
      std::string why = "is before ";
      AppendCsvNumber(current->trace.back().entry.at_seconds(), &why);
      absl::StrAppend(&why, ", vehicle ", vehicle, "'s time on line ", current->last_line);
      return internal::CsvFieldError(where, line_number, internal::kAtSeconds, fields[at_field],
                                     why);
    }
    current->last_line = line_number;
    current->trace.push_back(std::move(step));
  }
  if (columns.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": no header row (an empty file)"));
  }
  VehicleTraces traces;
  for (auto& [vehicle, b] : building) traces.emplace(vehicle, std::move(b.trace));
  return traces;
}

absl::StatusOr<VehicleTraces> ReadTraceCsv(const std::string& path, const TraceCsvLimits& limits) {
  std::error_code error;
  const std::uintmax_t size = std::filesystem::file_size(path, error);
  if (error) {
    return absl::NotFoundError(
        absl::StrCat(path, ": cannot read the vehicle traces: ", error.message()));
  }
  if (size > static_cast<std::uintmax_t>(limits.max_file_bytes)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", size, " bytes is over the bound of ",
                                                   limits.max_file_bytes, " bytes for a trace"));
  }
  std::ifstream file(path, std::ios::binary);
  std::string text(size, '\0');
  if (!file.read(text.data(), static_cast<std::streamsize>(size))) {
    return absl::NotFoundError(absl::StrCat(path, ": cannot read the vehicle traces"));
  }
  return ParseTraceCsv(text, path, limits);
}

}  // namespace nightshift::fleet
