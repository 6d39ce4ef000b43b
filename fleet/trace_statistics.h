// FleetStatistics: what a set of vehicle traces says about driving and
// charging, measured from the steps alone, in the terms of the published
// statistics the generator follows (fleet/vehicle_traces.h): trips and
// driving minutes a day, the parked share, when trips start, where
// charging sessions start and how long workplace sessions last.
//
// Definitions: a trip starts at a step with ignition ON and gear DRIVE
// after one without; parked is ignition OFF and gear PARK; a charging
// session starts at a charging step after a step that is not charging (a
// session already under way at a trace's first step is not counted) and
// ends at the next step that is not charging. A step lasts until the next
// one, the last until the horizon. Where a step's place is unknown (a
// trace read from a CSV without places), its sessions count as "unknown".
//
// FleetStatisticsCounter is not thread-safe; give each thread its own and
// Merge() them.
#ifndef NIGHTSHIFT_FLEET_TRACE_STATISTICS_H_
#define NIGHTSHIFT_FLEET_TRACE_STATISTICS_H_

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "fleet/vehicle_traces.h"

namespace nightshift::fleet {

// [AAA]'s trip-start bins: 23-03, 03-07, 07-11, 11-15, 15-19, 19-23 h.
inline constexpr int kTripStartBins = 6;

struct FleetStatistics {
  int64_t vehicles = 0;
  double vehicle_days = 0;
  int64_t state_changes = 0;
  int64_t trips = 0;
  double trips_per_day = 0;            // per vehicle
  double driving_minutes_per_day = 0;  // per vehicle
  double parked_share = 0;             // of all vehicle time
  double trip_starts_11_to_19_share = 0;
  std::array<double, kTripStartBins> trip_start_share = {};
  int64_t charging_sessions = 0;
  double home_charging_share = 0;  // of sessions
  double work_charging_share = 0;
  double elsewhere_charging_share = 0;
  double home_evening_start_share = 0;  // of home sessions: begun 15:00-03:59
  double workplace_start_hour = 0;      // mean local hour a workplace session begins
  int64_t workplace_sessions = 0;       // ended before the horizon
  double workplace_session_hours = 0;   // their mean
};

class FleetStatisticsCounter {
 public:
  // Steps at or after horizon_seconds are ignored.
  explicit FleetStatisticsCounter(double horizon_seconds) : horizon_seconds_(horizon_seconds) {}

  void Add(const VehicleTrace& trace);
  void Merge(const FleetStatisticsCounter& other);
  FleetStatistics Result() const;

 private:
  double horizon_seconds_;
  int64_t vehicles_ = 0, state_changes_ = 0, trips_ = 0;
  double driving_seconds_ = 0, parked_seconds_ = 0;
  std::array<int64_t, kTripStartBins> trip_starts_ = {};
  int64_t sessions_ = 0, home_sessions_ = 0, work_sessions_ = 0, elsewhere_sessions_ = 0;
  int64_t home_evening_sessions_ = 0;
  double work_start_hours_ = 0;
  int64_t ended_work_sessions_ = 0;
  double work_session_seconds_ = 0;
};

FleetStatistics MeasureTraces(const std::vector<VehicleTrace>& traces, double horizon_seconds);

// A few lines, one figure each, beside its published target.
std::string FormatStatistics(const FleetStatistics& statistics);

}  // namespace nightshift::fleet

#endif  // NIGHTSHIFT_FLEET_TRACE_STATISTICS_H_
