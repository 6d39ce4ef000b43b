#include "security/rate_limiter.h"

#include "gtest/gtest.h"

namespace nightshift::security {
namespace {

TEST(RateLimiterTest, AFloodingKeyIsCutToItsRateWhileOthersGoOn) {
  FakeClock clock(absl::FromUnixSeconds(1000));
  RateLimiter limiter(/*rate_per_second=*/10, /*burst=*/5, &clock);
  int flood = 0;
  for (int i = 0; i < 1000; ++i) flood += limiter.Allow("flooder");
  EXPECT_EQ(flood, 5) << "only the burst at once";
  EXPECT_TRUE(limiter.Allow("calm")) << "another worker is not hurt";
  clock.Advance(absl::Milliseconds(500));  // 5 tokens back
  flood = 0;
  for (int i = 0; i < 1000; ++i) flood += limiter.Allow("flooder");
  EXPECT_EQ(flood, 5);
  clock.Advance(absl::Seconds(60));
  for (int i = 0; i < 5; ++i)
    EXPECT_TRUE(limiter.Allow("flooder")) << "refilled, never above burst";
  EXPECT_FALSE(limiter.Allow("flooder"));
}

}  // namespace
}  // namespace nightshift::security
