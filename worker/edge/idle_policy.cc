#include "worker/edge/idle_policy.h"

#include <cmath>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/time_util.h"

namespace nightshift::edge {
namespace {

// The defaults (vehicle.proto documents them beside each field).
constexpr double kParkedDebounceSeconds = 300;
constexpr double kMinStateOfCharge = 0.5;
constexpr double kReserveTripKm = 60;
constexpr double kMaxPackC = 45, kMaxCabinC = 50, kMaxComputeC = 85;
constexpr int64_t kMeteredDailyBytes = 50'000'000;
constexpr int64_t kMinRoundBytes = 8'000'000;
constexpr double kMinSecondsBeforeDeparture = 1800;
constexpr double kEnergyBudgetWhPerStay = 500;
constexpr double kComputePowerW = 60;
constexpr double kStalenessSeconds = 30;

absl::Time ToTime(const google::protobuf::Timestamp& t) {
  return absl::FromUnixNanos(google::protobuf::util::TimeUtil::TimestampToNanoseconds(t));
}

// "12 min", "45 s", "2.5 h".
std::string Span(absl::Duration d) {
  const double s = absl::ToDoubleSeconds(d);
  if (s < 120) return absl::StrFormat("%.0f s", s);
  if (s < 7200) return absl::StrFormat("%.0f min", s / 60);
  return absl::StrFormat("%.1f h", s / 3600);
}

std::string Percent(double fraction) { return absl::StrFormat("%.0f%%", 100 * fraction); }
std::string Megabytes(int64_t bytes) { return absl::StrFormat("%.1f MB", bytes / 1e6); }

const char* NetworkName(v1::VehicleState::Network n) {
  switch (n) {
    case v1::VehicleState::NETWORK_ETHERNET:
      return "ethernet";
    case v1::VehicleState::NETWORK_WIFI:
      return "Wi-Fi";
    case v1::VehicleState::NETWORK_CELLULAR:
      return "cellular";
    case v1::VehicleState::NETWORK_SATELLITE:
      return "satellite";
    default:
      return "no network";
  }
}

const char* GearName(v1::VehicleState::Gear g) {
  switch (g) {
    case v1::VehicleState::GEAR_REVERSE:
      return "R";
    case v1::VehicleState::GEAR_NEUTRAL:
      return "N";
    case v1::VehicleState::GEAR_DRIVE:
      return "D";
    default:
      return "unknown";
  }
}

bool Metered(const v1::VehicleState& s) {
  return s.metered() || s.network() == v1::VehicleState::NETWORK_SATELLITE;
}

}  // namespace

v1::IdlePolicy WithDefaults(v1::IdlePolicy p) {
  auto fill = [](double v, double d) { return v == 0 ? d : v; };
  p.set_parked_debounce_seconds(fill(p.parked_debounce_seconds(), kParkedDebounceSeconds));
  p.set_min_state_of_charge(fill(p.min_state_of_charge(), kMinStateOfCharge));
  p.set_reserve_trip_km(fill(p.reserve_trip_km(), kReserveTripKm));
  p.set_max_pack_temperature_c(fill(p.max_pack_temperature_c(), kMaxPackC));
  p.set_max_cabin_temperature_c(fill(p.max_cabin_temperature_c(), kMaxCabinC));
  p.set_max_compute_temperature_c(fill(p.max_compute_temperature_c(), kMaxComputeC));
  if (p.metered_daily_bytes() == 0) p.set_metered_daily_bytes(kMeteredDailyBytes);
  if (p.min_round_bytes() == 0) p.set_min_round_bytes(kMinRoundBytes);
  p.set_min_seconds_before_departure(
      fill(p.min_seconds_before_departure(), kMinSecondsBeforeDeparture));
  p.set_energy_budget_wh_per_stay(fill(p.energy_budget_wh_per_stay(), kEnergyBudgetWhPerStay));
  p.set_compute_power_w(fill(p.compute_power_w(), kComputePowerW));
  p.set_staleness_seconds(fill(p.staleness_seconds(), kStalenessSeconds));
  return p;
}

absl::StatusOr<v1::IdlePolicy> ParseIdlePolicy(const std::string& text, const std::string& path) {
  v1::IdlePolicy p;
  struct Collector : google::protobuf::io::ErrorCollector {
    void AddError(int line, int column, const std::string& message) override {
      if (first.empty())
        first = absl::StrCat("line ", line + 1, " column ", column + 1, ": ", message);
    }
    std::string first;
  } errors;
  google::protobuf::TextFormat::Parser parser;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(text, &p)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", errors.first));
  }
  auto bad = [&](const char* field, const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", field, " ", why));
  };
  for (const auto& [field, v] :
       {std::pair<const char*, double>{"parked_debounce_seconds", p.parked_debounce_seconds()},
        {"reserve_trip_km", p.reserve_trip_km()},
        {"min_seconds_before_departure", p.min_seconds_before_departure()},
        {"energy_budget_wh_per_stay", p.energy_budget_wh_per_stay()},
        {"compute_power_w", p.compute_power_w()},
        {"staleness_seconds", p.staleness_seconds()},
        {"metered_daily_bytes", static_cast<double>(p.metered_daily_bytes())},
        {"min_round_bytes", static_cast<double>(p.min_round_bytes())}}) {
    if (!std::isfinite(v) || v < 0) return bad(field, absl::StrCat("must be >= 0, not ", v));
  }
  if (!(p.min_state_of_charge() >= 0 && p.min_state_of_charge() <= 1)) {
    return bad("min_state_of_charge",
               absl::StrCat("must be in [0, 1], not ", p.min_state_of_charge()));
  }
  for (const auto& [field, v] :
       {std::pair<const char*, double>{"max_pack_temperature_c", p.max_pack_temperature_c()},
        {"max_cabin_temperature_c", p.max_cabin_temperature_c()},
        {"max_compute_temperature_c", p.max_compute_temperature_c()}}) {
    if (!std::isfinite(v)) return bad(field, "must be a number");
  }
  return p;
}

