// PlanTrips: when a vehicle drives, where to and for how long, day by day,
// from [AAA]'s statistics (fleet/vehicle_traces.h). Internal to fleet/.
//
// A day is one of two kinds:
//   1. A commute day (a commuter on a workday, 85% attendance): it leaves
//      home around 07:35 (so it plugs in at work around 08:00, as [CP]
//      finds), stays about 8.75 h, and drives home or, with Poisson(0.43)
//      errands on the way, via them. Mean: 2.43 trips.
//   2. Any other day: no trips with probability 0.2, else 2 + Poisson
//      (1.0375) trips (mean 2.43 over the day kind) whose start times
//      are drawn independently from a time-of-day distribution and sorted:
//      home -> elsewhere -> ... -> home.
// So every day, workday or not, has 2.43 trips on average, and the week
// has [AAA]'s commute share. The time-of-day distribution of kind 2 is
// [AAA]'s trip-start distribution less the commute trips' (derivation in
// trip_plan.cc). Trip durations are log-normal with mean 60.7 / 2.43 min.
// A trip never starts within 5 minutes of the previous arrival (it is
// pushed later if drawn earlier).
#ifndef NIGHTSHIFT_FLEET_INTERNAL_TRIP_PLAN_H_
#define NIGHTSHIFT_FLEET_INTERNAL_TRIP_PLAN_H_

#include <cstdint>
#include <vector>

#include "fleet/vehicle_traces.h"

namespace nightshift::fleet::internal {

// Random stream ids of a vehicle (fleet/internal/random.h).
inline constexpr uint64_t kProfileStream = 0;
inline constexpr uint64_t kTimelineStream = 1;
inline constexpr uint64_t WeatherStream(int day) { return 2 + 2 * static_cast<uint64_t>(day); }
inline constexpr uint64_t PlanStream(int day) { return 3 + 2 * static_cast<uint64_t>(day); }

inline constexpr double kMinStaySeconds = 5 * 60;

struct PlannedTrip {
  double depart_seconds = 0;  // from midnight of day 0
  double drive_seconds = 0;
  Place destination = Place::kHome;  // kHome, kWork or kElsewhere
};

// Days planned past the trace, at most, to find the departure that ends
// its last stay (so a trace's predictions do not depend on its length).
inline constexpr int kLookaheadDays = 7;

// The trips of the trace's days and of the following days up to the
// first trip after them, in time order; the vehicle starts day 0 at home
// and is home after the last trip.
std::vector<PlannedTrip> PlanTrips(const FleetTraceOptions& options, const VehicleProfile& profile,
                                   int64_t vehicle_index);

}  // namespace nightshift::fleet::internal

#endif  // NIGHTSHIFT_FLEET_INTERNAL_TRIP_PLAN_H_
