#include "fleet/trace_statistics.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_format.h"

namespace nightshift::fleet {
namespace {

using State = v1::VehicleState;

bool Driving(const State& s) {
  return s.ignition() == State::IGNITION_ON && s.gear() == State::GEAR_DRIVE;
}
bool Parked(const State& s) {
  return s.ignition() == State::IGNITION_OFF && s.gear() == State::GEAR_PARK;
}

double HourOfDay(double at_seconds) { return std::fmod(at_seconds, kSecondsPerDay) / 3600; }

// 0 for 23:00-02:59, 1 for 03:00-06:59, ... 5 for 19:00-22:59.
int TripStartBin(double at_seconds) {
  return static_cast<int>(std::fmod(HourOfDay(at_seconds) + 1, 24) / 4);
}

double Share(double part, double whole) { return whole > 0 ? part / whole : 0; }

}  // namespace

void FleetStatisticsCounter::Add(const VehicleTrace& trace) {
  ++vehicles_;
  size_t n = 0;
  while (n < trace.size() && trace[n].entry.at_seconds() < horizon_seconds_) ++n;
  state_changes_ += n;
  double session_start = -1;  // < 0: no session under way (or one not counted)
  Place session_place = Place::kUnknown;
  for (size_t i = 0; i < n; ++i) {
    const State& s = trace[i].entry.state();
    const double at = trace[i].entry.at_seconds();
    const double until = i + 1 < n ? trace[i + 1].entry.at_seconds() : horizon_seconds_;
    const bool was_driving = i > 0 && Driving(trace[i - 1].entry.state());
    const bool was_charging = i > 0 && trace[i - 1].entry.state().charging();
    if (Driving(s)) {
      driving_seconds_ += until - at;
      if (!was_driving) {
        ++trips_;
        ++trip_starts_[TripStartBin(at)];
      }
    } else if (Parked(s)) {
      parked_seconds_ += until - at;
    }
    if (s.charging() && !was_charging && i > 0) {
      ++sessions_;
      session_start = at;
      session_place = trace[i].place;
      const double hour = HourOfDay(at);
      if (session_place == Place::kHome) {
        ++home_sessions_;
        if (hour >= 15 || hour < 4) ++home_evening_sessions_;
      }
      if (session_place == Place::kWork) {
        ++work_sessions_;
        work_start_hours_ += hour;
      }
      if (session_place == Place::kElsewhere) ++elsewhere_sessions_;
    } else if (!s.charging() && was_charging) {
      if (session_start >= 0 && session_place == Place::kWork) {
        ++ended_work_sessions_;
        work_session_seconds_ += at - session_start;
      }
      session_start = -1;
    }
  }
}

void FleetStatisticsCounter::Merge(const FleetStatisticsCounter& other) {
  vehicles_ += other.vehicles_;
  state_changes_ += other.state_changes_;
  trips_ += other.trips_;
  driving_seconds_ += other.driving_seconds_;
  parked_seconds_ += other.parked_seconds_;
  for (int b = 0; b < kTripStartBins; ++b) trip_starts_[b] += other.trip_starts_[b];
  sessions_ += other.sessions_;
  home_sessions_ += other.home_sessions_;
  work_sessions_ += other.work_sessions_;
  elsewhere_sessions_ += other.elsewhere_sessions_;
  home_evening_sessions_ += other.home_evening_sessions_;
  work_start_hours_ += other.work_start_hours_;
  ended_work_sessions_ += other.ended_work_sessions_;
  work_session_seconds_ += other.work_session_seconds_;
}

FleetStatistics FleetStatisticsCounter::Result() const {
  FleetStatistics r;
  r.vehicles = vehicles_;
  r.vehicle_days = vehicles_ * horizon_seconds_ / kSecondsPerDay;
  r.state_changes = state_changes_;
  r.trips = trips_;
  r.trips_per_day = Share(trips_, r.vehicle_days);
  r.driving_minutes_per_day = Share(driving_seconds_ / 60, r.vehicle_days);
  r.parked_share = Share(parked_seconds_, vehicles_ * horizon_seconds_);
  for (int b = 0; b < kTripStartBins; ++b) r.trip_start_share[b] = Share(trip_starts_[b], trips_);
  r.trip_starts_11_to_19_share = r.trip_start_share[3] + r.trip_start_share[4];
  r.charging_sessions = sessions_;
  r.home_charging_share = Share(home_sessions_, sessions_);
  r.work_charging_share = Share(work_sessions_, sessions_);
  r.elsewhere_charging_share = Share(elsewhere_sessions_, sessions_);
  r.home_evening_start_share = Share(home_evening_sessions_, home_sessions_);
  r.workplace_start_hour = Share(work_start_hours_, work_sessions_);
  r.workplace_sessions = ended_work_sessions_;
  r.workplace_session_hours = Share(work_session_seconds_ / 3600, ended_work_sessions_);
  return r;
}

FleetStatistics MeasureTraces(const std::vector<VehicleTrace>& traces, double horizon_seconds) {
  FleetStatisticsCounter counter(horizon_seconds);
  for (const VehicleTrace& trace : traces) counter.Add(trace);
  return counter.Result();
}

std::string FormatStatistics(const FleetStatistics& s) {
  const auto& b = s.trip_start_share;
  return absl::StrFormat(
      "vehicles %d, vehicle-days %.0f, state changes %d (%.1f per vehicle-day)\n"
      "trips per day               %.3f   (AAA 2023: %.2f)\n"
      "driving minutes per day     %.2f   (AAA 2023: %.1f)\n"
      "parked share                %.4f  (AAA 2023: %.4f)\n"
      "trip starts 11:00-18:59     %.3f   (AAA 2023: %.3f)\n"
      "  by 4 h from 23:00         %.3f %.3f %.3f %.3f %.3f %.3f\n"
      "charging sessions           %d: home %.3f, work %.3f, elsewhere %.3f "
      "(INL: home %.2f-%.2f)\n"
      "home sessions begun 15-04 h %.3f\n"
      "workplace session hours     %.2f over %d sessions (ChargePoint 2022: %.1f)\n"
      "workplace sessions begin    %.2f h (ChargePoint 2022: around 08:00)\n",
      s.vehicles, s.vehicle_days, s.state_changes, Share(s.state_changes, s.vehicle_days),
      s.trips_per_day, kTripsPerDay, s.driving_minutes_per_day, kDrivingMinutesPerDay,
      s.parked_share, 1 - kDrivingMinutesPerDay / 1440, s.trip_starts_11_to_19_share,
      kTripStartShare11To19, b[0], b[1], b[2], b[3], b[4], b[5], s.charging_sessions,
      s.home_charging_share, s.work_charging_share, s.elsewhere_charging_share,
      kHomeChargingShareLow, kHomeChargingShareHigh, s.home_evening_start_share,
      s.workplace_session_hours, s.workplace_sessions, kWorkplaceSessionHours,
      s.workplace_start_hour);
}

}  // namespace nightshift::fleet
