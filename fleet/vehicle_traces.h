// Vehicle traces: what a fleet of parked-and-driven vehicles reports, day
// by day, generated from published travel and charging statistics, to
// drive a fleet simulator whose edge agents each run the real idle policy
// (worker/edge/idle_policy.h) on a virtual clock.
//
// A trace is one vehicle's v1::VehicleState changes in time order. Each
// TraceStep's state holds from its `at_seconds` until the next step's, as
// a line of a --vehicle_trace replay does (worker/edge/vehicle_state_source.h):
// `at_seconds` counts from local midnight of day 0, so a simulator that
// starts its clock at that midnight replays the steps unchanged. States
// use the policy's vocabulary: driving = ignition ON, gear DRIVE,
// occupied; parked = ignition OFF, gear PARK, occupied for a minute or
// two after arrival and before departure, empty in between.
//
// predicted_departure is an absolute time in VehicleState, which a
// generated trace cannot know, so the proto field stays unset and each
// step carries `predicted_departure_seconds` on the trace's own clock
// (the start of the vehicle's next drive, known to the generator: an
// oracle prediction). ToReplayEntries() turns them into absolute times
// for a replay that starts at a given instant.
//
// Determinism and threads: a trace is a pure function of (options,
// vehicle index); each vehicle draws from random streams of its own (its
// profile, each day's trips and weather, its charging and stays:
// fleet/internal/random.h), so vehicles can be generated in any order,
// on any thread, and alone, and a trace of D days is the first D days of
// a longer one. FleetTraceGenerator
// is immutable after Create(); its const methods may be called from many
// threads at once.
//
// Published statistics the traces reproduce (the constants below; the
// README's "Vehicle traces" section and vehicle_traces_test.cc hold them):
//   [AAA] AAA Foundation for Traffic Safety, "American Driving Survey:
//         2023", research brief, August 2024.
//   [INL] Idaho National Laboratory, The EV Project: "Where do Nissan Leaf
//         drivers in The EV Project charge when they have the opportunity
//         to charge at work?", 2015 (Leafs, 2012-2013).
//   [CP]  ChargePoint, "Charging Forward at Work", 2022 report (internal
//         ChargePoint session data, 2022).
//   [JDP] J.D. Power, "2024 U.S. Electric Vehicle Experience (EVX) Home
//         Charging Study".
// Every other number is an assumption, labelled "Assumption" where it is
// set: FleetTraceOptions below, vehicle_traces.cc (batteries, data plans),
// internal/trip_plan.cc (days and trips), internal/state_timeline.cc
// (charging, network) and internal/thermal.h (temperatures).
#ifndef NIGHTSHIFT_FLEET_VEHICLE_TRACES_H_
#define NIGHTSHIFT_FLEET_VEHICLE_TRACES_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "nightshift/v1/vehicle.pb.h"

