// The outer step on hand-checked numbers: plain averaging at lr 1 and no
// momentum, Nesterov and heavy ball over two rounds, and its checks.
#include "coordinator/rounds/outer_optimizer.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace nightshift::coordinator::rounds {
namespace {

using testing::ElementsAre;
using testing::FloatNear;

TEST(OuterOptimizerTest, LrOneWithoutMomentumIsPlainAveraging) {
  OuterOptimizer o(2, {1.0, 0.0, true});
  std::vector<float> theta = {1, 2};
  ASSERT_TRUE(o.Apply(absl::MakeSpan(theta), std::vector<float>{0.5f, -1}).ok());
  EXPECT_THAT(theta, ElementsAre(1.5, 1));
}

TEST(OuterOptimizerTest, NesterovAndHeavyBallOverTwoRounds) {
  // Δ = 1 twice (g = -1): m1 = -1, m2 = 0.9·-1 - 1 = -1.9.
  OuterOptimizer nesterov(1, {0.7, 0.9, true});
  std::vector<float> a = {0};
  ASSERT_TRUE(nesterov.Apply(absl::MakeSpan(a), std::vector<float>{1}).ok());
  EXPECT_THAT(a, ElementsAre(FloatNear(0.7 * (1 + 0.9 * 1), 1e-6)));  // -lr (g + μ m1)
  ASSERT_TRUE(nesterov.Apply(absl::MakeSpan(a), std::vector<float>{1}).ok());
  EXPECT_THAT(a, ElementsAre(FloatNear(1.33 + 0.7 * (1 + 0.9 * 1.9), 1e-5)));
  EXPECT_THAT(nesterov.momentum(), ElementsAre(FloatNear(-1.9, 1e-6)));
  OuterOptimizer heavy(1, {0.7, 0.9, false});
  std::vector<float> b = {0};
  ASSERT_TRUE(heavy.Apply(absl::MakeSpan(b), std::vector<float>{1}).ok());
  ASSERT_TRUE(heavy.Apply(absl::MakeSpan(b), std::vector<float>{1}).ok());
  EXPECT_THAT(b, ElementsAre(FloatNear(0.7 * 1 + 0.7 * 1.9, 1e-5)));
}

TEST(OuterOptimizerTest, SizesAreCheckedAndMomentumRestores) {
  OuterOptimizer o(2, {});
  std::vector<float> theta = {0, 0};
  EXPECT_EQ(o.Apply(absl::MakeSpan(theta), std::vector<float>{1}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(o.RestoreMomentum(std::vector<float>{1}).code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(o.RestoreMomentum(std::vector<float>{-1, -2}).ok());
  EXPECT_THAT(o.momentum(), ElementsAre(-1, -2));
}

}  // namespace
}  // namespace nightshift::coordinator::rounds
