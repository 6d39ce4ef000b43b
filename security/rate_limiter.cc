#include "security/rate_limiter.h"

#include <algorithm>

namespace nightshift::security {

bool RateLimiter::Allow(absl::string_view key) {
  const absl::Time now = clock_->Now();
  absl::MutexLock lock(&mu_);
  // Now and then, forget buckets that have refilled: they equal new ones.
  const absl::Duration refill = absl::Seconds(burst_ / rate_);
  if (now - last_sweep_ > refill) {
    for (auto it = buckets_.begin(); it != buckets_.end();) {
      auto next = std::next(it);
      if (now - it->second.last > refill) buckets_.erase(it);
      it = next;
    }
    last_sweep_ = now;
  }
  auto [it, added] = buckets_.try_emplace(key, Bucket{burst_, now});
  Bucket& b = it->second;
  b.tokens = std::min(burst_, b.tokens + absl::ToDoubleSeconds(now - b.last) * rate_);
  b.last = now;
  if (b.tokens < 1) return false;
  b.tokens -= 1;
  return true;
}

}  // namespace nightshift::security
