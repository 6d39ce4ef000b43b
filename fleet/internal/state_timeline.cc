#include "fleet/internal/state_timeline.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>

#include "fleet/internal/random.h"
#include "fleet/internal/thermal.h"

namespace nightshift::fleet::internal {
namespace {

using State = v1::VehicleState;

constexpr double kMinute = 60, kHour = 3600;
constexpr double kInfinity = std::numeric_limits<double>::infinity();
// [AAA] 29.1 miles in 60.7 minutes: 46.3 km/h.
constexpr double kKmPerSecond = kDrivingMilesPerDay * 1.609344 / (kDrivingMinutesPerDay * kMinute);

// Charging. Assumption: AC sessions stop at 90% (a common daily limit),
// DC fast ones at 80%; 90% of the grid's energy reaches the battery;
// Level 2 at work and in public 7.2 kW, DC fast 50 kW.
constexpr double kAcChargeLimit = 0.9, kDcChargeLimit = 0.8, kChargeEfficiency = 0.9;
constexpr double kLevel2Kw = 7.2, kDcFastKw = 50;
constexpr double kHomePlugOnEvening = 0.85, kHomePlugBelow = 0.5, kMinHomeStay = kHour;
constexpr double kEveningFromHour = 15, kEveningUntilHour = 4;
constexpr double kWorkPlug = 0.9, kWorkSessionSpread = 0.5;  // [CP]'s mean, assumed spread
constexpr double kPublicBelowWithoutHomeCharger = 0.5, kPublicBelowWithHomeCharger = 0.25;
constexpr double kMinPublicStay = 20 * kMinute, kPublicLevel2Stay = 2 * kHour;
// Assumption: no trace runs a battery below 3%; where a plan would (rare:
// no home charger and no long stop elsewhere for days), the charge holds.
constexpr double kStateOfChargeFloor = 0.03;

// Network. Assumption: 5% of stays away from home (underground garages)
// have no coverage; the car's own traffic while driving is 60 MB/h.
constexpr double kNoCoverageShare = 0.05;
constexpr double kDrivingBytesPerSecond = 60e6 / kHour;

// To 1/scale: the nearest double to that decimal, which prints
// short (15.7, not 15.700000000000001).
double Round(double value, double scale) { return std::round(value * scale) / scale; }

double HourOfDay(double t) { return (t - std::floor(t / kSecondsPerDay) * kSecondsPerDay) / kHour; }

class Timeline {
 public:
  Timeline(const FleetTraceOptions& options, const VehicleProfile& profile, int64_t vehicle)
      : options_(options),
        profile_(profile),
        horizon_(options.days * kSecondsPerDay),
        random_(options.seed, vehicle, kTimelineStream),
        thermal_(options, profile, vehicle),
        drive_soc_per_second_(
            profile.electric ? kKmPerSecond * profile.kwh_per_km / profile.battery_kwh : 0) {}

  VehicleTrace Build(const std::vector<PlannedTrip>& trips) {
    steps_.reserve(32 * options_.days);
    Start(trips.empty() ? nullptr : &trips[0]);
    for (size_t i = 0; i < trips.size() && !done_; ++i) {
      Drive(trips[i]);
      if (done_) break;
      const double arrival = trips[i].depart_seconds + trips[i].drive_seconds;
      Stay(arrival, trips[i].destination, i + 1 < trips.size() ? &trips[i + 1] : nullptr);
    }
    if (!done_) Reach(horizon_);
    return std::move(steps_);
  }

 private:
  enum class Power { kNone, kAc, kDc };
  struct Session {
    Power power = Power::kNone;
    double kw = 0, limit = 0;
    double end = kInfinity;  // unplugged then, if still parked
  };

  void UseWideAreaNetwork() {
    network_ = profile_.satellite ? State::NETWORK_SATELLITE : State::NETWORK_CELLULAR;
    metered_ = true;
  }

