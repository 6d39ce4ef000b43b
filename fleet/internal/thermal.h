// ThermalModel: the air around a vehicle and the temperatures of its
// cabin, battery pack and computer, as the generator's steps report them
// (state_timeline.h). Internal to fleet/.
//
// A deliberately simple model; every number is an assumption:
//   ambient  options' mean + the vehicle's regional offset, a cosine over
//            the day (coldest 03:00, warmest 15:00).
//   sun      a car parked in the open (away from home, or at a home
//            without a charger, so without a garage) gains up to
//            solar_cabin_gain_c in its cabin at solar noon, a half sine
//            from 06:00 to 18:00, times the day's clear-sky share (one draw
//            per vehicle and day).
//   Each temperature relaxes exponentially toward a target, with a time
//   constant per load:
//                  target                       time constant
//     cabin        21 degC driving              10 min
//                  ambient + sun parked         40 min
//     pack         max(30, ambient + 5) driving 60 min
//                  max(25, ambient + 3) on AC   2 h
//                  40 degC on DC fast           20 min
//                  ambient at rest              5 h
//     computer     cabin + 30 driving (ADAS)    5 min
//                  cabin + 3 parked, idle       20 min
//
// Not thread-safe (it caches the day's weather); one per vehicle.
#ifndef NIGHTSHIFT_FLEET_INTERNAL_THERMAL_H_
#define NIGHTSHIFT_FLEET_INTERNAL_THERMAL_H_

#include <array>
#include <cstdint>

#include "fleet/vehicle_traces.h"

namespace nightshift::fleet::internal {

struct Temperatures {
  double pack_c = 0, cabin_c = 0, compute_c = 0;
};

enum class ThermalLoad { kDriving, kParked, kAcCharging, kDcCharging };

class ThermalModel {
 public:
  // The longest step Step() takes (the ambient is taken at its middle).
  static constexpr double kMaxStepSeconds = 15 * 60;

  ThermalModel(const FleetTraceOptions& options, const VehicleProfile& profile,
               int64_t vehicle_index);

  double Ambient(double t) const;
  // A vehicle that has stood all night at t.
  Temperatures AtRest(double t) const;
  // `temps` from t to t + dt (dt <= kMaxStepSeconds) under `load`.
  void Step(double t, double dt, ThermalLoad load, bool outdoors, Temperatures* temps);

 private:
  enum TimeConstant {
    kCabinDriving,
    kCabinParked,
    kPackDriving,
    kPackAc,
    kPackDc,
    kPackAtRest,
    kComputeDriving,
    kComputeParked,
    kTimeConstants
  };
  void Relax(double* x, double target, TimeConstant c, double dt) const;
  double Sun(double t);  // 0 at night, 1 at a clear noon

  const FleetTraceOptions& options_;
  const VehicleProfile& profile_;
  const int64_t vehicle_;
  std::array<double, kTimeConstants> full_step_decay_;  // over kMaxStepSeconds
  int weather_day_ = -1;
  double clear_sky_ = 0;
};

}  // namespace nightshift::fleet::internal

#endif  // NIGHTSHIFT_FLEET_INTERNAL_THERMAL_H_
