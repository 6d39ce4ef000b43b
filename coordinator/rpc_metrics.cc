#include "coordinator/rpc_metrics.h"

#include <algorithm>

#include "absl/strings/str_format.h"

namespace nightshift::coordinator {

void RpcMetrics::Record(absl::string_view method, absl::string_view code, absl::Time started) {
  const double seconds = std::max(0.0, absl::ToDoubleSeconds(clock_->Now() - started));
  const size_t bucket =
      std::lower_bound(kLatencyBucketSeconds.begin(), kLatencyBucketSeconds.end(), seconds) -
      kLatencyBucketSeconds.begin();
  absl::MutexLock lock(&mu_);
  auto it = methods_.find(method);
  if (it == methods_.end()) it = methods_.emplace(std::string(method), Method()).first;
  Method& m = it->second;
  ++m.buckets[bucket];
  ++m.count;
  m.seconds += seconds;
  auto code_it = m.by_code.find(code);
  if (code_it == m.by_code.end()) code_it = m.by_code.emplace(std::string(code), 0).first;
  ++code_it->second;
}

void RpcMetrics::AppendPrometheus(const RpcSeriesNames& n, std::string* out) const {
  absl::MutexLock lock(&mu_);
  absl::StrAppendFormat(out, "# HELP %s %s\n# TYPE %s histogram\n", n.histogram, n.histogram_help,
                        n.histogram);
  for (const auto& [method, m] : methods_) {
    int64_t cumulative = 0;
    for (size_t i = 0; i < kLatencyBucketSeconds.size(); ++i) {
      cumulative += m.buckets[i];
      absl::StrAppendFormat(out, "%s_bucket{%s=\"%s\",le=\"%g\"} %d\n", n.histogram, n.method_label,
                            method, kLatencyBucketSeconds[i], cumulative);
    }
    absl::StrAppendFormat(out, "%s_bucket{%s=\"%s\",le=\"+Inf\"} %d\n", n.histogram, n.method_label,
                          method, m.count);
    absl::StrAppendFormat(out, "%s_sum{%s=\"%s\"} %.9g\n%s_count{%s=\"%s\"} %d\n", n.histogram,
                          n.method_label, method, m.seconds, n.histogram, n.method_label, method,
                          m.count);
  }
  absl::StrAppendFormat(out, "# HELP %s %s\n# TYPE %s counter\n", n.counter, n.counter_help,
                        n.counter);
  for (const auto& [method, m] : methods_) {
    for (const auto& [code, count] : m.by_code) {
      absl::StrAppendFormat(out, "%s{%s=\"%s\",%s=\"%s\"} %d\n", n.counter, n.method_label, method,
                            n.code_label, code, count);
    }
  }
}

int64_t RpcMetrics::Count(absl::string_view method) const {
  absl::MutexLock lock(&mu_);
  auto it = methods_.find(method);
  return it == methods_.end() ? 0 : it->second.count;
}

int64_t RpcMetrics::CountWithin(absl::string_view method, double seconds) const {
  absl::MutexLock lock(&mu_);
  auto it = methods_.find(method);
  if (it == methods_.end()) return 0;
  int64_t n = 0;
  for (size_t i = 0; i < kLatencyBucketSeconds.size() && kLatencyBucketSeconds[i] <= seconds; ++i) {
    n += it->second.buckets[i];
  }
  return n;
}

}  // namespace nightshift::coordinator
