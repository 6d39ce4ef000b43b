// A replica's rounds learn on its shard, its inner optimizer carries
// over, and a set stop flag ends compute before the next micro-batch.
#include "worker/edge/replica_trainer.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "spec/tensors.h"
#include "worker/edge/edge_test_spec.h"

namespace nightshift {
namespace {

using testing::HasSubstr;

v1::JobSpec Spec() { return ReplicaTrainerTestSpec(); }

TEST(ReplicaTrainerTest, RoundsFromTheOuterParametersLearnOnTheShard) {
  auto trainer = ReplicaTrainer::Create(Spec(), 2);
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  EXPECT_EQ((*trainer)->shard_size(), 200);  // 800 / 4
  // From the job's init (what the coordinator holds at version 0), then
  // from θ + Δ each round, as the outer step with lr 1 would give.
  std::vector<float> theta = *InitialParameters(Spec());
  ASSERT_EQ(static_cast<int64_t>(theta.size()), (*trainer)->num_parameters());
  const float before = *(*trainer)->TestAccuracy(theta);
  auto first = (*trainer)->RunRound(theta, 10);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->steps_done, 10);
  EXPECT_EQ(first->samples, 160);
  EXPECT_FALSE(first->preempted);
  for (size_t i = 0; i < theta.size(); ++i) theta[i] += first->delta[i];
  for (int r = 0; r < 4; ++r) {
    auto round = (*trainer)->RunRound(theta, 10);
    ASSERT_TRUE(round.ok());
    for (size_t i = 0; i < theta.size(); ++i) theta[i] += round->delta[i];
  }
  EXPECT_EQ((*trainer)->inner_steps_taken(), 50);
  const float after = *(*trainer)->TestAccuracy(theta);
  EXPECT_GT(after, before + 0.2f) << before << " -> " << after;
  EXPECT_GT(after, 0.8f);
}

TEST(ReplicaTrainerTest, AStopFlagEndsTheRoundWithWhatWasDone) {
  auto trainer = *ReplicaTrainer::Create(Spec(), 0);
  const std::vector<float> theta(trainer->num_parameters(), 0.01f);
  std::atomic<bool> stop{true};
  auto round = trainer->RunRound(theta, 10, &stop);
  ASSERT_TRUE(round.ok());
  EXPECT_TRUE(round->preempted);
  EXPECT_EQ(round->steps_done, 0);
  EXPECT_EQ(round->samples, 0);
  for (float d : round->delta) ASSERT_EQ(d, 0.0f);  // nothing half-applied
}

TEST(ReplicaTrainerTest, RefusesAShardOutsideTheSpecAndParametersOfAnotherModel) {
  EXPECT_THAT(ReplicaTrainer::Create(Spec(), 4).status().message(),
              HasSubstr("shard 4 is outside [0, 4)"));
  auto trainer = *ReplicaTrainer::Create(Spec(), 1);
  EXPECT_THAT(trainer->RunRound(std::vector<float>(3), 1).status().message(),
              HasSubstr("hold 3 values"));
}

}  // namespace
}  // namespace nightshift
