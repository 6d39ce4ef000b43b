// The agent's round client against the coordinator's real RoundKeeper,
// in process, through a service that cuts calls on a schedule.
#include "worker/edge/round_client.h"

#include <functional>

#include "coordinator/rounds/round_keeper.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "spec/tensors.h"
#include "worker/edge/edge_test_spec.h"
#include "worker/edge/keeper_round_service.h"

namespace nightshift {
namespace {

using coordinator::rounds::RoundKeeper;
using coordinator::rounds::RoundSnapshot;
using testing::HasSubstr;

const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);

v1::JobSpec Spec() {
  return EdgeTestSpec(R"pb(
    global_batch_size: 16
    steps: 40
    min_workers: 2
    max_workers: 2
    sync { diloco { inner_steps: 10 rounds: 4 quorum: 2 over_selection: 0 } }
  )pb");
}

// The keeper's service (keeper_round_service.h) behind a link that fails
// every `cut_every`-th call (a dropped cellular link), optionally flips a
// byte of the fetched parameters, and runs `on_fetch` before each fetch.
class CutLink : public RoundService {
 public:
  CutLink(RoundKeeper* keeper, int cut_every)
      : keeper_(keeper), inner_(keeper, kNow), cut_every_(cut_every) {}
  absl::StatusOr<v1::RoundTicket> JoinRound(const v1::JoinRoundRequest& r) override {
    if (keeper_->done() && !evaluate_when_done) {
      v1::RoundTicket ended;
      ended.set_job_ended(true);
      return ended;
    }
    return inner_.JoinRound(r);
  }
  absl::StatusOr<v1::FetchParametersResponse> FetchParameters(
      const v1::FetchParametersRequest& r) override {
    if (on_fetch) on_fetch();
    if (Cut()) return absl::UnavailableError("link cut");
    absl::StatusOr<v1::FetchParametersResponse> out = inner_.FetchParameters(r);
    if (out.ok() && corrupt) (*out->mutable_data())[0] ^= 1;
    if (out.ok()) fetched += static_cast<int64_t>(out->data().size());
    return out;
  }
  absl::StatusOr<v1::PushUpdateResponse> PushUpdate(const v1::PushUpdateRequest& r) override {
    if (Cut()) return absl::UnavailableError("link cut");
    return inner_.PushUpdate(r);
  }
  int cuts = 0;
  int64_t fetched = 0;  // parameter bytes served
  bool corrupt = false;
  bool evaluate_when_done = false;  // as the coordinator asks one replica
  std::function<void()> on_fetch;