  // The physics from now_ to t: charge, data budget, temperatures.
  void Advance(double t) {
    while (now_ < t) {
      const double dt = std::min(ThermalModel::kMaxStepSeconds, t - now_);
      const bool filling = power_ != Power::kNone && soc_ < charge_limit_;
      if (driving_) {
        soc_ = std::max(soc_ - dt * drive_soc_per_second_, std::min(soc_, kStateOfChargeFloor));
        budget_ = std::max(0.0, budget_ - dt * kDrivingBytesPerSecond);
      } else if (filling) {
        soc_ = std::min(charge_limit_, soc_ + dt * charge_soc_per_second_);
      }
      const ThermalLoad load = driving_               ? ThermalLoad::kDriving
                               : !filling             ? ThermalLoad::kParked
                               : power_ == Power::kDc ? ThermalLoad::kDcCharging
                                                      : ThermalLoad::kAcCharging;
      thermal_.Step(now_, dt, load, outdoors_, &temps_);
      now_ += dt;
    }
  }

  // Moves the clock to t, writing the midnight steps (a new data budget)
  // and, parked, the periodic samples on the way. False once t reaches the
  // horizon: the trace is complete.
  bool Reach(double t) {
    const double end = std::min(t, horizon_);
    const double sample_every = options_.update_minutes * kMinute;
    while (true) {
      const double midnight = (std::floor(now_ / kSecondsPerDay) + 1) * kSecondsPerDay;
      const double sample = driving_ ? kInfinity : last_step_ + sample_every;
      const double next = std::min(midnight, sample);
      if (next >= end) break;
      Advance(next);
      if (next == midnight) {
        budget_ = static_cast<double>(profile_.daily_data_budget_bytes);
        Emit(next);
      } else {
        EmitIfMoved(next);
      }
    }
    Advance(end);
    if (t >= horizon_) {
      done_ = true;
      return false;
    }
    return true;
  }

  void Plug(const Session& session) {
    power_ = session.power;
    charger_kw_ = session.kw;
    charge_limit_ = session.limit;
    charge_soc_per_second_ = session.kw * kChargeEfficiency / profile_.battery_kwh / kHour;
  }
  void Unplug() {
    power_ = Power::kNone;
    charger_kw_ = 0;
  }
  // When a session started now fills the battery to its limit.
  double FullAt(const Session& session) const {
    if (soc_ >= session.limit) return now_;
    return now_ + (session.limit - soc_) / charge_soc_per_second_;
  }

  void Start(const PlannedTrip* next) {
    now_ = 0;
    soc_ = profile_.electric ? random_.Uniform(0.5, 0.9) : 0;
    budget_ = static_cast<double>(profile_.daily_data_budget_bytes);
    temps_ = thermal_.AtRest(0);
    const bool plugged = random_.Bernoulli(kHomePlugOnEvening);
    Session session;
    if (profile_.home_charger && plugged) {
      session = {Power::kAc, profile_.home_charger_kw, kAcChargeLimit, kInfinity};
      Plug(session);
    }
    const double in = next == nullptr ? kInfinity : next->depart_seconds - random_.Uniform(30, 120);
    ParkedAt(Place::kHome, next);
    if (profile_.home_wifi) {
      network_ = State::NETWORK_WIFI;
      metered_ = false;
    }
    Emit(0);
    const double full = power_ == Power::kNone ? kInfinity : FullAt(session);
    LeaveStay(full, kInfinity, in);
  }

  void ParkedAt(Place place, const PlannedTrip* next) {
    place_ = place;
    driving_ = false;
    outdoors_ = place != Place::kHome || !profile_.home_charger;  // a home charger: a garage
    departure_ = next == nullptr ? std::nullopt : std::optional<double>(next->depart_seconds);
    UseWideAreaNetwork();
  }

