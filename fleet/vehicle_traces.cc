#include "fleet/vehicle_traces.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "fleet/internal/random.h"
#include "fleet/internal/state_timeline.h"
#include "fleet/internal/trip_plan.h"
#include "google/protobuf/util/time_util.h"

namespace nightshift::fleet {
namespace {

// Vehicles. Assumption: batteries of 55-100 kWh and 0.15-0.22 kWh/km
// (the spread of 2023 US EVs' usable capacity and EPA-rated consumption,
// 24-35 kWh/100 mi), uniform; a metered link allows 500 MB a day on
// cellular, 100 MB on satellite.
constexpr double kMinBatteryKwh = 55, kMaxBatteryKwh = 100;
constexpr double kMinKwhPerKm = 0.15, kMaxKwhPerKm = 0.22;
constexpr double kMaxClimateOffsetC = 5;
constexpr int64_t kCellularDailyBytes = 500'000'000;
constexpr int64_t kSatelliteDailyBytes = 100'000'000;
// [JDP] Level 2 at home; Level 1 otherwise (a 120 V outlet).
constexpr double kHomeLevel2Kw = 7.2, kHomeLevel1Kw = 1.4;

absl::Status CheckShare(const char* field, double value) {
  if (value >= 0 && value <= 1) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("fleet trace option ", field, " must be in [0, 1], not ", value));
}

absl::Status CheckRange(const char* field, double value, double lo, double hi) {
  if (value >= lo && value <= hi) return absl::OkStatus();  // false for NaN
  return absl::InvalidArgumentError(
      absl::StrCat("fleet trace option ", field, " must be in [", lo, ", ", hi, "], not ", value));
}

absl::Status Validate(const FleetTraceOptions& o) {
  for (const absl::Status& status : {
           CheckRange("days", o.days, 1, 366),
           CheckRange("first_day_of_week", o.first_day_of_week, 0, 6),
           CheckShare("ev_share", o.ev_share),
           CheckShare("home_charger_share", o.home_charger_share),
           CheckShare("home_wifi_share", o.home_wifi_share),
           CheckShare("satellite_share", o.satellite_share),
           CheckShare("commuter_share", o.commuter_share),
           CheckShare("workplace_charger_share", o.workplace_charger_share),
           CheckRange("ambient_mean_c", o.ambient_mean_c, -50, 50),
           CheckRange("ambient_daily_swing_c", o.ambient_daily_swing_c, 0, 40),
           CheckRange("solar_cabin_gain_c", o.solar_cabin_gain_c, 0, 60),
           CheckRange("update_minutes", o.update_minutes, 1, 24 * 60),
           CheckRange("temperature_step_c", o.temperature_step_c, 0.1, 100),
       }) {
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

}  // namespace

const char* PlaceName(Place place) {
  switch (place) {
    case Place::kDriving:
      return "DRIVING";
    case Place::kHome:
      return "HOME";
    case Place::kWork:
      return "WORK";
    case Place::kElsewhere:
      return "ELSEWHERE";
    default:
      return "";
  }
}

absl::StatusOr<FleetTraceGenerator> FleetTraceGenerator::Create(const FleetTraceOptions& options) {
  if (absl::Status status = Validate(options); !status.ok()) return status;
  return FleetTraceGenerator(options);
}

VehicleProfile FleetTraceGenerator::Profile(int64_t vehicle_index) const {
  internal::RandomStream random(options_.seed, vehicle_index, internal::kProfileStream);
  // Every draw is made, in this order, whatever the options: changing one
  // share leaves the vehicles' other traits as they were.
  const double electric = random.Uniform(), home_charger = random.Uniform(),
               level2 = random.Uniform(), wifi = random.Uniform(), satellite = random.Uniform(),
               commuter = random.Uniform(), work_charger = random.Uniform();
  VehicleProfile p;
  p.electric = electric < options_.ev_share;
  p.home_charger = p.electric && home_charger < options_.home_charger_share;
  p.home_charger_kw = !p.home_charger             ? 0
                      : level2 < kHomeLevel2Share ? kHomeLevel2Kw
                                                  : kHomeLevel1Kw;
  p.home_wifi = wifi < options_.home_wifi_share;
  p.satellite = satellite < options_.satellite_share;
  p.commuter = commuter < options_.commuter_share;
  p.workplace_charger = p.electric && p.commuter && work_charger < options_.workplace_charger_share;
  p.battery_kwh = random.Uniform(kMinBatteryKwh, kMaxBatteryKwh);
  p.kwh_per_km = random.Uniform(kMinKwhPerKm, kMaxKwhPerKm);
  p.climate_offset_c = random.Uniform(-kMaxClimateOffsetC, kMaxClimateOffsetC);
  p.daily_data_budget_bytes = p.satellite ? kSatelliteDailyBytes : kCellularDailyBytes;
  return p;
}

VehicleTrace FleetTraceGenerator::Generate(int64_t vehicle_index) const {
  const VehicleProfile profile = Profile(vehicle_index);
  const std::vector<internal::PlannedTrip> trips =
      internal::PlanTrips(options_, profile, vehicle_index);
  return internal::BuildTimeline(options_, profile, vehicle_index, trips);
}

std::string VehicleName(int64_t vehicle_index) { return absl::StrCat("v", vehicle_index); }

std::vector<v1::VehicleTraceEntry> ToReplayEntries(const VehicleTrace& trace, absl::Time start) {
  std::vector<v1::VehicleTraceEntry> entries;
  entries.reserve(trace.size());
  for (const TraceStep& step : trace) {
    entries.push_back(step.entry);
    if (step.predicted_departure_seconds.has_value()) {
      const absl::Time departure = start + absl::Seconds(*step.predicted_departure_seconds);
      *entries.back().mutable_state()->mutable_predicted_departure() =
          google::protobuf::util::TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(departure));
    }
  }
  return entries;
}

}  // namespace nightshift::fleet
