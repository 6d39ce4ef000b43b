// Poisoned replicas: 2 of 10 replicas (20%) send ×100, NaN, "A Little Is
// Enough" or sign-flipped updates through the test-only wrapper
// (tests/poisoned_round_service.h) into the coordinator's real round
// keeper. Under the default for a job with the edge pool (centered
// clipping, norm and relative direction screening) the final test
// accuracy stays within one point of the clean run's; under a plain mean
// with screening off the ×100 and sign-flipped replicas do harm, which
// shows the attacks are real.
#include <string>

#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "tests/in_process_diloco.h"

namespace nightshift {
namespace {

// A 4-class synthetic set, 10 replicas × 12 rounds of 50 inner steps.
v1::JobSpec Spec(const std::string& diloco_extra) {
  v1::JobSpec spec;
  const std::string text = std::string(R"pb(
                             model {
                               layers { flatten {} }
                               layers { dense { units: 64 } }
                               layers { relu {} }
                               layers { dense { units: 4 } }
                             }
                             dataset {
                               synthetic {
                                 train_examples: 4000
                                 test_examples: 2000
                                 channels: 1
                                 height: 8
                                 width: 8
                                 classes: 4
                                 noise: 3.0
                               }
                             }
                             optimizer { sgd { lr: 0.02 momentum: 0.9 } }
                             seed: 7
                             global_batch_size: 16
                             steps: 600
                             min_workers: 1
                             max_workers: 10
                             pools: WORKER_POOL_EDGE
                             sync { diloco { inner_steps: 50 quorum: 10 over_selection: 0)pb") +
                           " " + diloco_extra + " } }";
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &spec));
  return spec;
}

InProcessDiLoCoResult Train(const v1::JobSpec& spec, Attack attack) {
  auto job = InProcessDiLoCo::Create(spec, attack, /*poisoned=*/2);
  EXPECT_TRUE(job.ok()) << job.status();
  absl::StatusOr<InProcessDiLoCoResult> result = (*job)->Run();
  EXPECT_TRUE(result.ok()) << result.status();
  if (attack != Attack::kNone) EXPECT_EQ((*job)->attacks_sent(), 2 * result->rounds);
  return *result;
}

// Reasons the rounds refused updates for, joined.
std::string Refusals(const InProcessDiLoCoResult& result) {
  std::string all;
  for (const v1::RoundInfo& round : result.history) {
    for (const v1::RoundRefusal& r : round.refused()) all += r.replica() + ": " + r.reason() + "\n";
  }
  return all;
}

class PoisonedReplicasTest : public ::testing::TestWithParam<Attack> {
 protected:
  static void SetUpTestSuite() {
    clean_ = new InProcessDiLoCoResult(Train(Spec(""), Attack::kNone));
    ASSERT_GT(clean_->test_accuracy, 0.6f);
    ASSERT_EQ(clean_->refused, 0) << Refusals(*clean_);
  }
  static void TearDownTestSuite() { delete clean_; }
  static InProcessDiLoCoResult* clean_;
};
InProcessDiLoCoResult* PoisonedReplicasTest::clean_ = nullptr;

TEST_P(PoisonedReplicasTest, RobustDefaultStaysWithinOnePointOfClean) {
  const InProcessDiLoCoResult poisoned = Train(Spec(""), GetParam());
  EXPECT_EQ(poisoned.rounds, 12);
  EXPECT_GE(poisoned.test_accuracy, clean_->test_accuracy - 0.01f)
      << "clean " << clean_->test_accuracy << "\n"
      << Refusals(poisoned);
  const std::string refusals = Refusals(poisoned);
  if (GetParam() == Attack::kNaN) {
    // Every NaN update is refused, by name and with the index.
    EXPECT_EQ(poisoned.refused, 2 * 12) << refusals;
    EXPECT_NE(refusals.find("replica-9: "), std::string::npos) << refusals;
    EXPECT_NE(refusals.find(" is nan"), std::string::npos) << refusals;
  }
  if (GetParam() == Attack::kScale100) {
    EXPECT_EQ(poisoned.refused, 2 * 12) << refusals;
    EXPECT_NE(refusals.find("norm"), std::string::npos) << refusals;
  }
  if (GetParam() == Attack::kSignFlip) {
    EXPECT_NE(refusals.find("points against the majority: mean cosine"), std::string::npos)
        << refusals;
  }
}

INSTANTIATE_TEST_SUITE_P(Attacks, PoisonedReplicasTest,
                         ::testing::Values(Attack::kScale100, Attack::kNaN, Attack::kALIE,
                                           Attack::kSignFlip),
                         [](const ::testing::TestParamInfo<Attack>& info) {
                           return std::string(AttackName(info.param));
                         });

// Sign flips: the plain mean with screening off loses to them, the robust
// default (its relative direction screen) refuses them.
TEST(PoisonedReplicasSignFlipTest, APlainMeanLosesToSignFlipsTheDefaultDoesNot) {
  const InProcessDiLoCoResult robust = Train(Spec(""), Attack::kSignFlip);
  const InProcessDiLoCoResult mean = Train(
      Spec("aggregation: AGGREGATION_MEAN max_norm_ratio: 0 direction_mads: 0"), Attack::kSignFlip);
  EXPECT_GT(robust.test_accuracy, mean.test_accuracy)
      << "robust " << robust.test_accuracy << ", mean " << mean.test_accuracy;
}

TEST(PoisonedReplicasPlainMeanTest, ScaledUpdatesWreckAPlainMeanWithoutScreening) {
  const InProcessDiLoCoResult clean = Train(Spec("aggregation: AGGREGATION_MEAN"), Attack::kNone);
  const InProcessDiLoCoResult poisoned =
      Train(Spec("aggregation: AGGREGATION_MEAN max_norm_ratio: 0"), Attack::kScale100);
  EXPECT_EQ(poisoned.refused, 0);
  EXPECT_LT(poisoned.test_accuracy, clean.test_accuracy - 0.2f)
      << "clean " << clean.test_accuracy << ", poisoned " << poisoned.test_accuracy;
}

}  // namespace
}  // namespace nightshift
