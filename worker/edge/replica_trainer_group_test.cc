// Group mode: a ring of two trainers acting as one replica takes the same
// steps as one trainer alone (up to summation order), stays bitwise equal
// on both ranks, follows rank 0's commands, and a joiner synced by
// SyncGroup steps exactly as the member it replaces would have.
#include <cmath>
#include <thread>

#include "collective/group_for_test.h"
#include "gtest/gtest.h"
#include "spec/tensors.h"
#include "worker/edge/edge_test_spec.h"
#include "worker/edge/replica_trainer.h"

namespace nightshift {
namespace {

using Command = ReplicaTrainer::GroupCommand;

v1::JobSpec Spec() { return ReplicaTrainerTestSpec(); }

float MaxDifference(const std::vector<float>& a, const std::vector<float>& b) {
  float worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::fabs(a[i] - b[i]));
  return worst;
}

float MaxMagnitude(const std::vector<float>& a) {
  float worst = 0;
  for (float v : a) worst = std::max(worst, std::fabs(v));
  return worst;
}

// Rank 0 runs `rounds` rounds from θ (θ += Δ after each) and ends; rank 1
// follows. Returns rank 0's last Δ and how many rounds rank 1 trained.
struct RingRounds {
  std::vector<float> rank0;
  int follower_trains = 0;
};
RingRounds RunRing(ReplicaTrainer* a, ReplicaTrainer* b, collective::TestGroup& group,
                   std::vector<float>& theta, int rounds, bool sync_first) {
  RingRounds out;
  a->set_group(group.communicators()[0].get());
  b->set_group(group.communicators()[1].get());
  std::thread follower([&] {
    if (sync_first) EXPECT_TRUE(b->SyncGroup().ok());
    while (true) {
      absl::StatusOr<Command> c = b->Follow();
      ASSERT_TRUE(c.ok()) << c.status();
      if (*c == Command::kEnd) return;
      if (*c == Command::kTrain) ++out.follower_trains;
    }
  });
  if (sync_first) EXPECT_TRUE(a->SyncGroup().ok());
  for (int r = 0; r < rounds; ++r) {
    EXPECT_TRUE(a->Idle().ok());  // a keep-alive between rounds changes nothing
    const bool first_round = a->inner_steps_taken() == 0;
    absl::StatusOr<RoundResult> round = a->RunRound(theta, 10);
    EXPECT_TRUE(round.ok()) << round.status();
    if (!round.ok()) break;
    // The whole replica batch, not a rank's part (in the first round:
    // later ones cross the end of an epoch of the shard, 200 = 12 × 16 + 8).
    if (first_round) EXPECT_EQ(round->samples, 160);
    out.rank0 = round->delta;
    for (size_t i = 0; i < theta.size(); ++i) theta[i] += round->delta[i];
  }
  EXPECT_TRUE(a->End().ok());
  follower.join();
  return out;
}

TEST(ReplicaTrainerGroupTest, ARingOfTwoStepsAsOneReplica) {
  auto alone = *ReplicaTrainer::Create(Spec(), 1);
  auto r0 = *ReplicaTrainer::Create(Spec(), 1);
  auto r1 = *ReplicaTrainer::Create(Spec(), 1);
  auto group = collective::MakeTestGroup(collective::TransportKind::kLocal, 2);
  std::vector<float> theta_alone = *InitialParameters(Spec());
  std::vector<float> theta_ring = theta_alone;
  std::vector<float> last_alone;
  for (int r = 0; r < 3; ++r) {  // momentum carries over: round 3 tests it too
    RoundResult round = *alone->RunRound(theta_alone, 10);
    last_alone = round.delta;
    for (size_t i = 0; i < theta_alone.size(); ++i) theta_alone[i] += round.delta[i];
  }
  RingRounds ring = RunRing(r0.get(), r1.get(), *group, theta_ring, 3, /*sync_first=*/false);
  EXPECT_EQ(ring.follower_trains, 3);
  EXPECT_EQ(r1->inner_steps_taken(), 30);
  EXPECT_LT(MaxDifference(ring.rank0, last_alone), 1e-4f * MaxMagnitude(last_alone) + 1e-7f);
  EXPECT_LT(MaxDifference(theta_ring, theta_alone), 1e-4f * MaxMagnitude(theta_alone));
  // Both ranks hold the same parameters, bitwise.
  EXPECT_EQ(r0->CurrentParameters(), r1->CurrentParameters());
}

TEST(ReplicaTrainerGroupTest, AJoinerSyncedFromRankZeroStepsAsTheMemberItReplaces) {
  // Reference: one ring for 2 rounds. Test: a ring for 1 round, then rank
  // 1 replaced by a fresh trainer and synced, then 1 more round.
  std::vector<float> theta_ref = *InitialParameters(Spec());
  std::vector<float> theta = theta_ref;
  std::vector<float> ref_delta, delta;
  {
    auto a = *ReplicaTrainer::Create(Spec(), 0);
    auto b = *ReplicaTrainer::Create(Spec(), 0);
    auto group = collective::MakeTestGroup(collective::TransportKind::kLocal, 2);
    ref_delta = RunRing(a.get(), b.get(), *group, theta_ref, 2, false).rank0;
  }
  auto a = *ReplicaTrainer::Create(Spec(), 0);
  {
    auto b = *ReplicaTrainer::Create(Spec(), 0);
    auto group = collective::MakeTestGroup(collective::TransportKind::kLocal, 2);
    RunRing(a.get(), b.get(), *group, theta, 1, false);
  }
  auto joiner = *ReplicaTrainer::Create(Spec(), 0);
  auto group = collective::MakeTestGroup(collective::TransportKind::kLocal, 2);
  delta = RunRing(a.get(), joiner.get(), *group, theta, 1, /*sync_first=*/true).rank0;
  EXPECT_EQ(joiner->inner_steps_taken(), 20);  // the count came with the state
  EXPECT_EQ(delta, ref_delta);                 // bitwise: same sums, same state
  EXPECT_EQ(theta, theta_ref);
}

TEST(ReplicaTrainerGroupTest, OnlyRankZeroDrivesTheRing) {
  auto a = *ReplicaTrainer::Create(Spec(), 0);
  auto b = *ReplicaTrainer::Create(Spec(), 0);
  auto group = collective::MakeTestGroup(collective::TransportKind::kLocal, 2);
  a->set_group(group->communicators()[0].get());
  b->set_group(group->communicators()[1].get());
  const std::vector<float> theta = *InitialParameters(Spec());
  EXPECT_EQ(b->RunRound(theta, 10).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(b->Idle().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(a->Follow().status().code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace nightshift
