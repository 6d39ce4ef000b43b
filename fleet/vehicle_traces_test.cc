#include "fleet/vehicle_traces.h"

#include <cmath>
#include <cstdio>
#include <thread>

#include "fleet/trace_statistics.h"
#include "google/protobuf/util/time_util.h"
#include "gtest/gtest.h"

namespace nightshift::fleet {
namespace {

using State = v1::VehicleState;

FleetTraceGenerator MakeGenerator(const FleetTraceOptions& options) {
  absl::StatusOr<FleetTraceGenerator> generator = FleetTraceGenerator::Create(options);
  EXPECT_TRUE(generator.ok()) << generator.status();
  return *std::move(generator);
}

std::vector<VehicleTrace> GenerateFleet(const FleetTraceGenerator& generator, int vehicles) {
  std::vector<VehicleTrace> traces;
  for (int v = 0; v < vehicles; ++v) traces.push_back(generator.Generate(v));
  return traces;
}

std::string Serialize(const VehicleTrace& trace) {
  std::string out;
  for (const TraceStep& step : trace) {
    out += step.entry.SerializeAsString();
    out += std::to_string(step.predicted_departure_seconds.value_or(-1));
    out += PlaceName(step.place);
  }
  return out;
}

// 300 vehicles for a week: 2,100 vehicle-days, every weekday equally.
TEST(VehicleTracesTest, StatisticsMatchThePublishedFigures) {
  FleetTraceOptions options;
  options.seed = 2024;
  options.days = 7;
  const FleetTraceGenerator generator = MakeGenerator(options);
  const FleetStatistics s =
      MeasureTraces(GenerateFleet(generator, 300), generator.horizon_seconds());
  std::printf("%s", FormatStatistics(s).c_str());
  EXPECT_NEAR(s.trips_per_day, kTripsPerDay, 0.15);
  EXPECT_NEAR(s.driving_minutes_per_day, kDrivingMinutesPerDay, 5);
  EXPECT_GE(s.parked_share, 0.94);
  EXPECT_GE(s.trip_starts_11_to_19_share, 0.50);
  EXPECT_GE(s.home_charging_share, kHomeChargingShareLow);
  EXPECT_LE(s.home_charging_share, kHomeChargingShareHigh);
  EXPECT_GT(s.workplace_sessions, 100);
  EXPECT_NEAR(s.workplace_session_hours, kWorkplaceSessionHours, 0.3);
  EXPECT_NEAR(s.workplace_start_hour, 8.0, 0.5);
  EXPECT_GE(s.home_evening_start_share, 0.7);  // "mostly overnight"
}

TEST(VehicleTracesTest, SameSeedAndIndexGiveTheSameTrace) {
  FleetTraceOptions options;
  options.seed = 7;
  options.days = 2;
  const FleetTraceGenerator a = MakeGenerator(options);
  const FleetTraceGenerator b = MakeGenerator(options);
  EXPECT_EQ(Serialize(a.Generate(17)), Serialize(b.Generate(17)));
  EXPECT_NE(Serialize(a.Generate(17)), Serialize(a.Generate(18)));
  options.seed = 8;
  EXPECT_NE(Serialize(a.Generate(17)), Serialize(MakeGenerator(options).Generate(17)));
}

TEST(VehicleTracesTest, VehiclesAreIndependentOfOrderAndThread) {
  FleetTraceOptions options;
  options.days = 2;
  const FleetTraceGenerator generator = MakeGenerator(options);
  constexpr int kVehicles = 64;
  std::vector<std::string> forward(kVehicles), threaded(kVehicles);
  for (int v = 0; v < kVehicles; ++v) forward[v] = Serialize(generator.Generate(v));
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int v = kVehicles - 1 - t; v >= 0; v -= 4)
        threaded[v] = Serialize(generator.Generate(v));
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(forward, threaded);
}

TEST(VehicleTracesTest, ADayIsThePrefixOfLongerTraces) {
  FleetTraceOptions options;
  options.days = 1;
  const FleetTraceGenerator one_day = MakeGenerator(options);
  options.days = 3;
  const FleetTraceGenerator three_days = MakeGenerator(options);
  for (int v = 0; v < 50; ++v) {
    VehicleTrace longer = three_days.Generate(v);
    while (!longer.empty() && longer.back().entry.at_seconds() >= kSecondsPerDay) longer.pop_back();
    EXPECT_EQ(Serialize(one_day.Generate(v)), Serialize(longer)) << "vehicle " << v;
  }
}

TEST(VehicleTracesTest, StatesArePhysicallySane) {
  FleetTraceOptions options;
  options.days = 2;
  options.ambient_mean_c = 30;  // hot: cabins in the sun
  const FleetTraceGenerator generator = MakeGenerator(options);
  for (int v = 0; v < 500; ++v) {
    const VehicleTrace trace = generator.Generate(v);
    ASSERT_FALSE(trace.empty());
    EXPECT_EQ(trace.front().entry.at_seconds(), 0);
    double last_at = -1;
    for (const TraceStep& step : trace) {
      const State& s = step.entry.state();
      const std::string where =
          "vehicle " + std::to_string(v) + " at " + std::to_string(step.entry.at_seconds()) + " s";
      EXPECT_GT(step.entry.at_seconds(), last_at) << where;
      EXPECT_LT(step.entry.at_seconds(), generator.horizon_seconds()) << where;
      last_at = step.entry.at_seconds();
      EXPECT_GE(s.state_of_charge(), 0) << where;
      EXPECT_LE(s.state_of_charge(), 1) << where;
      EXPECT_FALSE(step.entry.state().has_predicted_departure()) << where;
      const bool driving = s.ignition() == State::IGNITION_ON;
      if (driving) {
        EXPECT_EQ(s.gear(), State::GEAR_DRIVE) << where;
        EXPECT_TRUE(s.occupied()) << where;
        EXPECT_FALSE(s.charging()) << where;
        EXPECT_TRUE(s.metered()) << where;
        EXPECT_EQ(step.place, Place::kDriving) << where;
        EXPECT_FALSE(step.predicted_departure_seconds.has_value()) << where;
      } else {
        EXPECT_EQ(s.ignition(), State::IGNITION_OFF) << where;
        EXPECT_EQ(s.gear(), State::GEAR_PARK) << where;
        EXPECT_NE(step.place, Place::kDriving) << where;
        // Unknown only when no trip is planned within a week.
        ASSERT_TRUE(step.predicted_departure_seconds.has_value()) << where;
        EXPECT_GT(*step.predicted_departure_seconds, step.entry.at_seconds()) << where;
      }
      EXPECT_EQ(s.charging(), s.charger_power_kw() > 0) << where;
      if (s.network() == State::NETWORK_WIFI) {
        EXPECT_FALSE(s.metered()) << where;
        EXPECT_EQ(step.place, Place::kHome) << where;
      }
      EXPECT_EQ(s.metered(),
                s.network() == State::NETWORK_CELLULAR || s.network() == State::NETWORK_SATELLITE)
          << where;
      EXPECT_GE(s.data_budget_bytes(), 0) << where;
      for (double c :
           {s.pack_temperature_c(), s.cabin_temperature_c(), s.compute_temperature_c()}) {
        EXPECT_GT(c, -30) << where;
        EXPECT_LT(c, 90) << where;
      }
    }
  }
}

// Temperatures relax toward their targets over time constants of minutes
// to hours: a battery pack at rest drifts by a few degrees an hour at most.
TEST(VehicleTracesTest, TemperaturesChangeGradually) {
  FleetTraceOptions options;
  options.days = 2;
  const FleetTraceGenerator generator = MakeGenerator(options);
  int checked = 0;
  for (int v = 0; v < 300; ++v) {
    const VehicleTrace trace = generator.Generate(v);
    for (size_t i = 1; i < trace.size(); ++i) {
      const State& before = trace[i - 1].entry.state();
      const State& after = trace[i].entry.state();
      if (before.ignition() != State::IGNITION_OFF || after.ignition() != State::IGNITION_OFF ||
          before.charging() || after.charging()) {
        continue;
      }
      const double hours = (trace[i].entry.at_seconds() - trace[i - 1].entry.at_seconds()) / 3600;
      EXPECT_LE(std::abs(after.pack_temperature_c() - before.pack_temperature_c()), 0.2 + 5 * hours)
          << "vehicle " << v << " step " << i;
      ++checked;
    }
  }
  EXPECT_GT(checked, 1000);
}

// What the idle policy needs to see: parked, empty, for more than its
// 5-minute debounce, and the driver in for only a minute or two around a
// drive.
TEST(VehicleTracesTest, ParkedStaysLookIdleToThePolicy) {
  const FleetTraceGenerator generator = MakeGenerator({});
  double empty_parked = 0, occupied_parked = 0, total = 0;
  for (int v = 0; v < 200; ++v) {
    const VehicleTrace trace = generator.Generate(v);
    for (size_t i = 0; i < trace.size(); ++i) {
      const State& s = trace[i].entry.state();
      const double until =
          i + 1 < trace.size() ? trace[i + 1].entry.at_seconds() : generator.horizon_seconds();
      const double span = until - trace[i].entry.at_seconds();
      total += span;
      if (s.ignition() != State::IGNITION_OFF) continue;
      (s.occupied() ? occupied_parked : empty_parked) += span;
      if (s.occupied()) {
        EXPECT_LE(span, 6 * 60) << "vehicle " << v << " step " << i;
      }
    }
  }
  EXPECT_GT(empty_parked / total, 0.93);
  EXPECT_LT(occupied_parked / total, 0.01);
}

TEST(VehicleTracesTest, SatelliteVehiclesUseSatelliteAwayFromHome) {
  FleetTraceOptions options;
  options.satellite_share = 1;
  const FleetTraceGenerator all = MakeGenerator(options);
  options.satellite_share = 0;
  const FleetTraceGenerator none = MakeGenerator(options);
  for (int v = 0; v < 50; ++v) {
    for (const TraceStep& step : all.Generate(v)) {
      EXPECT_NE(step.entry.state().network(), State::NETWORK_CELLULAR);
    }
    for (const TraceStep& step : none.Generate(v)) {
      EXPECT_NE(step.entry.state().network(), State::NETWORK_SATELLITE);
    }
  }
}

TEST(VehicleTracesTest, VehiclesWithoutATractionBatteryNeverCharge) {
  FleetTraceOptions options;
  options.ev_share = 0;
  const FleetTraceGenerator generator = MakeGenerator(options);
  for (int v = 0; v < 50; ++v) {
    for (const TraceStep& step : generator.Generate(v)) {
      EXPECT_FALSE(step.entry.state().charging());
      EXPECT_EQ(step.entry.state().state_of_charge(), 0);
    }
  }
}

TEST(VehicleTracesTest, ReplayEntriesCarryAbsoluteDepartures) {
  const FleetTraceGenerator generator = MakeGenerator({});
  const VehicleTrace trace = generator.Generate(3);
  const absl::Time start = absl::FromUnixSeconds(1'700'000'000);
  const std::vector<v1::VehicleTraceEntry> entries = ToReplayEntries(trace, start);
  ASSERT_EQ(entries.size(), trace.size());
  for (size_t i = 0; i < trace.size(); ++i) {
    EXPECT_EQ(entries[i].at_seconds(), trace[i].entry.at_seconds());
    ASSERT_EQ(entries[i].state().has_predicted_departure(),
              trace[i].predicted_departure_seconds.has_value());
    if (!trace[i].predicted_departure_seconds) continue;
    EXPECT_EQ(google::protobuf::util::TimeUtil::TimestampToSeconds(
                  entries[i].state().predicted_departure()),
              1'700'000'000 + static_cast<int64_t>(*trace[i].predicted_departure_seconds));
  }
}

TEST(VehicleTracesTest, OptionsOutOfRangeAreRefusedByName) {
  FleetTraceOptions options;
  options.satellite_share = 1.5;
  EXPECT_EQ(FleetTraceGenerator::Create(options).status().message(),
            "fleet trace option satellite_share must be in [0, 1], not 1.5");
  options = {};
  options.days = 0;
  EXPECT_EQ(FleetTraceGenerator::Create(options).status().message(),
            "fleet trace option days must be in [1, 366], not 0");
}

}  // namespace
}  // namespace nightshift::fleet
