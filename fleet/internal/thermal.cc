#include "fleet/internal/thermal.h"

#include <algorithm>
#include <cmath>

#include "fleet/internal/random.h"
#include "fleet/internal/trip_plan.h"

namespace nightshift::fleet::internal {
namespace {

constexpr double kMinute = 60, kHour = 3600;
constexpr double kCabinSetpointC = 21;
// By ThermalModel::TimeConstant (thermal.h has the table).
constexpr std::array<double, 8> kTauSeconds = {10 * kMinute, 40 * kMinute, 60 * kMinute,
                                               2 * kHour,    20 * kMinute, 5 * kHour,
                                               5 * kMinute,  20 * kMinute};

double HourOfDay(double t) { return (t - std::floor(t / kSecondsPerDay) * kSecondsPerDay) / kHour; }

// cos(2 pi hours / 24), from a table every 15 minutes (error < 0.001):
// the generator would otherwise spend a fifth of its time in cos.
double DayCos(double hours) {
  constexpr int kSteps = 96;
  static const std::array<double, kSteps + 1> table = [] {
    std::array<double, kSteps + 1> t;
    for (int i = 0; i <= kSteps; ++i) t[i] = std::cos(2 * M_PI * i / kSteps);
    return t;
  }();
  const double x = (hours / 24 - std::floor(hours / 24)) * kSteps;
  const int i = std::min(static_cast<int>(x), kSteps - 1);
  return table[i] + (x - i) * (table[i + 1] - table[i]);
}

}  // namespace

ThermalModel::ThermalModel(const FleetTraceOptions& options, const VehicleProfile& profile,
                           int64_t vehicle_index)
    : options_(options), profile_(profile), vehicle_(vehicle_index) {
  static_assert(kTauSeconds.size() == kTimeConstants);
  for (int c = 0; c < kTimeConstants; ++c) {
    full_step_decay_[c] = std::exp(-kMaxStepSeconds / kTauSeconds[c]);
  }
}

double ThermalModel::Ambient(double t) const {
  return options_.ambient_mean_c + profile_.climate_offset_c +
         0.5 * options_.ambient_daily_swing_c * DayCos(HourOfDay(t) - 15);
}

Temperatures ThermalModel::AtRest(double t) const {
  const double ambient = Ambient(t);
  return {ambient + 2, ambient, ambient + 3};
}

double ThermalModel::Sun(double t) {
  const int day = static_cast<int>(t / kSecondsPerDay);
  if (day != weather_day_) {
    weather_day_ = day;
    clear_sky_ = RandomStream(options_.seed, vehicle_, WeatherStream(day)).Uniform();
  }
  // cos(pi (hour - 12) / 12) = sin(pi (hour - 6) / 12), positive 06-18 h.
  return clear_sky_ * std::max(0.0, DayCos(HourOfDay(t) - 12));
}

void ThermalModel::Relax(double* x, double target, TimeConstant c, double dt) const {
  const double decay = dt == kMaxStepSeconds ? full_step_decay_[c] : std::exp(-dt / kTauSeconds[c]);
  *x = target + (*x - target) * decay;
}

void ThermalModel::Step(double t, double dt, ThermalLoad load, bool outdoors, Temperatures* temps) {
  const double mid = t + 0.5 * dt;
  const double ambient = Ambient(mid);
  if (load == ThermalLoad::kDriving) {
    Relax(&temps->cabin_c, kCabinSetpointC, kCabinDriving, dt);
    Relax(&temps->pack_c, std::max(30.0, ambient + 5), kPackDriving, dt);
    Relax(&temps->compute_c, temps->cabin_c + 30, kComputeDriving, dt);
    return;
  }
  const double sun = outdoors ? options_.solar_cabin_gain_c * Sun(mid) : 0;
  Relax(&temps->cabin_c, ambient + sun, kCabinParked, dt);
  switch (load) {
    case ThermalLoad::kDcCharging:
      Relax(&temps->pack_c, 40, kPackDc, dt);
      break;
    case ThermalLoad::kAcCharging:
      Relax(&temps->pack_c, std::max(25.0, ambient + 3), kPackAc, dt);
      break;
    default:
      Relax(&temps->pack_c, ambient, kPackAtRest, dt);
  }
  Relax(&temps->compute_c, temps->cabin_c + 3, kComputeParked, dt);
}

}  // namespace nightshift::fleet::internal