namespace nightshift::fleet {

// [AAA] Driving per driver and day, averaged over all days of 2023.
inline constexpr double kTripsPerDay = 2.43;
inline constexpr double kDrivingMinutesPerDay = 60.7;  // parked ~95.8% of the day
inline constexpr double kDrivingMilesPerDay = 29.1;    // sets the speed: 46.3 km/h
inline constexpr double kCommuteTripShare = 0.225;     // of all trips
// [AAA] Trip starts by local time: 11:00-14:59 26.1%, 15:00-18:59 27.6%,
// 03:00-06:59 6.7%, 23:00-02:59 4.5% (the rest, 07:00-10:59 and
// 19:00-22:59, split 21.0% / 14.1%: an assumption).
inline constexpr double kTripStartShare11To19 = 0.261 + 0.276;
// [INL] Share of charging events at home: 84% over all Leaf drivers, 65%
// for drivers with a charger at work (32% at work, 3% elsewhere).
inline constexpr double kHomeChargingShareLow = 0.65;
inline constexpr double kHomeChargingShareHigh = 0.84;
// [CP] A workplace charging session (plugged in) lasts 2 h 36 min on
// average; most start around 08:00, on arrival.
inline constexpr double kWorkplaceSessionHours = 2.6;
// [JDP] 84% of EV owners who charge at home use a Level 2 charger.
inline constexpr double kHomeLevel2Share = 0.84;

inline constexpr double kSecondsPerDay = 86400;

// Where a vehicle is; kept beside each step (a VehicleState has no place).
enum class Place : uint8_t { kUnknown = 0, kDriving, kHome, kWork, kElsewhere };
// "DRIVING", "HOME", "WORK", "ELSEWHERE"; "" for kUnknown.
const char* PlaceName(Place place);

struct TraceStep {
  v1::VehicleTraceEntry entry;  // state.predicted_departure is left unset
  // When the vehicle next drives off, on the clock of at_seconds; unset
  // while driving or when unknown.
  std::optional<double> predicted_departure_seconds;
  Place place = Place::kUnknown;
};
using VehicleTrace = std::vector<TraceStep>;

// Every field with its default; a share is a probability per vehicle.
struct FleetTraceOptions {
  uint64_t seed = 1;
  int days = 1;               // whole days from midnight, in [1, 366]
  int first_day_of_week = 0;  // of day 0: 0 = Monday ... 6 = Sunday
  // Fleet composition. Assumption, all but commuter_share: a fleet that
  // lends its computer is electric; 80% of EVs charge at home (owner
  // surveys put home-charger access at 80-86%); 85% of home parking
  // spots reach the home's Wi-Fi; 2% of vehicles are rural, on satellite
  // instead of cellular; 30% of commuters have a charger at work.
  double ev_share = 1.0;
  double home_charger_share = 0.80;  // of EVs
  double home_wifi_share = 0.85;
  double satellite_share = 0.02;
  // Vehicles driven to work on workdays (Monday to Friday, 85% attendance:
  // an assumption). 0.45 makes commute trips [AAA]'s 22.5% of all trips:
  // 2 trips x 0.45 x 0.85 x 5/7 = 0.547 of 2.43 trips a day.
  double commuter_share = 0.45;
  double workplace_charger_share = 0.30;  // of commuting EVs
  // Climate. Assumption: a temperate day, 10 to 20 degC (coldest 03:00,
  // warmest 15:00), each vehicle's region up to 5 degC warmer or colder; a
  // car parked in the open gains up to 15 degC in its cabin at solar noon
  // on a clear day (less on a cloudy one).
  double ambient_mean_c = 15;
  double ambient_daily_swing_c = 10;  // warmest minus coldest
  double solar_cabin_gain_c = 15;
  // Resolution: while parked, a new step is written at most every
  // update_minutes, and only when the state of charge moved by 1% or a
  // temperature by temperature_step_c (events always write one).
  double update_minutes = 30;
  double temperature_step_c = 1.0;
};

// Per vehicle, drawn once from (seed, index): the same on every day.
struct VehicleProfile {
  bool electric = true;
  bool home_charger = false;
  double home_charger_kw = 0;  // 7.2 (Level 2) or 1.4 (Level 1)
  bool home_wifi = false;
  bool satellite = false;  // its wide-area link is satellite, not cellular
  bool commuter = false;
  bool workplace_charger = false;
  double battery_kwh = 0;
  double kwh_per_km = 0;
  double climate_offset_c = 0;
  int64_t daily_data_budget_bytes = 0;  // of its metered link
};

class FleetTraceGenerator {
 public:
  // InvalidArgument naming the field when an option is out of range.
  static absl::StatusOr<FleetTraceGenerator> Create(const FleetTraceOptions& options);

  VehicleProfile Profile(int64_t vehicle_index) const;
  // Steps from at_seconds 0 (parked at home) until horizon_seconds().
  VehicleTrace Generate(int64_t vehicle_index) const;

  double horizon_seconds() const { return options_.days * kSecondsPerDay; }
  const FleetTraceOptions& options() const { return options_; }

 private:
  explicit FleetTraceGenerator(const FleetTraceOptions& options) : options_(options) {}
  FleetTraceOptions options_;
};

// "v17": the name traces and CSV files give vehicle 17.
std::string VehicleName(int64_t vehicle_index);

// The trace as --vehicle_trace replay lines for a replay that starts at
// `start`: predicted_departure set to start + predicted_departure_seconds.
std::vector<v1::VehicleTraceEntry> ToReplayEntries(const VehicleTrace& trace, absl::Time start);

}  // namespace nightshift::fleet

#endif  // NIGHTSHIFT_FLEET_VEHICLE_TRACES_H_
