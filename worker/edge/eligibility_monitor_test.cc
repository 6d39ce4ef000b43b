// The monitor on a real state file: a gateway's ignition-on reaches
// on_change as a flip to ineligible (a condition wait, no sleep), and
// Current() follows the file.
#include "worker/edge/eligibility_monitor.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace nightshift::edge {
namespace {

void Publish(const std::string& path, const std::string& json) {
  std::ofstream(path + ".tmp") << json;
  ASSERT_EQ(std::rename((path + ".tmp").c_str(), path.c_str()), 0);
}

TEST(EligibilityMonitorTest, IgnitionOnFlipsItToIneligibleThroughOnChange) {
  const std::string path = std::string(std::getenv("TEST_TMPDIR")) + "/vehicle.json";
  const std::string parked = R"({"ignition": "IGNITION_OFF", "gear": "GEAR_PARK",
      "charging": true, "chargerPowerKw": 11, "network": "NETWORK_ETHERNET"})";
  Publish(path, parked);
  auto source = JsonFileSource::Start(path);
  ASSERT_TRUE(source.ok()) << source.status();
  v1::IdlePolicy policy;
  policy.set_parked_debounce_seconds(1e-9);  // as good as none: eligible at once
  RealClock clock;
  absl::Mutex mu;
  std::vector<v1::Eligibility> changes;
  EligibilityMonitor monitor(*std::move(source), policy, &clock, [&](const v1::Eligibility& e) {
    absl::MutexLock lock(&mu);
    changes.push_back(e);
  });
  ASSERT_TRUE(monitor.Current().eligible()) << monitor.Current().reason();
  EXPECT_THAT(monitor.Current().reason(), testing::HasSubstr("charging at 11.0 kW, on ethernet"));

  Publish(path, R"({"ignition": "IGNITION_ON", "gear": "GEAR_PARK"})");
  {
    absl::MutexLock lock(&mu);
    auto flipped = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return !changes.empty(); };
    ASSERT_TRUE(mu.AwaitWithTimeout(absl::Condition(&flipped), absl::Seconds(10)));
    EXPECT_FALSE(changes[0].eligible());
    EXPECT_EQ(changes[0].reason(), "ignition on");
  }
  EXPECT_EQ(monitor.Current().reason(), "ignition on");

  Publish(path, parked);
  absl::MutexLock lock(&mu);
  auto back = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return changes.size() >= 2; };
  ASSERT_TRUE(mu.AwaitWithTimeout(absl::Condition(&back), absl::Seconds(10)));
  EXPECT_TRUE(changes[1].eligible()) << changes[1].reason();
}

}  // namespace
}  // namespace nightshift::edge
