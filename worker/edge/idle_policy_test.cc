// The idle policy on states built in the test: every condition refuses
// with its reason, in order (ignition first), fail-safe on unreadable or
// stale states, the debounce, the stay's energy and the day's bytes.
#include "worker/edge/idle_policy.h"

#include "gmock/gmock.h"
#include "google/protobuf/util/time_util.h"
#include "gtest/gtest.h"

namespace nightshift::edge {
namespace {

using testing::HasSubstr;
using v1::VehicleState;

const absl::Time kNoon = absl::FromUnixSeconds(1'780'000'000);

google::protobuf::Timestamp Stamp(absl::Time t) {
  return google::protobuf::util::TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(t));
}

// Parked, charging at home on Wi-Fi, cool: eligible once the debounce is over.
VehicleState Idle() {
  VehicleState s;
  s.set_ignition(VehicleState::IGNITION_OFF);
  s.set_gear(VehicleState::GEAR_PARK);
  s.set_charging(true);
  s.set_charger_power_kw(7.4);
  s.set_state_of_charge(0.6);
  s.set_estimated_range_km(300);
  s.set_pack_temperature_c(25);
  s.set_cabin_temperature_c(22);
  s.set_compute_temperature_c(50);
  s.set_network(VehicleState::NETWORK_WIFI);
  return s;
}

class IdlePolicyTest : public testing::Test {
 protected:
  // Evaluates `s` observed at `at` (default: now), `now` being kNoon + offset.
  v1::Eligibility At(const VehicleState& s, absl::Duration offset,
                     std::optional<absl::Time> observed = std::nullopt) {
    VehicleReading r;
    r.state = s;
    r.observed = observed.value_or(kNoon + offset);
    return policy_.Evaluate(r, kNoon + offset);
  }
  // Parked for longer than the debounce, then `s`.
  v1::Eligibility Settled(const VehicleState& s) {
    At(Idle(), absl::ZeroDuration());
    return At(s, absl::Minutes(10));
  }
  IdlePolicyEvaluator policy_{v1::IdlePolicy()};
};

TEST_F(IdlePolicyTest, ParkedAndChargingIsEligibleAfterTheDebounce) {
  const v1::Eligibility first = At(Idle(), absl::ZeroDuration());
  EXPECT_FALSE(first.eligible());
  EXPECT_EQ(first.reason(), "parked 0 s, waiting for 5 min");
  EXPECT_FALSE(At(Idle(), absl::Minutes(4)).eligible());
  const v1::Eligibility later = At(Idle(), absl::Minutes(12));
  EXPECT_TRUE(later.eligible());
  EXPECT_EQ(later.reason(), "parked 12 min, charging at 7.4 kW, on Wi-Fi");
  EXPECT_EQ(later.since().seconds(), absl::ToUnixSeconds(kNoon + absl::Minutes(12)));
  EXPECT_EQ(At(Idle(), absl::Minutes(13)).since().seconds(), later.since().seconds())
      << "since: when the answer last changed";
}

TEST_F(IdlePolicyTest, IgnitionOnRefusesFirstAndRestartsTheDebounce) {
  VehicleState driving = Idle();
  driving.set_ignition(VehicleState::IGNITION_ON);
  driving.set_gear(VehicleState::GEAR_DRIVE);
  driving.set_pack_temperature_c(60);  // hot too, but the ignition is the reason
  driving.set_charging(false);
  driving.set_state_of_charge(0.1);
  EXPECT_EQ(Settled(driving).reason(), "ignition on");
  EXPECT_THAT(At(Idle(), absl::Minutes(11)).reason(), HasSubstr("parked 0 s, waiting"))
      << "parked again: a new debounce";
  VehicleState in_gear = Idle();
  in_gear.set_gear(VehicleState::GEAR_DRIVE);
  EXPECT_EQ(At(in_gear, absl::Minutes(12)).reason(), "gear D, not P");
  VehicleState unknown;
  EXPECT_EQ(At(unknown, absl::Minutes(13)).reason(), "ignition unknown");
  VehicleState accessory = Idle();
  accessory.set_ignition(VehicleState::IGNITION_ACCESSORY);
  EXPECT_EQ(At(accessory, absl::Minutes(14)).reason(), "ignition in accessory mode");
}

TEST_F(IdlePolicyTest, UnreadableOrStaleStatesAreIneligibleWithTheirReason) {
  VehicleReading bad;
  bad.state = absl::InvalidArgumentError("/run/vehicle.json: invalid JSON at offset 3");
  EXPECT_EQ(policy_.Evaluate(bad, kNoon).reason(),
            "vehicle state unreadable: /run/vehicle.json: invalid JSON at offset 3");
  At(Idle(), absl::ZeroDuration());
  const v1::Eligibility stale = At(Idle(), absl::Minutes(10), kNoon + absl::Minutes(9));
  EXPECT_FALSE(stale.eligible());
  EXPECT_EQ(stale.reason(), "vehicle state is 60 s old (> 30 s)");
}

TEST_F(IdlePolicyTest, BatteryFloorPlusTheNextTripsReserveWhenNotCharging) {
  VehicleState low = Idle();
  low.set_charging(false);
  low.set_state_of_charge(0.34);
  low.set_estimated_range_km(0);  // range unknown: the floor alone
  EXPECT_EQ(Settled(low).reason(), "not charging and state of charge 34% < 50%");
  VehicleState reserve = Idle();
  reserve.set_charging(false);
  reserve.set_state_of_charge(0.55);
  reserve.set_estimated_range_km(330);  // 60 km takes 10% of the battery
  EXPECT_EQ(At(reserve, absl::Minutes(11)).reason(),
            "not charging and state of charge 55% < 50% + 10% for a 60 km trip");
  reserve.set_state_of_charge(0.9);
  reserve.set_estimated_range_km(540);
  const v1::Eligibility ok = At(reserve, absl::Minutes(12));
  EXPECT_TRUE(ok.eligible()) << ok.reason();
  EXPECT_EQ(ok.reason(), "parked 12 min, state of charge 90%, on Wi-Fi");
}

TEST_F(IdlePolicyTest, TheStaysEnergyBudgetEndsComputeOnBattery) {
  VehicleState battery = Idle();
  battery.set_charging(false);
  battery.set_state_of_charge(0.9);
  ASSERT_TRUE(Settled(battery).eligible());
  policy_.AddComputeTime(absl::Hours(8));  // 8 h x 60 W = 480 Wh of 500
  EXPECT_TRUE(At(battery, absl::Minutes(11)).eligible());
  policy_.AddComputeTime(absl::Hours(1));
  EXPECT_EQ(At(battery, absl::Minutes(12)).reason(),
            "not charging and this stay's energy budget is spent (540 of 500 Wh)");
  EXPECT_TRUE(At(Idle(), absl::Minutes(13)).eligible()) << "charging: no energy budget";
  VehicleState driving = Idle();
  driving.set_ignition(VehicleState::IGNITION_ON);
  At(driving, absl::Minutes(14));
  At(battery, absl::Minutes(15));
  EXPECT_TRUE(At(battery, absl::Minutes(25)).eligible()) << "a new stay, a new budget";
}

TEST_F(IdlePolicyTest, TemperaturesOccupancyNetworkAndDeparture) {
  VehicleState hot = Idle();
  hot.set_pack_temperature_c(47);
  EXPECT_EQ(Settled(hot).reason(), "battery pack at 47 °C > 45 °C");
  hot = Idle();
  hot.set_compute_temperature_c(90);
  EXPECT_EQ(At(hot, absl::Minutes(11)).reason(), "computer at 90 °C > 85 °C");
  VehicleState occupied = Idle();
  occupied.set_occupied(true);
  EXPECT_EQ(At(occupied, absl::Minutes(12)).reason(), "someone is in the vehicle");
  VehicleState offline = Idle();
  offline.set_network(VehicleState::NETWORK_NONE);
  EXPECT_EQ(At(offline, absl::Minutes(13)).reason(), "no network");
  VehicleState leaving = Idle();
  *leaving.mutable_predicted_departure() = Stamp(kNoon + absl::Minutes(26));
  EXPECT_EQ(At(leaving, absl::Minutes(14)).reason(), "departs in 12 min (a round needs 30 min)");
  *leaving.mutable_predicted_departure() = Stamp(kNoon + absl::Hours(3));
  EXPECT_TRUE(At(leaving, absl::Minutes(15)).eligible());
}

TEST_F(IdlePolicyTest, MeteredLinksNeedTheirBudgetAndTheDaysAllowance) {
  VehicleState cellular = Idle();
  cellular.set_network(VehicleState::NETWORK_CELLULAR);
  cellular.set_metered(true);
  cellular.set_data_budget_bytes(3'000'000);
  EXPECT_EQ(Settled(cellular).reason(),
            "metered cellular link with 3.0 MB of its budget left (< 8.0 MB)");
  cellular.set_data_budget_bytes(500'000'000);
  const v1::Eligibility ok = At(cellular, absl::Minutes(11));
  EXPECT_TRUE(ok.eligible());
  EXPECT_EQ(ok.reason(), "parked 11 min, charging at 7.4 kW, on cellular (metered)");
  policy_.AddMeteredBytes(45'000'000, kNoon);
  EXPECT_EQ(At(cellular, absl::Minutes(12)).reason(),
            "metered cellular link: 45.0 MB of today's 50.0 MB used");
  VehicleState satellite = Idle();  // metered even when the gateway does not say so
  satellite.set_network(VehicleState::NETWORK_SATELLITE);
  EXPECT_THAT(At(satellite, absl::Minutes(13)).reason(), HasSubstr("metered satellite link"));
  EXPECT_TRUE(At(cellular, absl::Hours(24)).eligible()) << "a new day";
}

// Whether the link is one a model download may use: online, not metered,
// not satellite, and only from a fresh state.
TEST_F(IdlePolicyTest, TheLinkIsUnmeteredOnlyOnlineUnpaidAndFresh) {
  EXPECT_TRUE(Settled(Idle()).unmetered_link());
  VehicleState s = Idle();
  s.set_network(VehicleState::NETWORK_CELLULAR);
  EXPECT_TRUE(At(s, absl::Minutes(11)).unmetered_link()) << "cellular the gateway calls unmetered";
  s.set_metered(true);
  EXPECT_FALSE(At(s, absl::Minutes(12)).unmetered_link());
  s = Idle();
  s.set_network(VehicleState::NETWORK_SATELLITE);
  EXPECT_FALSE(At(s, absl::Minutes(13)).unmetered_link());
  s.set_network(VehicleState::NETWORK_NONE);
  EXPECT_FALSE(At(s, absl::Minutes(14)).unmetered_link());
  EXPECT_FALSE(At(Idle(), absl::Minutes(15), kNoon).unmetered_link()) << "a stale state";
  // Driving on home Wi-Fi still has the link (a download needs no idle time).
  s = Idle();
  s.set_ignition(VehicleState::IGNITION_ON);
  EXPECT_FALSE(At(s, absl::Minutes(16)).eligible());
  EXPECT_TRUE(At(s, absl::Minutes(16)).unmetered_link());
}

TEST(IdlePolicyParseTest, DefaultsFillUnsetFieldsAndBadValuesNameTheirField) {
  const v1::IdlePolicy p = *ParseIdlePolicy("min_state_of_charge: 0.3", "policy.textproto");
  EXPECT_EQ(WithDefaults(p).min_state_of_charge(), 0.3);
  EXPECT_EQ(WithDefaults(p).parked_debounce_seconds(), 300);
  EXPECT_THAT(ParseIdlePolicy("min_state_of_charge: 30", "p.textproto").status().message(),
              HasSubstr("p.textproto: min_state_of_charge must be in [0, 1], not 30"));
  EXPECT_THAT(ParseIdlePolicy("staleness_seconds: -1", "p.textproto").status().message(),
              HasSubstr("staleness_seconds must be >= 0"));
  EXPECT_THAT(ParseIdlePolicy("min_charge: 1", "p.textproto").status().message(),
              HasSubstr("p.textproto: line 1 column"));
  EXPECT_EQ(LoadIdlePolicy("/nonexistent/policy").status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace nightshift::edge
