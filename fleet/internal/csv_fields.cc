#include "fleet/internal/csv_fields.h"

#include <charconv>
#include <cmath>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "base/status_macros.h"

namespace nightshift::fleet::internal {
namespace {

using State = v1::VehicleState;

// Each enum's names in the format (trace_csv.h).
template <typename E>
using Named = std::pair<const char*, E>;
constexpr Named<State::Ignition> kIgnitions[] = {{"OFF", State::IGNITION_OFF},
                                                 {"ACCESSORY", State::IGNITION_ACCESSORY},
                                                 {"ON", State::IGNITION_ON},
                                                 {"UNSPECIFIED", State::IGNITION_UNSPECIFIED}};
constexpr Named<State::Gear> kGears[] = {{"PARK", State::GEAR_PARK},
                                         {"REVERSE", State::GEAR_REVERSE},
                                         {"NEUTRAL", State::GEAR_NEUTRAL},
                                         {"DRIVE", State::GEAR_DRIVE},
                                         {"UNSPECIFIED", State::GEAR_UNSPECIFIED}};
constexpr Named<State::Network> kNetworks[] = {
    {"NONE", State::NETWORK_NONE},           {"ETHERNET", State::NETWORK_ETHERNET},
    {"WIFI", State::NETWORK_WIFI},           {"CELLULAR", State::NETWORK_CELLULAR},
    {"SATELLITE", State::NETWORK_SATELLITE}, {"UNSPECIFIED", State::NETWORK_UNSPECIFIED}};
constexpr Named<Place> kPlaces[] = {{"DRIVING", Place::kDriving},
                                    {"HOME", Place::kHome},
                                    {"WORK", Place::kWork},
                                    {"ELSEWHERE", Place::kElsewhere}};

template <typename E, size_t N>
const char* NameOf(const Named<E> (&table)[N], E value) {
  for (const auto& [name, v] : table) {
    if (v == value) return name;
  }
  return "UNSPECIFIED";  // a value newer than this table
}

constexpr double kUnbounded = std::numeric_limits<double>::max();

// Parses one row's fields, naming the file, line and column in errors.
class FieldParser {
 public:
  FieldParser(absl::string_view where, int line) : where_(where), line_(line) {}

  absl::Status Error(int column, absl::string_view value, absl::string_view why) const {
    return CsvFieldError(where_, line_, column, value, why);
  }

  absl::Status Number(int column, absl::string_view field, double lo, double hi,
                      double* out) const {
    const std::from_chars_result r =
        std::from_chars(field.data(), field.data() + field.size(), *out);
    if (field.empty() || r.ec != std::errc() || r.ptr != field.data() + field.size() ||
        !std::isfinite(*out)) {
      return Error(column, field, "is not a number");
    }
    if (*out < lo || *out > hi) {
      return Error(column, field,
                   hi == kUnbounded ? absl::StrCat("is below ", lo)
                                    : absl::StrCat("is not in [", lo, ", ", hi, "]"));
    }
    return absl::OkStatus();
  }

  absl::Status Count(int column, absl::string_view field, int64_t* out) const {
    const std::from_chars_result r =
        std::from_chars(field.data(), field.data() + field.size(), *out);
    if (field.empty() || r.ec != std::errc() || r.ptr != field.data() + field.size()) {
      return Error(column, field, "is not a whole number");
    }
    if (*out < 0) return Error(column, field, "is below 0");
    return absl::OkStatus();
  }

  absl::Status Bool(int column, absl::string_view field, bool* out) const {
    if (field == "1" || field == "true") {
      *out = true;
    } else if (field == "0" || field == "false") {
      *out = false;
    } else {
      return Error(column, field, "is not 0, 1, false or true");
    }
    return absl::OkStatus();
  }

  template <typename E, size_t N>
  absl::Status Enum(int column, absl::string_view field, const Named<E> (&table)[N], E* out) const {
    std::vector<absl::string_view> names;
    for (const auto& [name, value] : table) {
      if (field == name) {
        *out = value;
        return absl::OkStatus();
      }
      names.push_back(name);
    }
    return Error(column, field, absl::StrCat("is not one of ", absl::StrJoin(names, ", ")));
  }