  // A stay from `arrival` at `place` until `next` departs (steps 1-4).
  void Stay(double arrival, Place place, const PlannedTrip* next) {
    const double leave = next == nullptr ? kInfinity : next->depart_seconds;
    // Every draw up front, in a fixed order.
    const double out = arrival + random_.Uniform(30, 180);
    const double in = leave - random_.Uniform(30, 120);
    const bool no_coverage = random_.Bernoulli(kNoCoverageShare);
    const double plug_draw = random_.Uniform();
    const double work_session =
        kHour * random_.LogNormalWithMean(kWorkplaceSessionHours, kWorkSessionSpread);

    if (!Reach(arrival)) return;
    ParkedAt(place, next);
    occupied_ = true;
    if (place == Place::kHome && profile_.home_wifi) {
      network_ = State::NETWORK_WIFI;
      metered_ = false;
    } else if (place != Place::kHome && no_coverage) {
      network_ = State::NETWORK_NONE;
      metered_ = false;
    }
    Emit(arrival);
    if (in - out < kMinute) {  // a stop too short to get out
      LeaveStay(kInfinity, kInfinity, in);
      return;
    }
    if (!Reach(out)) return;
    occupied_ = false;
    const Session session = ChooseSession(place, in - out, plug_draw, out + work_session);
    double full = kInfinity;
    if (session.power != Power::kNone) {
      Plug(session);
      full = FullAt(session);
    }
    Emit(out);
    LeaveStay(full, session.end, in);
  }

  Session ChooseSession(Place place, double stay, double draw, double work_end) const {
    if (!profile_.electric) return {};
    switch (place) {
      case Place::kHome: {
        const double hour = HourOfDay(now_);
        const bool evening = hour >= kEveningFromHour || hour < kEveningUntilHour;
        if (profile_.home_charger && stay >= kMinHomeStay &&
            (soc_ < kHomePlugBelow || (evening && draw < kHomePlugOnEvening))) {
          return {Power::kAc, profile_.home_charger_kw, kAcChargeLimit, kInfinity};
        }
        return {};
      }
      case Place::kWork:
        if (profile_.workplace_charger && draw < kWorkPlug) {
          return {Power::kAc, kLevel2Kw, kAcChargeLimit, work_end};
        }
        return {};
      default: {
        const double below =
            profile_.home_charger ? kPublicBelowWithHomeCharger : kPublicBelowWithoutHomeCharger;
        if (soc_ >= below || stay < kMinPublicStay) return {};
        if (stay >= kPublicLevel2Stay) return {Power::kAc, kLevel2Kw, kAcChargeLimit, kInfinity};
        return {Power::kDc, kDcFastKw, kDcChargeLimit, kInfinity};  // unplugged when full
      }
    }
  }

  // The rest of a stay: the battery full at `full`, the session's end,
  // then the driver back in at `in`, before the next departure.
  void LeaveStay(double full, double session_end, double in) {
    in = std::max(in, now_);
    if (full < session_end && full < in) {
      if (!Reach(full)) return;
      soc_ = charge_limit_;
      if (power_ == Power::kDc) Unplug();
      Emit(full);
    }
    if (session_end < in && power_ != Power::kNone) {
      if (!Reach(session_end)) return;
      Unplug();
      Emit(session_end);
    }
    if (!Reach(in)) return;
    occupied_ = true;
    Unplug();
    Emit(in);
  }

  // Step 5.
  void Drive(const PlannedTrip& trip) {
    if (!Reach(trip.depart_seconds)) return;
    driving_ = true;
    occupied_ = true;
    place_ = Place::kDriving;
    departure_.reset();
    Unplug();
    UseWideAreaNetwork();
    Emit(trip.depart_seconds);
    Reach(trip.depart_seconds + trip.drive_seconds);
  }

  void EmitIfMoved(double t) {
    const double step = options_.temperature_step_c;
    if (std::abs(soc_ - emitted_soc_) >= 0.01 ||
        std::abs(temps_.pack_c - emitted_temps_.pack_c) >= step ||
        std::abs(temps_.cabin_c - emitted_temps_.cabin_c) >= step ||
        std::abs(temps_.compute_c - emitted_temps_.compute_c) >= step) {
      Emit(t);
    } else {
      last_step_ = t;  // checked again one interval later
    }
  }

