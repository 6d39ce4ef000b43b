#include "fleet/vehicle_compute.h"

#include <limits>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "worker/edge/edge_test_spec.h"

namespace nightshift::fleet {
namespace {

// Virtual time that moves only when waited on; a wait past `preempt_at`
// ends there, stopped (the vehicle's owner came back).
class FakeClock final : public VirtualClock {
 public:
  double Now() const override { return now_; }
  bool WaitUntil(double t, const std::atomic<bool>*) override {
    if (t > preempt_at) {
      now_ = preempt_at;
      return true;
    }
    now_ = std::max(now_, t);
    return false;
  }
  double preempt_at = std::numeric_limits<double>::infinity();

 private:
  double now_ = 1000;
};

struct Spans {
  std::vector<std::pair<double, double>> spans;
  SpanRecorder recorder() {
    return [this](double from, double to) { spans.emplace_back(from, to); };
  }
};

constexpr int kBatch = 16;    // ReplicaTrainerTestSpec's replica batch
constexpr double kRate = 16;  // samples per virtual second: a step a second

std::unique_ptr<ReplicaTrainer> Trainer() {
  auto trainer = ReplicaTrainer::Create(ReplicaTrainerTestSpec(), 1);
  EXPECT_TRUE(trainer.ok()) << trainer.status();
  return *std::move(trainer);
}

TEST(PacedTrainingTest, TakesTheModelledTimeAndTheSameStepsAsOneUnpacedCall) {
  FakeClock clock;
  Spans spans;
  std::unique_ptr<ReplicaTrainer> unpaced = Trainer();
  const std::vector<float> theta = unpaced->CurrentParameters();
  PacedTraining paced(&clock, spans.recorder(), Trainer(), kBatch, kRate);

  // Two rounds of 25 steps (pieces of 10, 10 and 5): the optimizer's state
  // and schedule carry over from piece to piece and round to round.
  std::vector<float> base = theta;
  for (int round = 0; round < 2; ++round) {
    absl::StatusOr<RoundResult> want = unpaced->RunRound(base, 25);
    absl::StatusOr<RoundResult> got = paced.RunRound(base, 25, nullptr);
    ASSERT_TRUE(want.ok() && got.ok());
    EXPECT_EQ(got->delta, want->delta) << "round " << round;
    EXPECT_EQ(got->steps_done, 25);
    EXPECT_EQ(got->samples, want->samples);  // an epoch's last batch is smaller
    EXPECT_FALSE(got->preempted);
    EXPECT_NEAR(got->mean_loss, want->mean_loss, 1e-5);
    for (size_t i = 0; i < base.size(); ++i) base[i] += want->delta[i];
  }
  EXPECT_DOUBLE_EQ(clock.Now(), 1050);
  ASSERT_EQ(spans.spans.size(), 2u);
  EXPECT_EQ(spans.spans[0], std::make_pair(1000.0, 1025.0));
  EXPECT_EQ(spans.spans[1], std::make_pair(1025.0, 1050.0));
}

TEST(PacedTrainingTest, AStopLosesThePieceWhoseTimeWasNotOver) {
  FakeClock clock;
  clock.preempt_at = 1015.5;  // in the second piece's time
  Spans spans;
  std::unique_ptr<ReplicaTrainer> unpaced = Trainer();
  const std::vector<float> theta = unpaced->CurrentParameters();
  PacedTraining paced(&clock, spans.recorder(), Trainer(), kBatch, kRate);

  absl::StatusOr<RoundResult> got = paced.RunRound(theta, 25, nullptr);
  absl::StatusOr<RoundResult> want = unpaced->RunRound(theta, 10);
  ASSERT_TRUE(want.ok() && got.ok());
  EXPECT_TRUE(got->preempted);
  EXPECT_EQ(got->steps_done, 10);
  EXPECT_EQ(got->samples, want->samples);
  EXPECT_EQ(got->delta, want->delta);
  ASSERT_EQ(spans.spans.size(), 1u);
  EXPECT_EQ(spans.spans[0], std::make_pair(1000.0, 1015.5));
}

TEST(PacedTrainingTest, AStopRaisedBeforeTheRoundTrainsNothing) {
  FakeClock clock;
  clock.preempt_at = 1000;
  Spans spans;
  std::unique_ptr<ReplicaTrainer> trainer = Trainer();
  const std::vector<float> theta = trainer->CurrentParameters();
  PacedTraining paced(&clock, spans.recorder(), std::move(trainer), kBatch, kRate);
  absl::StatusOr<RoundResult> got = paced.RunRound(theta, 25, nullptr);
  ASSERT_TRUE(got.ok());
  EXPECT_TRUE(got->preempted);
  EXPECT_EQ(got->steps_done, 0);
  EXPECT_EQ(got->delta, std::vector<float>(theta.size(), 0.0f));
}

TEST(ModelledComputeTest, WaitsTheModelledTimeOrUntilStopped) {
  FakeClock clock;
  Spans spans;
  ModelledCompute compute(&clock, spans.recorder(), /*parameters=*/100, kBatch, kRate, 3);
  absl::StatusOr<RoundResult> full = compute.RunRound({}, 25, nullptr);
  ASSERT_TRUE(full.ok());
  EXPECT_EQ(full->steps_done, 25);
  EXPECT_EQ(full->samples, 25 * kBatch);
  EXPECT_EQ(full->delta.size(), 100u);
  EXPECT_DOUBLE_EQ(clock.Now(), 1025);

  clock.preempt_at = 1037.5;
  absl::StatusOr<RoundResult> cut = compute.RunRound({}, 25, nullptr);
  ASSERT_TRUE(cut.ok());
  EXPECT_TRUE(cut->preempted);
  EXPECT_EQ(cut->steps_done, 12);
  ASSERT_EQ(spans.spans.size(), 2u);
  EXPECT_EQ(spans.spans[1], std::make_pair(1025.0, 1037.5));
}

TEST(ViewOfTest, SharesTheImagesAndCopiesTheLabels) {
  const v1::JobSpec spec = ReplicaTrainerTestSpec();
  absl::StatusOr<DatasetSplits> data = LoadDataset(spec.dataset(), spec.seed());
  ASSERT_TRUE(data.ok()) << data.status();
  DatasetSplits view = ViewOf(*data);
  EXPECT_EQ(view.train.images.data(), data->train.images.data());
  EXPECT_EQ(view.test.images.data(), data->test.images.data());
  EXPECT_FALSE(view.train.images.owns_data());
  EXPECT_EQ(view.train.labels, data->train.labels);
  EXPECT_EQ(view.train.sample_shape, data->train.sample_shape);
  EXPECT_EQ(view.test.num_classes, data->test.num_classes);
  // A trainer on the view trains as one on its own copy.
  auto on_view = ReplicaTrainer::Create(spec, 2, std::move(view));
  auto on_own = ReplicaTrainer::Create(spec, 2);
  ASSERT_TRUE(on_view.ok() && on_own.ok());
  const std::vector<float> theta = (*on_own)->CurrentParameters();
  EXPECT_EQ((*on_view)->RunRound(theta, 10)->delta, (*on_own)->RunRound(theta, 10)->delta);
}

}  // namespace
}  // namespace nightshift::fleet