absl::StatusOr<v1::IdlePolicy> LoadIdlePolicy(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot read the idle policy"));
  std::stringstream text;
  text << in.rdbuf();
  return ParseIdlePolicy(text.str(), path);
}

void IdlePolicyEvaluator::AddMeteredBytes(int64_t bytes, absl::Time now) {
  const int64_t day = absl::ToUnixSeconds(now) / 86400;
  if (day != metered_day_) {
    metered_day_ = day;
    metered_bytes_today_ = 0;
  }
  metered_bytes_today_ += bytes;
}

v1::Eligibility IdlePolicyEvaluator::Evaluate(const VehicleReading& reading, absl::Time now) {
  const std::optional<std::string> refusal = Refusal(reading, now);
  const bool eligible = !refusal.has_value();
  if (eligible != eligible_ || since_ == absl::InfinitePast()) {
    eligible_ = eligible;
    since_ = now;
  }
  v1::Eligibility e;
  e.set_eligible(eligible);
  e.set_reason(eligible ? Grant(*reading.state, now) : *refusal);
  if (reading.state.ok() && now - reading.observed <= absl::Seconds(policy_.staleness_seconds())) {
    const v1::VehicleState::Network n = reading.state->network();
    e.set_unmetered_link(n != v1::VehicleState::NETWORK_NONE &&
                         n != v1::VehicleState::NETWORK_UNSPECIFIED && !Metered(*reading.state));
  }
  *e.mutable_since() =
      google::protobuf::util::TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(since_));
  return e;
}

