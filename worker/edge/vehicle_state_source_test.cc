// Vehicle state sources on real files: the JSON file source sees a
// gateway's rename and an in-place rewrite through inotify (condition
// waits, no sleeps), turns a missing or malformed file into a reading
// that names it, and recovers when the file is good again; the trace
// source replays its lines on a fake clock and names a bad line.
#include "worker/edge/vehicle_state_source.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace nightshift::edge {
namespace {

using testing::HasSubstr;

class JsonFileSourceTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::string(std::getenv("TEST_TMPDIR")) + "/" +
           testing::UnitTest::GetInstance()->current_test_info()->name();
    ASSERT_EQ(system(("mkdir -p " + dir_).c_str()), 0);
    path_ = dir_ + "/vehicle.json";
  }
  // As a gateway should: a temporary file renamed over the old one.
  void Publish(const std::string& json) {
    const std::string tmp = path_ + ".tmp";
    std::ofstream(tmp) << json;
    ASSERT_EQ(std::rename(tmp.c_str(), path_.c_str()), 0);
  }
  // Waits (a condition, 10 s at most) for the reading after `seen`.
  VehicleReading Next(VehicleStateSource& source, uint64_t* seen) {
    EXPECT_TRUE(source.AwaitChange(*seen, absl::Now() + absl::Seconds(10))) << "no change seen";
    return source.Latest(seen);
  }
  std::string dir_, path_;
};

TEST_F(JsonFileSourceTest, ARenameOrARewriteIsSeenAndBadFilesAreNamed) {
  auto source = JsonFileSource::Start(path_);
  ASSERT_TRUE(source.ok()) << source.status();
  uint64_t seen = 0;
  VehicleReading r = (*source)->Latest(&seen);
  EXPECT_THAT(r.state.status().message(), HasSubstr(path_ + ": missing"));

  Publish(R"({"ignition": "IGNITION_OFF", "gear": "GEAR_PARK", "stateOfCharge": 0.8,
              "network": "NETWORK_WIFI", "observed": "2026-12-02T10:00:00Z"})");
  r = Next(**source, &seen);
  ASSERT_TRUE(r.state.ok()) << r.state.status();
  EXPECT_EQ(r.state->gear(), v1::VehicleState::GEAR_PARK);
  EXPECT_EQ(r.observed, absl::FromUnixSeconds(1796205600)) << "the state's own time";

  {
    std::ofstream in_place(path_, std::ios::trunc);  // a gateway writing in place
    in_place << R"({"ignition": "IGNITION_ON", "state_of_charge": 0.7})";
  }
  r = Next(**source, &seen);
  ASSERT_TRUE(r.state.ok()) << r.state.status();
  EXPECT_EQ(r.state->ignition(), v1::VehicleState::IGNITION_ON);
  EXPECT_GT(r.observed, absl::Now() - absl::Minutes(1)) << "no `observed`: the file's time";

  Publish(R"({"ignition": "IGNITION_OFF", "gear": )");
  r = Next(**source, &seen);
  EXPECT_THAT(r.state.status().message(), HasSubstr(path_ + ": "));
  Publish(R"({"ignition": "IGNITION_OFF", "gearbox": "GEAR_PARK"})");
  r = Next(**source, &seen);
  EXPECT_THAT(r.state.status().message(), HasSubstr("gearbox")) << "a misspelt field is named";
  Publish(R"({"stateOfCharge": 81})");
  r = Next(**source, &seen);
  EXPECT_THAT(r.state.status().message(), HasSubstr("stateOfCharge must be in [0, 1], not 81"));

  ASSERT_EQ(std::remove(path_.c_str()), 0);
  r = Next(**source, &seen);
  EXPECT_THAT(r.state.status().message(), HasSubstr("missing"));
  Publish(R"({"ignition": "IGNITION_OFF"})");
  r = Next(**source, &seen);
  EXPECT_TRUE(r.state.ok()) << "good again";
}

TEST_F(JsonFileSourceTest, AFolderThatDoesNotExistIsAnError) {
  EXPECT_THAT(JsonFileSource::Start(dir_ + "/no/such/folder/vehicle.json").status().message(),
              HasSubstr("cannot watch the folder"));
}

TEST(TraceSourceTest, ReplaysItsLinesOnTheClock) {
  FakeClock clock(absl::FromUnixSeconds(1'780'000'000));
  auto trace = TraceSource::FromText(R"(
# parked at home, then a trip
{"atSeconds": 0, "state": {"ignition": "IGNITION_OFF", "gear": "GEAR_PARK"}}
{"atSeconds": 3600, "state": {"ignition": "IGNITION_ON", "gear": "GEAR_DRIVE"}}
)",
                                     "trace.jsonl", &clock);
  ASSERT_TRUE(trace.ok()) << trace.status();
  uint64_t seen = 0;
  VehicleReading r = (*trace)->Latest(&seen);
  ASSERT_TRUE(r.state.ok());
  EXPECT_EQ(r.state->gear(), v1::VehicleState::GEAR_PARK);
  EXPECT_FALSE((*trace)->AwaitChange(seen, absl::Now())) << "nothing new yet";
  clock.Advance(absl::Minutes(30));
  EXPECT_EQ((*trace)->Latest().observed, clock.Now()) << "a trace's state is never stale";
  clock.Advance(absl::Minutes(30));
  EXPECT_TRUE((*trace)->AwaitChange(seen, absl::Now() + absl::Seconds(10)));
  EXPECT_EQ((*trace)->Latest().state->ignition(), v1::VehicleState::IGNITION_ON);
}

TEST(TraceSourceTest, BadTracesNameTheLine) {
  FakeClock clock;
  EXPECT_THAT(TraceSource::FromText("{\"atSeconds\": 5}\n{\"atSeconds\": 1}\n", "t.jsonl", &clock)
                  .status()
                  .message(),
              HasSubstr("t.jsonl line 2: atSeconds 1 is before the line above's 5"));
  EXPECT_THAT(TraceSource::FromText("\n{\"at\": 5}\n", "t.jsonl", &clock).status().message(),
              HasSubstr("t.jsonl line 2: "));
  EXPECT_THAT(TraceSource::FromText("# nothing\n", "t.jsonl", &clock).status().message(),
              HasSubstr("an empty trace"));
  auto late = TraceSource::FromText("{\"atSeconds\": 60}", "t.jsonl", &clock);
  EXPECT_THAT((*late)->Latest().state.status().message(), HasSubstr("starts at 60 s"));
}

}  // namespace
}  // namespace nightshift::edge