 private:
  absl::string_view where_;
  int line_;
};

}  // namespace

absl::Status ParseCsvRow(absl::string_view where, int line_number, const std::vector<int>& columns,
                         const std::vector<absl::string_view>& fields, TraceStep* step) {
  const FieldParser p(where, line_number);
  State& s = *step->entry.mutable_state();
  for (size_t i = 0; i < fields.size(); ++i) {
    const absl::string_view f = fields[i];
    const int c = columns[i];
    double number = 0;
    bool flag = false;
    switch (c) {
      case kVehicle:
        if (f.empty()) return p.Error(c, f, "is empty");
        break;
      case kAtSeconds:
        RETURN_IF_ERROR(p.Number(c, f, 0, kUnbounded, &number));
        step->entry.set_at_seconds(number);
        break;
      case kIgnition: {
        State::Ignition v = State::IGNITION_UNSPECIFIED;
        RETURN_IF_ERROR(p.Enum(c, f, kIgnitions, &v));
        s.set_ignition(v);
        break;
      }
      case kGear: {
        State::Gear v = State::GEAR_UNSPECIFIED;
        RETURN_IF_ERROR(p.Enum(c, f, kGears, &v));
        s.set_gear(v);
        break;
      }
      case kNetwork: {
        State::Network v = State::NETWORK_UNSPECIFIED;
        RETURN_IF_ERROR(p.Enum(c, f, kNetworks, &v));
        s.set_network(v);
        break;
      }
      case kOccupied:
      case kCharging:
      case kMetered:
        RETURN_IF_ERROR(p.Bool(c, f, &flag));
        if (c == kOccupied) s.set_occupied(flag);
        if (c == kCharging) s.set_charging(flag);
        if (c == kMetered) s.set_metered(flag);
        break;
      case kChargerPowerKw:
        RETURN_IF_ERROR(p.Number(c, f, 0, 1000, &number));
        s.set_charger_power_kw(number);
        break;
      case kStateOfCharge:
        RETURN_IF_ERROR(p.Number(c, f, 0, 1, &number));
        s.set_state_of_charge(number);
        break;
      case kEstimatedRangeKm:
        RETURN_IF_ERROR(p.Number(c, f, 0, 10000, &number));
        s.set_estimated_range_km(number);
        break;
      case kPackTemperatureC:
      case kCabinTemperatureC:
      case kComputeTemperatureC:
        RETURN_IF_ERROR(p.Number(c, f, -100, 200, &number));
        if (c == kPackTemperatureC) s.set_pack_temperature_c(number);
        if (c == kCabinTemperatureC) s.set_cabin_temperature_c(number);
        if (c == kComputeTemperatureC) s.set_compute_temperature_c(number);
        break;
      case kDataBudgetBytes: {
        int64_t bytes = 0;
        RETURN_IF_ERROR(p.Count(c, f, &bytes));
        s.set_data_budget_bytes(bytes);
        break;
      }
      case kPredictedDepartureSeconds:
        if (f.empty()) break;
        RETURN_IF_ERROR(p.Number(c, f, 0, kUnbounded, &number));
        step->predicted_departure_seconds = number;
        break;
      case kPlace:
        if (f.empty()) break;
        RETURN_IF_ERROR(p.Enum(c, f, kPlaces, &step->place));
        break;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<int>> ParseCsvHeader(absl::string_view line, absl::string_view where,
                                                int line_number) {
  const std::string at = absl::StrCat(where, ":", line_number, ": ");
  std::vector<int> columns;
  std::array<bool, kCsvColumns> seen = {};
  for (absl::string_view name : absl::StrSplit(line, ',')) {
    int c = 0;
    while (c < kCsvColumns && name != kCsvColumnNames[c]) ++c;
    if (c == kCsvColumns) {
      return absl::InvalidArgumentError(
          absl::StrCat(at, "unknown column '", name, "' in the header"));
    }
    if (seen[c]) {
      return absl::InvalidArgumentError(
          absl::StrCat(at, "column ", name, " appears twice in the header"));
    }
    seen[c] = true;
    columns.push_back(c);
  }
  for (int c = 0; c < kRequiredCsvColumns; ++c) {
    if (!seen[c]) {
      return absl::InvalidArgumentError(
          absl::StrCat(at, "the header has no column ", kCsvColumnNames[c]));
    }
  }
  return columns;
}

const char* CsvName(State::Ignition ignition) { return NameOf(kIgnitions, ignition); }
const char* CsvName(State::Gear gear) { return NameOf(kGears, gear); }
const char* CsvName(State::Network network) { return NameOf(kNetworks, network); }

void AppendCsvNumber(double value, std::string* out) {
  char buffer[32];
  const std::to_chars_result r = std::to_chars(buffer, buffer + sizeof(buffer), value);
  out->append(buffer, r.ptr);
}

absl::Status CsvFieldError(absl::string_view where, int line_number, int column,
                           absl::string_view value, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(where, ":", line_number, ": column ",
                                                 kCsvColumnNames[column], ": '", value, "' ", why));
}

}  // namespace nightshift::fleet::internal