std::optional<std::string> IdlePolicyEvaluator::Refusal(const VehicleReading& reading,
                                                        absl::Time now) {
  const v1::IdlePolicy& p = policy_;
  if (!reading.state.ok()) {
    parked_since_.reset();  // not known to be parked: the debounce starts again
    return absl::StrCat("vehicle state unreadable: ", reading.state.status().message());
  }
  const v1::VehicleState& s = *reading.state;
  const absl::Duration age = now - reading.observed;
  if (age > absl::Seconds(p.staleness_seconds())) {
    parked_since_.reset();
    return absl::StrCat("vehicle state is ", Span(age), " old (> ",
                        Span(absl::Seconds(p.staleness_seconds())), ")");
  }
  const bool parked =
      s.ignition() == v1::VehicleState::IGNITION_OFF && s.gear() == v1::VehicleState::GEAR_PARK;
  if (!parked) {
    parked_since_.reset();
    compute_this_stay_ = absl::ZeroDuration();  // a new stay when it parks again
    switch (s.ignition()) {
      case v1::VehicleState::IGNITION_ON:
        return std::string("ignition on");
      case v1::VehicleState::IGNITION_ACCESSORY:
        return std::string("ignition in accessory mode");
      case v1::VehicleState::IGNITION_OFF:
        return absl::StrCat("gear ", GearName(s.gear()), ", not P");
      default:
        return std::string("ignition unknown");
    }
  }
  if (!parked_since_.has_value()) parked_since_ = reading.observed;
  if (s.occupied() && !p.allow_occupied()) return std::string("someone is in the vehicle");
  const absl::Duration parked_for = now - *parked_since_;
  const absl::Duration debounce = absl::Seconds(p.parked_debounce_seconds());
  if (parked_for < debounce) {
    return absl::StrCat("parked ", Span(parked_for), ", waiting for ", Span(debounce));
  }
  auto hot = [](const char* what, double v, double limit) -> std::optional<std::string> {
    if (v <= limit) return std::nullopt;
    return absl::StrFormat("%s at %.0f °C > %.0f °C", what, v, limit);
  };
  if (auto r = hot("battery pack", s.pack_temperature_c(), p.max_pack_temperature_c())) return r;
  if (auto r = hot("cabin", s.cabin_temperature_c(), p.max_cabin_temperature_c())) return r;
  if (auto r = hot("computer", s.compute_temperature_c(), p.max_compute_temperature_c())) return r;
  if (!s.charging()) {
    double needed = p.min_state_of_charge();
    std::string reserve;
    if (s.estimated_range_km() > 0 && s.state_of_charge() > 0) {
      const double trip = s.state_of_charge() * p.reserve_trip_km() / s.estimated_range_km();
      needed += trip;
      reserve = absl::StrFormat(" + %s for a %.0f km trip", Percent(trip), p.reserve_trip_km());
    }
    if (s.state_of_charge() < needed) {
      return absl::StrCat("not charging and state of charge ", Percent(s.state_of_charge()), " < ",
                          Percent(p.min_state_of_charge()), reserve);
    }
    const double used_wh = absl::ToDoubleHours(compute_this_stay_) * p.compute_power_w();
    if (used_wh >= p.energy_budget_wh_per_stay()) {
      return absl::StrFormat(
          "not charging and this stay's energy budget is spent (%.0f of %.0f Wh)", used_wh,
          p.energy_budget_wh_per_stay());
    }
  }
  if (s.network() == v1::VehicleState::NETWORK_NONE ||
      s.network() == v1::VehicleState::NETWORK_UNSPECIFIED) {
    return std::string("no network");
  }
  if (Metered(s)) {
    if (s.data_budget_bytes() < p.min_round_bytes()) {
      return absl::StrCat("metered ", NetworkName(s.network()), " link with ",
                          Megabytes(s.data_budget_bytes()), " of its budget left (< ",
                          Megabytes(p.min_round_bytes()), ")");
    }
    const int64_t today =
        absl::ToUnixSeconds(now) / 86400 == metered_day_ ? metered_bytes_today_ : 0;
    if (today + p.min_round_bytes() > p.metered_daily_bytes()) {
      return absl::StrCat("metered ", NetworkName(s.network()), " link: ", Megabytes(today),
                          " of today's ", Megabytes(p.metered_daily_bytes()), " used");
    }
  }
  if (s.has_predicted_departure()) {
    const absl::Duration left = ToTime(s.predicted_departure()) - now;
    if (left < absl::Seconds(p.min_seconds_before_departure())) {
      return absl::StrCat(
          left <= absl::ZeroDuration() ? "due to depart" : "departs in " + Span(left),
          " (a round needs ", Span(absl::Seconds(p.min_seconds_before_departure())), ")");
    }
  }
  return std::nullopt;
}

std::string IdlePolicyEvaluator::Grant(const v1::VehicleState& s, absl::Time now) const {
  std::string power = s.charging() ? absl::StrFormat("charging at %.1f kW", s.charger_power_kw())
                                   : absl::StrCat("state of charge ", Percent(s.state_of_charge()));
  return absl::StrCat("parked ", Span(now - *parked_since_), ", ", power, ", on ",
                      NetworkName(s.network()), Metered(s) ? " (metered)" : "");
}

}  // namespace nightshift::edge