  // A step with the state at t; replaces the last step if it has the
  // same (whole) second, and is dropped if it changes nothing.
  void Emit(double t) {
    last_step_ = t;
    emitted_soc_ = soc_;
    emitted_temps_ = temps_;
    const double at = std::round(t);
    const bool replace = !steps_.empty() && steps_.back().entry.at_seconds() == at;
    if (!replace) steps_.emplace_back();
    TraceStep& step = steps_.back();
    step.entry.set_at_seconds(at);
    step.place = place_;
    step.predicted_departure_seconds =
        departure_.has_value() ? std::optional<double>(std::round(*departure_)) : std::nullopt;
    State& s = *step.entry.mutable_state();
    s.set_ignition(driving_ ? State::IGNITION_ON : State::IGNITION_OFF);
    s.set_gear(driving_ ? State::GEAR_DRIVE : State::GEAR_PARK);
    s.set_occupied(occupied_);
    s.set_charging(power_ != Power::kNone);
    s.set_charger_power_kw(charger_kw_);
    const double soc = Round(soc_, 1e4);
    s.set_state_of_charge(soc);
    s.set_estimated_range_km(
        profile_.electric ? Round(soc * profile_.battery_kwh / profile_.kwh_per_km, 10) : 0);
    s.set_pack_temperature_c(Round(temps_.pack_c, 10));
    s.set_cabin_temperature_c(Round(temps_.cabin_c, 10));
    s.set_compute_temperature_c(Round(temps_.compute_c, 10));
    s.set_network(network_);
    s.set_metered(metered_);
    s.set_data_budget_bytes(static_cast<int64_t>(std::llround(budget_)));
    if (!replace && steps_.size() >= 2 && SameStep(steps_[steps_.size() - 2], step)) {
      steps_.pop_back();
    }
  }

  static bool SameStep(const TraceStep& a, const TraceStep& b) {
    const State& x = a.entry.state();
    const State& y = b.entry.state();
    return a.place == b.place && a.predicted_departure_seconds == b.predicted_departure_seconds &&
           x.ignition() == y.ignition() && x.gear() == y.gear() && x.occupied() == y.occupied() &&
           x.charging() == y.charging() && x.charger_power_kw() == y.charger_power_kw() &&
           x.state_of_charge() == y.state_of_charge() &&
           x.estimated_range_km() == y.estimated_range_km() &&
           x.pack_temperature_c() == y.pack_temperature_c() &&
           x.cabin_temperature_c() == y.cabin_temperature_c() &&
           x.compute_temperature_c() == y.compute_temperature_c() && x.network() == y.network() &&
           x.metered() == y.metered() && x.data_budget_bytes() == y.data_budget_bytes();
  }

  const FleetTraceOptions& options_;
  const VehicleProfile& profile_;
  const double horizon_;
  RandomStream random_;
  ThermalModel thermal_;
  const double drive_soc_per_second_;
  double charge_soc_per_second_ = 0;

  // The physics, at now_.
  double now_ = 0;
  double soc_ = 0, budget_ = 0;
  Temperatures temps_;
  // The conditions.
  Place place_ = Place::kHome;
  bool driving_ = false, occupied_ = false, outdoors_ = false;
  Power power_ = Power::kNone;
  double charger_kw_ = 0, charge_limit_ = 0;
  State::Network network_ = State::NETWORK_NONE;
  bool metered_ = false;
  std::optional<double> departure_;
  // The last step written, for EmitIfMoved.
  double last_step_ = 0;
  double emitted_soc_ = 0;
  Temperatures emitted_temps_;

  VehicleTrace steps_;
  bool done_ = false;
};

}  // namespace

VehicleTrace BuildTimeline(const FleetTraceOptions& options, const VehicleProfile& profile,
                           int64_t vehicle_index, const std::vector<PlannedTrip>& trips) {
  return Timeline(options, profile, vehicle_index).Build(trips);
}

}  // namespace nightshift::fleet::internal
