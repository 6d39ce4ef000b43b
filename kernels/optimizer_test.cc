// Optimizer and schedule steps against values computed by hand from
// PyTorch's update rules (the arithmetic is in the comments).
#include "kernels/optimizer.h"

#include <vector>

#include "gtest/gtest.h"
#include "kernels/lr_schedule.h"

namespace nightshift {
namespace {

// Runs two steps on a single parameter p = 1 with gradients g1 then g2.
std::pair<float, float> TwoSteps(const v1::OptimizerSpec& spec, float lr, float g1, float g2) {
  auto opt = MakeOptimizer(spec, 1);
  EXPECT_TRUE(opt.ok());
  std::vector<float> p = {1.f};
  std::vector<float> g = {g1};
  (*opt)->Step(absl::MakeSpan(p), g, lr);
  const float after1 = p[0];
  g[0] = g2;
  (*opt)->Step(absl::MakeSpan(p), g, lr);
  EXPECT_EQ((*opt)->steps(), 2);
  return {after1, p[0]};
}

TEST(SgdTest, PlainStep) {
  v1::OptimizerSpec spec;
  spec.mutable_sgd()->set_lr(0.1f);
  auto [p1, p2] = TwoSteps(spec, 0.1f, 0.5f, 0.5f);
  EXPECT_FLOAT_EQ(p1, 0.95f);  // 1 - 0.1·0.5
  EXPECT_FLOAT_EQ(p2, 0.90f);
}

TEST(SgdTest, GradScaleScalesTheGradientNotTheDecay) {
  v1::OptimizerSpec spec;
  spec.mutable_sgd()->set_lr(0.1f);
  spec.mutable_sgd()->set_weight_decay(0.01f);
  auto opt = MakeOptimizer(spec, 1);
  std::vector<float> p = {1.f}, g = {0.5f};
  (*opt)->Step(absl::MakeSpan(p), g, 0.1f, 0.25f);
  EXPECT_NEAR(p[0], 1 - 0.1 * (0.125 + 0.01), 1e-7);  // g·scale + wd·p
}

TEST(SgdTest, MomentumWithWeightDecay) {
  v1::OptimizerSpec spec;
  spec.mutable_sgd()->set_lr(0.1f);
  spec.mutable_sgd()->set_momentum(0.9f);
  spec.mutable_sgd()->set_weight_decay(0.01f);
  auto [p1, p2] = TwoSteps(spec, 0.1f, 0.5f, 0.5f);
  // d1 = 0.5 + 0.01·1 = 0.51; buf = 0.51; p = 1 - 0.051 = 0.949
  EXPECT_NEAR(p1, 0.949, 1e-6);
  // d2 = 0.5 + 0.00949 = 0.50949; buf = 0.459 + 0.50949 = 0.96849
  // p = 0.949 - 0.096849 = 0.852151
  EXPECT_NEAR(p2, 0.852151, 1e-6);
}

TEST(SgdTest, Nesterov) {
  v1::OptimizerSpec spec;
  spec.mutable_sgd()->set_lr(0.1f);
  spec.mutable_sgd()->set_momentum(0.9f);
  spec.mutable_sgd()->set_nesterov(true);
  spec.mutable_sgd()->set_weight_decay(0.01f);
  auto [p1, p2] = TwoSteps(spec, 0.1f, 0.5f, 0.5f);
  // buf = 0.51; update = 0.51 + 0.9·0.51 = 0.969; p = 0.9031
  EXPECT_NEAR(p1, 0.9031, 1e-6);
  // d = 0.509031; buf = 0.968031; update = 0.509031 + 0.8712279 = 1.3802589
  EXPECT_NEAR(p2, 0.76507411, 1e-6);
}

TEST(SgdTest, StateIsTheMomentumBuffer) {
  v1::OptimizerSpec spec;
  spec.mutable_sgd()->set_lr(0.1f);
  spec.mutable_sgd()->set_momentum(0.9f);
  auto opt = MakeOptimizer(spec, 3);
  ASSERT_TRUE(opt.ok());
  auto state = (*opt)->State();
  ASSERT_EQ(state.size(), 1u);
  EXPECT_EQ(state[0].name, "momentum_buffer");
  EXPECT_EQ(state[0].buffer->size(), 3);
  spec.mutable_sgd()->set_momentum(0);
  EXPECT_TRUE((*MakeOptimizer(spec, 3))->State().empty());
}

TEST(AdamWTest, TwoStepsWithDefaults) {
  v1::OptimizerSpec spec;
  spec.mutable_adamw()->set_lr(0.1f);  // β = (0.9, 0.999), ε = 1e-8, wd = 0.01
  auto [p1, p2] = TwoSteps(spec, 0.1f, 0.5f, -0.25f);
  // p = 0.999; m = 0.05, v = 0.00025; m̂ = 0.5, v̂ = 0.25; p -= 0.1·0.5/0.5
  EXPECT_NEAR(p1, 0.899, 1e-6);
  // p = 0.898101; m = 0.02, v = 0.00031225; m̂ = 0.02/0.19 = 0.105263158
  // v̂ = 0.00031225/0.001999 = 0.156203102, √ = 0.395225384
  // p -= 0.1·0.105263158/0.395225384 = 0.026633724
  EXPECT_NEAR(p2, 0.871467276, 2e-6);
}

TEST(AdamWTest, ExplicitHyperparameters) {
  v1::OptimizerSpec spec;
  spec.mutable_adamw()->set_lr(0.1f);
  spec.mutable_adamw()->set_beta1(0.5f);
  spec.mutable_adamw()->set_beta2(0.5f);
  spec.mutable_adamw()->set_weight_decay(0.f);
  auto [p1, p2] = TwoSteps(spec, 0.1f, 2.f, 2.f);
  // m̂ = 2, v̂ = 4: every step moves by lr·2/2 = 0.1.
  EXPECT_NEAR(p1, 0.9, 1e-6);
  EXPECT_NEAR(p2, 0.8, 1e-6);
}

// A step applied in pieces (what a sharded optimizer step does across
// ranks) equals the whole step, bit for bit, for both optimizers.
TEST(OptimizerTest, StepInPiecesEqualsWholeStep) {
  v1::OptimizerSpec sgd, adamw;
  sgd.mutable_sgd()->set_lr(0.1f);
  sgd.mutable_sgd()->set_momentum(0.9f);
  sgd.mutable_sgd()->set_nesterov(true);
  sgd.mutable_sgd()->set_weight_decay(0.01f);
  adamw.mutable_adamw()->set_lr(0.1f);
  for (const v1::OptimizerSpec& spec : {sgd, adamw}) {
    auto whole = MakeOptimizer(spec, 10), pieces = MakeOptimizer(spec, 10);
    std::vector<float> pw(10), pp(10), g(10);
    for (int i = 0; i < 10; ++i) pw[i] = pp[i] = 0.1f * i - 0.3f;
    for (int step = 0; step < 3; ++step) {
      for (int i = 0; i < 10; ++i) g[i] = 0.07f * ((i * 3 + step) % 5) - 0.1f;
      (*whole)->Step(absl::MakeSpan(pw), g, 0.05f, 0.5f);
      (*pieces)->BeginStep();
      (*pieces)->Update(absl::MakeSpan(pp), g, 0.05f, 0.5f, 6, 10);
      (*pieces)->Update(absl::MakeSpan(pp), g, 0.05f, 0.5f, 0, 6);
      ASSERT_EQ(pp, pw) << spec.ShortDebugString() << " step " << step;
    }
    EXPECT_EQ((*pieces)->steps(), 3);
  }
}

TEST(LrScheduleTest, LinearWarmupThenConstant) {
  v1::LrSchedule s;
  s.mutable_constant();
  s.set_warmup_steps(4);
  EXPECT_FLOAT_EQ(LearningRateAt(s, 0.1f, 0, 100), 0.025f);
  EXPECT_FLOAT_EQ(LearningRateAt(s, 0.1f, 1, 100), 0.05f);
  EXPECT_FLOAT_EQ(LearningRateAt(s, 0.1f, 3, 100), 0.1f);
  EXPECT_FLOAT_EQ(LearningRateAt(s, 0.1f, 50, 100), 0.1f);
}

TEST(LrScheduleTest, StepDecay) {
  v1::LrSchedule s;
  s.mutable_step()->set_step_size(10);
  s.mutable_step()->set_gamma(0.5f);
  EXPECT_FLOAT_EQ(LearningRateAt(s, 0.1f, 9, 100), 0.1f);
  EXPECT_FLOAT_EQ(LearningRateAt(s, 0.1f, 10, 100), 0.05f);
  EXPECT_FLOAT_EQ(LearningRateAt(s, 0.1f, 25, 100), 0.025f);
}

TEST(LrScheduleTest, CosineAfterWarmup) {
  v1::LrSchedule s;
  s.mutable_cosine()->set_min_lr(0.f);
  s.set_warmup_steps(4);
  EXPECT_FLOAT_EQ(LearningRateAt(s, 0.1f, 4, 104), 0.1f);
  // 25 of 100 decay steps: 0.1·(1 + cos(π/4))/2 = 0.0853553
  EXPECT_NEAR(LearningRateAt(s, 0.1f, 29, 104), 0.0853553, 1e-6);
  EXPECT_NEAR(LearningRateAt(s, 0.1f, 54, 104), 0.05, 1e-7);
  EXPECT_NEAR(LearningRateAt(s, 0.1f, 104, 104), 0.0, 1e-7);
  s.mutable_cosine()->set_min_lr(0.01f);
  EXPECT_NEAR(LearningRateAt(s, 0.1f, 54, 104), 0.055, 1e-7);
}

}  // namespace
}  // namespace nightshift