 private:
  bool Cut() {
    if (cut_every_ > 0 && ++calls_ % cut_every_ == 0) {
      ++cuts;
      return true;
    }
    return false;
  }
  RoundKeeper* keeper_;
  KeeperRoundService inner_;
  int cut_every_;
  int calls_ = 0;
};

std::unique_ptr<RoundKeeper> Keeper(const v1::JobSpec& spec) {
  RoundSnapshot start;
  start.parameters = *InitialParameters(spec);
  return *RoundKeeper::Create(spec, std::move(start), kNow);
}

TEST(RoundClientTest, TwoReplicasTrainEveryRoundOverALinkCutEveryThirdCall) {
  const v1::JobSpec spec = Spec();
  auto keeper = Keeper(spec);
  CutLink service(keeper.get(), 3);
  std::vector<std::unique_ptr<ReplicaTrainer>> trainers;
  std::vector<std::unique_ptr<RoundClient>> clients;
  for (int i = 0; i < 2; ++i) {
    const std::string name = "edge-" + std::to_string(i);
    trainers.push_back(*ReplicaTrainer::Create(spec, keeper->ShardFor(name)));
    clients.push_back(std::make_unique<RoundClient>(
        spec, &service, trainers.back().get(),
        RoundClientOptions{name, "job", /*chunk_bytes=*/100, /*max_attempts=*/5}));
  }
  const float before = *trainers[0]->TestAccuracy(keeper->parameters());
  int retried = 0;
  for (int round = 0; round < 4; ++round) {
    for (auto& client : clients) {
      absl::StatusOr<RoundOutcome> out = client->RunOnce();
      ASSERT_TRUE(out.ok()) << out.status();
      ASSERT_EQ(out->kind, RoundOutcome::kPushed) << out->reason;
      EXPECT_EQ(out->round, round);
      EXPECT_GT(out->bytes_fetched, 0);
      // The whole int8 update at least, more when a cut chunk was resent.
      EXPECT_GE(out->bytes_pushed,
                static_cast<int64_t>(collective::EncodedDeltaBytes(
                    collective::DeltaFormat::kInt8Blockwise, trainers[0]->num_parameters())));
      EXPECT_EQ(out->result.steps_done, 10);
      retried += out->retried;
    }
    EXPECT_EQ(keeper->round(), round + 1);
  }
  EXPECT_GT(service.cuts, 10);
  EXPECT_GT(retried, 10);  // every cut call was sent again
  EXPECT_TRUE(keeper->done());
  EXPECT_EQ(clients[0]->RunOnce()->kind, RoundOutcome::kJobEnded);
  const float after = *trainers[0]->TestAccuracy(keeper->parameters());
  EXPECT_GT(after, before + 0.2f) << before << " -> " << after;
  // Asked to evaluate the final parameters, a replica fetches and scores
  // them instead of training.
  service.evaluate_when_done = true;
  absl::StatusOr<RoundOutcome> evaluated = clients[1]->RunOnce();
  ASSERT_TRUE(evaluated.ok()) << evaluated.status();
  EXPECT_EQ(evaluated->kind, RoundOutcome::kEvaluated);
  EXPECT_EQ(evaluated->version, 4);
  EXPECT_FLOAT_EQ(evaluated->test_accuracy, after);
}

TEST(RoundClientTest, APreemptedReplicaWithdrawsAndFreesItsPlace) {
  const v1::JobSpec spec = Spec();
  auto keeper = Keeper(spec);
  CutLink service(keeper.get(), 0);
  auto trainer = *ReplicaTrainer::Create(spec, 0);
  RoundClient a(spec, &service, trainer.get(), {"a", "job"});
  RoundClient b(spec, &service, trainer.get(), {"b", "job"});
  RoundClient c(spec, &service, trainer.get(), {"c", "job"});
  std::atomic<bool> stop{false};
  service.on_fetch = [&] { stop.store(true); };  // ignition on before the first micro-batch
  absl::StatusOr<RoundOutcome> preempted = a.RunOnce(&stop);
  ASSERT_TRUE(preempted.ok()) << preempted.status();
  EXPECT_EQ(preempted->kind, RoundOutcome::kWithdrew);
  EXPECT_THAT(preempted->reason, HasSubstr("preempted after 0 of 10"));
  service.on_fetch = nullptr;
  // Two places (quorum 2, no over-selection): a's is free again, so b
  // and c both get one and close the round.
  EXPECT_EQ(b.RunOnce()->kind, RoundOutcome::kPushed);
  EXPECT_EQ(c.RunOnce()->kind, RoundOutcome::kPushed);
  EXPECT_EQ(keeper->round(), 1);
}

TEST(RoundClientTest, APreemptionMidFetchWithdrawsWithoutFetchingTheRest) {
  const v1::JobSpec spec = Spec();
  auto keeper = Keeper(spec);
  CutLink service(keeper.get(), 0);
  auto trainer = *ReplicaTrainer::Create(spec, 0);
  RoundClient a(spec, &service, trainer.get(), {"a", "job", /*chunk_bytes=*/100});
  std::atomic<bool> stop{false};
  int fetches = 0;
  service.on_fetch = [&] {
    if (++fetches == 2) stop.store(true);  // ignition on while the second chunk comes
  };
  absl::StatusOr<RoundOutcome> preempted = a.RunOnce(&stop);
  ASSERT_TRUE(preempted.ok()) << preempted.status();
  EXPECT_EQ(preempted->kind, RoundOutcome::kWithdrew);
  EXPECT_THAT(preempted->reason, HasSubstr("preempted after 200 of "));
  EXPECT_EQ(service.fetched, 200);  // not one chunk more
  EXPECT_EQ(trainer->inner_steps_taken(), 0);
  // Its place is free: two others close the round.
  RoundClient b(spec, &service, trainer.get(), {"b", "job"});
  RoundClient c(spec, &service, trainer.get(), {"c", "job"});
  EXPECT_EQ(b.RunOnce()->kind, RoundOutcome::kPushed);
  EXPECT_EQ(c.RunOnce()->kind, RoundOutcome::kPushed);
  EXPECT_EQ(keeper->round(), 1);
}

TEST(RoundClientTest, ParametersThatDoNotMatchTheTicketAreNeverTrainedOn) {
  const v1::JobSpec spec = Spec();
  auto keeper = Keeper(spec);
  CutLink service(keeper.get(), 0);
  service.corrupt = true;
  auto trainer = *ReplicaTrainer::Create(spec, 0);
  RoundClient client(spec, &service, trainer.get(), {"a", "job"});
  absl::StatusOr<RoundOutcome> out = client.RunOnce();
  EXPECT_EQ(out.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(out.status().message(), HasSubstr("SHA-256"));
  EXPECT_EQ(trainer->inner_steps_taken(), 0);
}

}  // namespace
}  // namespace nightshift
