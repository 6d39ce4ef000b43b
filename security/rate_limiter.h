// RateLimiter: a token bucket per caller (a worker's name), so that one
// worker flooding heartbeats or progress reports is refused
// (RESOURCE_EXHAUSTED) before it reaches the coordinator's lock, while
// every other worker goes on at its own pace. Each key may make `burst`
// calls at once and `rate` per second after. Keys idle long enough to
// have a full bucket are forgotten, so memory stays bounded by the
// callers of the last few seconds. Thread-safe; its own lock.
#ifndef NIGHTSHIFT_SECURITY_RATE_LIMITER_H_
#define NIGHTSHIFT_SECURITY_RATE_LIMITER_H_

#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "base/clock.h"

namespace nightshift::security {

class RateLimiter {
 public:
  RateLimiter(double rate_per_second, double burst, Clock* clock)
      : rate_(rate_per_second), burst_(burst), clock_(clock) {}

  // Takes one token from `key`'s bucket, or false when it is empty.
  bool Allow(absl::string_view key);

 private:
  struct Bucket {
    double tokens;
    absl::Time last;
  };
  const double rate_;
  const double burst_;
  Clock* const clock_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, Bucket> buckets_ ABSL_GUARDED_BY(mu_);
  absl::Time last_sweep_ ABSL_GUARDED_BY(mu_);
};

}  // namespace nightshift::security

#endif  // NIGHTSHIFT_SECURITY_RATE_LIMITER_H_
