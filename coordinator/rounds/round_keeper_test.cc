// The round protocol of round_keeper.h, step by step, on a fixed clock.
#include "coordinator/rounds/round_keeper.h"

#include <cmath>
#include <limits>

#include "collective/delta_codec.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "security/tokens.h"

namespace nightshift::coordinator::rounds {
namespace {

using collective::DeltaFormat;
using collective::EncodeDelta;
using testing::ElementsAre;
using testing::HasSubstr;

const absl::Time kStart = absl::FromUnixSeconds(1'800'000'000);

// Plain averaging (outer lr 1, no momentum) so θ moves by the mean delta.
v1::JobSpec Spec(const std::string& extra = "") {
  v1::JobSpec spec;
  google::protobuf::TextFormat::ParseFromString(
      R"pb(
            steps: 30
            min_workers: 2
            max_workers: 4
            sync {
              diloco {
                inner_steps: 10
                outer_lr: 1
                outer_momentum: 0
                outer_nesterov: false
                aggregation: AGGREGATION_MEAN
                quorum: 2
                over_selection: 0.5
                round_deadline_seconds: 60
              }
            }
      )pb" +
          extra,
      &spec);
  return spec;
}

std::unique_ptr<RoundKeeper> Keeper(const v1::JobSpec& spec, std::vector<float> params) {
  RoundSnapshot start;
  start.parameters = std::move(params);
  return *RoundKeeper::Create(spec, std::move(start), kStart);
}

v1::PushUpdateRequest Push(int64_t round, int64_t base, const std::string& bytes,
                           int64_t samples = 10) {
  v1::PushUpdateRequest p;
  p.set_round(round);
  p.set_base_version(base);
  p.set_samples(samples);
  p.set_inner_steps_done(10);
  p.set_offset(0);
  p.set_data(bytes);
  p.set_total_bytes(static_cast<int64_t>(bytes.size()));
  return p;
}

TEST(RoundKeeperTest, SelectsQuorumTimesOverSelectionAndRejoinsIdempotently) {
  auto keeper = Keeper(Spec(), {1, 2, 3});
  EXPECT_EQ(keeper->total_rounds(), 3);                 // ceil(30 / 10)
  EXPECT_EQ(keeper->settings().selected_per_round, 3);  // ceil(2 * 1.5)
  for (const char* r : {"a", "b", "c"}) EXPECT_TRUE(keeper->Join(r, kStart).selected()) << r;
  const v1::RoundTicket fourth = keeper->Join("d", kStart);
  EXPECT_FALSE(fourth.selected());
  EXPECT_GT(fourth.retry_after_ms(), 0);
  EXPECT_THAT(fourth.reason(), HasSubstr("has its 3 replicas"));
  const v1::RoundTicket again = keeper->Join("a", kStart + absl::Seconds(10));
  EXPECT_TRUE(again.selected());
  EXPECT_EQ(again.round(), 0);
  EXPECT_EQ(again.inner_steps(), 10);
  EXPECT_EQ(again.deadline_ms(), 50'000);
  // A withdrawal frees a place for another replica.
  v1::PushUpdateRequest withdraw;
  withdraw.set_round(0);
  withdraw.set_inner_steps_done(2);
  ASSERT_TRUE(keeper->Push("b", withdraw)->complete());
  EXPECT_TRUE(keeper->Join("d", kStart).selected());
}

// With a join window the round closes once everyone who joined within it
// is in, long before its quorum; a replica that joined later does not
// hold it, and without a window the same pushes wait for the quorum.
TEST(RoundKeeperTest, AJoinWindowClosesTheRoundWhenEveryoneWhoJoinedInItIsIn) {
  auto spec = [](int join_window_seconds) {
    v1::JobSpec spec = Spec();
    v1::DiLoCoSync* d = spec.mutable_sync()->mutable_diloco();
    d->set_quorum(10);
    d->set_over_selection(0);
    d->set_join_window_seconds(join_window_seconds);
    return spec;
  };
  const std::string update = EncodeDelta(DeltaFormat::kFloat32, {1, 1});
  for (int window : {2, 0}) {
    auto keeper = Keeper(spec(window), {0, 0});
    EXPECT_TRUE(keeper->Join("a", kStart).selected());
    EXPECT_TRUE(keeper->Join("b", kStart + absl::Seconds(1)).selected());
    EXPECT_TRUE(keeper->Join("c", kStart + absl::Seconds(2)).selected());  // the window's end
    EXPECT_TRUE(keeper->Join("late", kStart + absl::Seconds(3)).selected());
    ASSERT_TRUE(keeper->Push("a", Push(0, 0, update))->accepted());
    ASSERT_TRUE(keeper->Push("b", Push(0, 0, update))->accepted());
    // c, still training, holds the round.
    EXPECT_FALSE(keeper->MaybeClose(kStart + absl::Seconds(4)).has_value()) << window;
    v1::PushUpdateRequest withdraw;  // preempted with too little done
    withdraw.set_round(0);
    withdraw.set_inner_steps_done(1);
    ASSERT_TRUE(keeper->Push("c", withdraw)->complete());
    std::optional<v1::RoundInfo> info = keeper->MaybeClose(kStart + absl::Seconds(5));
    if (window == 0) {
      EXPECT_FALSE(info.has_value()) << "2 updates of a quorum of 10, before the deadline";
      continue;
    }
    ASSERT_TRUE(info.has_value()) << "a and b pushed, c withdrew; late does not hold it";
    EXPECT_EQ(info->close_reason(), "joined pushed");
    EXPECT_THAT(info->accepted(), ElementsAre("a", "b"));
    // The late one's update lands in the next round, one version stale.
    const v1::PushUpdateResponse stale = *keeper->Push("late", Push(0, 0, update));
    EXPECT_TRUE(stale.accepted()) << stale.reason();
  }
  // Before the window is over nothing closes, even with every joiner in.
  auto keeper = Keeper(spec(2), {0, 0});
  keeper->Join("a", kStart);
  ASSERT_TRUE(keeper->Push("a", Push(0, 0, update))->accepted());
  EXPECT_FALSE(keeper->MaybeClose(kStart + absl::Seconds(1)).has_value());
  EXPECT_TRUE(keeper->MaybeClose(kStart + absl::Seconds(2)).has_value());

  // The window starts at the round's first selection, not at its opening
  // (a job's first round opens before any replica can join).
  auto late = Keeper(spec(2), {0, 0});
  EXPECT_TRUE(late->Join("a", kStart + absl::Seconds(10)).selected());
  EXPECT_TRUE(late->Join("b", kStart + absl::Seconds(11)).selected());
  EXPECT_TRUE(late->Join("c", kStart + absl::Seconds(13)).selected());
  ASSERT_TRUE(late->Push("a", Push(0, 0, update))->accepted());
  EXPECT_FALSE(late->MaybeClose(kStart + absl::Seconds(14)).has_value()) << "b holds it";
  ASSERT_TRUE(late->Push("b", Push(0, 0, update))->accepted());
  std::optional<v1::RoundInfo> closed = late->MaybeClose(kStart + absl::Seconds(14));
  ASSERT_TRUE(closed.has_value()) << "c joined after the window";
  EXPECT_THAT(closed->accepted(), ElementsAre("a", "b"));
}

TEST(RoundKeeperTest, FetchIsChunkedResumableAndMatchesTheTicketsDigest) {
  std::vector<float> params(1000);
  for (size_t i = 0; i < params.size(); ++i) params[i] = 0.001f * i;
  auto keeper = Keeper(Spec(), params);
  const v1::RoundTicket ticket = keeper->Join("a", kStart);
  std::string got;
  while (static_cast<int64_t>(got.size()) < ticket.parameter_bytes()) {
    v1::FetchParametersRequest f;
    f.set_version(ticket.base_version());
    f.set_offset(static_cast<int64_t>(got.size()));
    f.set_max_bytes(700);
    absl::StatusOr<v1::FetchParametersResponse> chunk = keeper->Fetch("a", f);
    ASSERT_TRUE(chunk.ok()) << chunk.status();
    EXPECT_LE(chunk->data().size(), 700u);
    got += chunk->data();
  }
  EXPECT_EQ(security::Sha256Hex(got), ticket.parameter_sha256());
  EXPECT_EQ(*collective::DecodeDelta(got, params.size()), params);
  v1::FetchParametersRequest old;
  old.set_version(7);
  EXPECT_THAT(keeper->Fetch("a", old).status().message(), HasSubstr("current version is 0"));
  v1::FetchParametersRequest past_end;
  past_end.set_offset(ticket.parameter_bytes() + 1);
  EXPECT_FALSE(keeper->Fetch("a", past_end).ok());
}

TEST(RoundKeeperTest, PushResumesAtTheReceivedLengthAfterACut) {
  auto keeper = Keeper(Spec(), std::vector<float>(100, 0));
  keeper->Join("a", kStart);
  const std::string bytes = EncodeDelta(DeltaFormat::kFloat32, std::vector<float>(100, 1.0f));
  v1::PushUpdateRequest first = Push(0, 0, bytes.substr(0, 150));
  first.set_total_bytes(static_cast<int64_t>(bytes.size()));
  EXPECT_EQ(keeper->Push("a", first)->next_offset(), 150);
  // The link was cut after the first chunk; the replica resends the second
  // from a wrong guess and is told where to go on.
  v1::PushUpdateRequest wrong = first;
  wrong.set_offset(300);
  wrong.set_data(bytes.substr(300));
  EXPECT_EQ(keeper->Push("a", wrong)->next_offset(), 150);
  EXPECT_FALSE(keeper->Push("a", wrong)->complete());
  v1::PushUpdateRequest rest = first;
  rest.set_offset(150);
  rest.set_data(bytes.substr(150));
  const v1::PushUpdateResponse done = *keeper->Push("a", rest);
  EXPECT_TRUE(done.complete());
  EXPECT_TRUE(done.accepted()) << done.reason();
}

TEST(RoundKeeperTest, QuorumClosesTheRoundWithTheMeanAndPublishesTheNextVersion) {
  auto keeper = Keeper(Spec(), {1, 1});
  keeper->Join("a", kStart);
  keeper->Join("b", kStart);
  ASSERT_TRUE(
      keeper->Push("a", Push(0, 0, EncodeDelta(DeltaFormat::kFloat32, {2, 0}), 30))->accepted());
  EXPECT_FALSE(keeper->MaybeClose(kStart + absl::Seconds(1)).has_value());  // 1 of 2
  ASSERT_TRUE(
      keeper->Push("b", Push(0, 0, EncodeDelta(DeltaFormat::kFloat32, {0, 4}), 10))->accepted());
  std::optional<v1::RoundInfo> info = keeper->MaybeClose(kStart + absl::Seconds(2));
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->close_reason(), "quorum");
  EXPECT_THAT(info->accepted(), ElementsAre("a", "b"));
  EXPECT_EQ(info->samples(), 40);
  EXPECT_GT(info->bytes_in(), 0);
  // Sample-weighted: (30 * [2, 0] + 10 * [0, 4]) / 40 = [1.5, 1].
  EXPECT_THAT(keeper->parameters(), ElementsAre(2.5f, 2.0f));
  EXPECT_EQ(keeper->round(), 1);
  const v1::RoundTicket next = keeper->Join("a", kStart + absl::Seconds(3));
  EXPECT_TRUE(next.selected());
  EXPECT_EQ(next.base_version(), 1);
}

TEST(RoundKeeperTest, StaleUpdatesAreDownWeightedOrRefusedByTheDocumentedRule) {
  auto keeper = Keeper(Spec(), {0});
  keeper->Join("a", kStart);
  keeper->Join("b", kStart);
  keeper->Join("late", kStart);
  keeper->Join("later", kStart);
  keeper->Push("a", Push(0, 0, EncodeDelta(DeltaFormat::kFloat32, {1}), 10));
  keeper->Push("b", Push(0, 0, EncodeDelta(DeltaFormat::kFloat32, {1}), 10));
  ASSERT_TRUE(keeper->MaybeClose(kStart).has_value());  // θ = 1, version 1
  // Round 1: "late" trained on version 0 (staleness 1): weight 1/2.
  keeper->Join("a", kStart);
  keeper->Push("a", Push(1, 1, EncodeDelta(DeltaFormat::kFloat32, {3}), 10));
  const v1::PushUpdateResponse late =
      *keeper->Push("late", Push(0, 0, EncodeDelta(DeltaFormat::kFloat32, {0}), 10));
  EXPECT_TRUE(late.accepted()) << late.reason();
  // Its stale update is its part of round 1: it does not train round 1 again.
  const v1::RoundTicket again = keeper->Join("late", kStart);
  EXPECT_FALSE(again.selected());
  EXPECT_THAT(again.reason(), HasSubstr("already pushed to round 1"));
  ASSERT_TRUE(keeper->MaybeClose(kStart).has_value());
  // (10 * 3 + 5 * 0) / 15 = 2.
  EXPECT_THAT(keeper->parameters(), ElementsAre(3.0f));
  // Round 2: an update from version 0 is two rounds old: refused.
  const v1::PushUpdateResponse later =
      *keeper->Push("later", Push(0, 0, EncodeDelta(DeltaFormat::kFloat32, {5}), 10));
  EXPECT_FALSE(later.accepted());
  EXPECT_THAT(later.reason(), HasSubstr("stale: base version 0 is 2 rounds old (at most 1)"));
}

TEST(RoundKeeperTest, DeadlineClosesWithWhatArrivedOrReopens) {
  auto keeper = Keeper(Spec(), {0, 0});
  keeper->Join("a", kStart);
  EXPECT_FALSE(keeper->MaybeClose(kStart + absl::Seconds(61)).has_value());  // none: reopens
  EXPECT_EQ(keeper->Join("a", kStart + absl::Seconds(61)).deadline_ms(), 60'000);
  keeper->Push("a", Push(0, 0, EncodeDelta(DeltaFormat::kFloat32, {1, 1})));
  std::optional<v1::RoundInfo> info = keeper->MaybeClose(kStart + absl::Seconds(122));
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->close_reason(), "deadline");
}

TEST(RoundKeeperTest, BrokenAndPoisonedUpdatesAreRefusedWithTheirReason) {
  auto keeper = Keeper(Spec(), {0, 0});
  keeper->Join("a", kStart);
  keeper->Join("b", kStart);
  keeper->Join("c", kStart);
  std::string truncated = EncodeDelta(DeltaFormat::kFloat32, {1, 1});
  truncated.resize(truncated.size() - 1);
  const v1::PushUpdateResponse broken = *keeper->Push("a", Push(0, 0, truncated));
  EXPECT_FALSE(broken.accepted());
  EXPECT_THAT(broken.reason(), HasSubstr("byte"));
  const float nan = std::numeric_limits<float>::quiet_NaN();
  EXPECT_TRUE(keeper->Push("b", Push(0, 0, EncodeDelta(DeltaFormat::kFloat32, {nan, 1})))
                  ->accepted());  // screened at close
  keeper->Push("c", Push(0, 0, EncodeDelta(DeltaFormat::kFloat32, {1, 1})));
  std::optional<v1::RoundInfo> info = keeper->MaybeClose(kStart);
  ASSERT_TRUE(info.has_value());
  EXPECT_THAT(info->accepted(), ElementsAre("c"));
  ASSERT_EQ(info->refused_size(), 2);
  EXPECT_EQ(info->refused(0).replica(), "a");
  EXPECT_EQ(info->refused(1).replica(), "b");
  EXPECT_THAT(info->refused(1).reason(), HasSubstr("value 0 is nan"));
  EXPECT_THAT(keeper->parameters(), ElementsAre(1.0f, 1.0f));
  // Too large to be an update of this model: refused before it is held.
  v1::PushUpdateRequest huge = Push(1, 1, "x");
  huge.set_total_bytes(1 << 30);
  EXPECT_THAT(keeper->Push("c", huge).status().message(), HasSubstr("total_bytes"));
}

TEST(RoundKeeperTest, EndsAfterItsRoundsAndResumesFromASnapshot) {
  auto keeper = Keeper(Spec(), {0});
  for (int r = 0; r < 3; ++r) {
    keeper->Join("a", kStart);
    keeper->Join("b", kStart);
    keeper->Push("a", Push(r, r, EncodeDelta(DeltaFormat::kFloat32, {1})));
    keeper->Push("b", Push(r, r, EncodeDelta(DeltaFormat::kFloat32, {1})));
    ASSERT_TRUE(keeper->MaybeClose(kStart).has_value()) << r;
    if (r == 0) {
      EXPECT_EQ(keeper->ShardFor("a"), 0);
      EXPECT_EQ(keeper->ShardFor("b"), 1);
      EXPECT_EQ(keeper->ShardFor("a"), 0);  // sticky
      // A restarted coordinator goes on from the snapshot.
      keeper = *RoundKeeper::Create(Spec(), keeper->Snapshot(), kStart);
      EXPECT_EQ(keeper->round(), 1);
      EXPECT_EQ(keeper->ShardFor("b"), 1);
      EXPECT_EQ(keeper->ShardFor("c"), 2);
    }
  }
  EXPECT_TRUE(keeper->done());
  EXPECT_THAT(keeper->parameters(), ElementsAre(3.0f));
  EXPECT_TRUE(keeper->Join("a", kStart).job_ended());
  // The final parameters stay fetchable for their evaluation.
  const v1::RoundTicket eval = keeper->EvaluationTicket();
  EXPECT_TRUE(eval.evaluate());
  EXPECT_EQ(eval.base_version(), 3);
  v1::FetchParametersRequest fetch;
  fetch.set_version(3);
  absl::StatusOr<v1::FetchParametersResponse> got = keeper->Fetch("a", fetch);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->total_bytes(), eval.parameter_bytes());
  EXPECT_EQ(security::Sha256Hex(got->data()), eval.parameter_sha256());
}

}  // namespace
}  // namespace nightshift::coordinator::rounds
