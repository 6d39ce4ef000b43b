// RpcMetrics: calls land in the right buckets, cumulatively, by method and
// code, in the text format Prometheus parses.
#include "coordinator/rpc_metrics.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace nightshift::coordinator {
namespace {

using testing::HasSubstr;

constexpr RpcSeriesNames kNames = {"t_seconds",   "Test latency.", "t_total",
                                   "Test calls.", "method",        "code"};

TEST(RpcMetricsTest, CallsFallIntoTheirBucketsCumulatively) {
  FakeClock clock;
  RpcMetrics m(&clock);
  auto call = [&](const char* method, const char* code, absl::Duration took) {
    const absl::Time started = m.Now();
    clock.Advance(took);
    m.Record(method, code, started);
  };
  call("Heartbeat", "OK", absl::Microseconds(80));
  call("Heartbeat", "OK", absl::Microseconds(250));  // on a bound: that bucket (le)
  call("Heartbeat", "NOT_FOUND", absl::Milliseconds(30));
  call("Submit", "OK", absl::Seconds(20));  // past the last bound: +Inf only
  EXPECT_EQ(m.Count("Heartbeat"), 3);
  EXPECT_EQ(m.CountWithin("Heartbeat", 0.0001), 1);
  EXPECT_EQ(m.CountWithin("Heartbeat", 0.00025), 2);
  EXPECT_EQ(m.CountWithin("Heartbeat", 0.05), 3);
  EXPECT_EQ(m.CountWithin("Submit", 10), 0);
  EXPECT_EQ(m.Count("Never"), 0);

  std::string text;
  m.AppendPrometheus(kNames, &text);
  EXPECT_THAT(text, HasSubstr("# TYPE t_seconds histogram\n"));
  EXPECT_THAT(text, HasSubstr("t_seconds_bucket{method=\"Heartbeat\",le=\"0.0001\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("t_seconds_bucket{method=\"Heartbeat\",le=\"0.00025\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("t_seconds_bucket{method=\"Heartbeat\",le=\"0.025\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("t_seconds_bucket{method=\"Heartbeat\",le=\"0.05\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("t_seconds_bucket{method=\"Heartbeat\",le=\"+Inf\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("t_seconds_count{method=\"Heartbeat\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("t_seconds_sum{method=\"Heartbeat\"} 0.03033\n"));
  EXPECT_THAT(text, HasSubstr("t_seconds_bucket{method=\"Submit\",le=\"10\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("t_seconds_bucket{method=\"Submit\",le=\"+Inf\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE t_total counter\n"));
  EXPECT_THAT(text, HasSubstr("t_total{method=\"Heartbeat\",code=\"OK\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("t_total{method=\"Heartbeat\",code=\"NOT_FOUND\"} 1\n"));
}

TEST(RpcMetricsTest, TheSeriesAreDeclaredBeforeTheFirstCall) {
  FakeClock clock;
  RpcMetrics m(&clock);
  std::string text;
  m.AppendPrometheus(kNames, &text);
  EXPECT_EQ(text,
            "# HELP t_seconds Test latency.\n# TYPE t_seconds histogram\n"
            "# HELP t_total Test calls.\n# TYPE t_total counter\n");
}

}  // namespace
}  // namespace nightshift::coordinator
