// RpcMetrics: how long the coordinator took to answer calls, by method, and
// how they ended — the latency histograms and call counters of /metrics
// (coordinator/metrics_page.h). One instance per server: the gRPC service
// (filled by coordinator/rpc_metrics_interceptor.h) and the HTTP API.
//
// Buckets (upper bounds in seconds, cumulative in the exposition as
// Prometheus wants): 100 µs to 10 s, for calls from a heartbeat on
// loopback (~0.2 ms) to a checkpoint upload (seconds). Methods and codes
// are whatever the server passes: a bounded set (its methods, the 17 gRPC
// codes or the HTTP statuses), never caller-chosen text.
//
// Thread-safe: one mutex over the counts (a call's Record is a map lookup
// and a few additions).
#ifndef NIGHTSHIFT_COORDINATOR_RPC_METRICS_H_
#define NIGHTSHIFT_COORDINATOR_RPC_METRICS_H_

#include <array>
#include <cstdint>
#include <map>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "base/clock.h"

namespace nightshift::coordinator {

inline constexpr std::array<double, 16> kLatencyBucketSeconds = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};

// Names of the series one RpcMetrics writes.
struct RpcSeriesNames {
  const char* histogram;       // e.g. nightshift_grpc_server_handling_seconds
  const char* histogram_help;  // its # HELP text
  const char* counter;         // e.g. nightshift_grpc_server_handled_total
  const char* counter_help;
  const char* method_label;  // e.g. grpc_method
  const char* code_label;    // e.g. grpc_code
};

class RpcMetrics {
 public:
  explicit RpcMetrics(Clock* clock) : clock_(clock) {}

  // When a call starts (pass it to Record when it ends).
  absl::Time Now() { return clock_->Now(); }
  void Record(absl::string_view method, absl::string_view code, absl::Time started);

  // The histogram and the counter in Prometheus text format (with # HELP
  // and # TYPE even before the first call, so the series are known).
  void AppendPrometheus(const RpcSeriesNames& names, std::string* out) const;

  // Calls of `method` so far, and how many took at most `seconds` (one of
  // kLatencyBucketSeconds); for tests.
  int64_t Count(absl::string_view method) const;
  int64_t CountWithin(absl::string_view method, double seconds) const;

 private:
  struct Method {
    std::array<int64_t, kLatencyBucketSeconds.size() + 1> buckets{};  // last: +Inf
    int64_t count = 0;
    double seconds = 0;
    std::map<std::string, int64_t, std::less<>> by_code;
  };
  Clock* const clock_;
  mutable absl::Mutex mu_;
  std::map<std::string, Method, std::less<>> methods_ ABSL_GUARDED_BY(mu_);
};

}  // namespace nightshift::coordinator

#endif  // NIGHTSHIFT_COORDINATOR_RPC_METRICS_H_
