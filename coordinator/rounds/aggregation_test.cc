// Aggregation: each rule on hand-checked numbers, screening with its
// reasons, and the robust rules against poisoned minorities (sign-flipped,
// x100, "A Little Is Enough"-shifted) that move the plain mean.
#include "coordinator/rounds/aggregation.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace nightshift::coordinator::rounds {
namespace {

using testing::ElementsAre;
using testing::FloatNear;
using testing::HasSubstr;

ReplicaUpdate U(const std::string& name, std::vector<float> delta, int64_t samples = 1) {
  return {name, std::move(delta), samples};
}

AggregationOptions Rule(AggregationRule rule) {
  AggregationOptions o;
  o.rule = rule;
  o.max_norm_ratio = 0;  // screening off unless a test turns it on
  return o;
}

TEST(AggregationTest, EachRuleOnHandCheckedNumbers) {
  const std::vector<ReplicaUpdate> u = {U("a", {1, 10}, 1), U("b", {2, 20}, 1), U("c", {3, 30}, 2),
                                        U("d", {100, -40}, 1)};
  EXPECT_THAT(Aggregate(u, 2, Rule(AggregationRule::kMean))->delta,
              ElementsAre(FloatNear(21.8, 1e-4), FloatNear(10, 1e-4)))
      << "sample-weighted: (1+2+6+100)/5, (10+20+60-40)/5";
  EXPECT_THAT(Aggregate(u, 2, Rule(AggregationRule::kMedian))->delta, ElementsAre(2.5, 15));
  AggregationOptions trimmed = Rule(AggregationRule::kTrimmedMean);
  trimmed.trim_fraction = 0.25;  // one from each end of four
  EXPECT_THAT(Aggregate(u, 2, trimmed)->delta, ElementsAre(2.5, 15));
  const std::vector<ReplicaUpdate> odd = {U("a", {1}), U("b", {5}), U("c", {2})};
  EXPECT_THAT(Aggregate(odd, 1, Rule(AggregationRule::kMedian))->delta, ElementsAre(2));
  // Centered clipping with a radius no update exceeds is the plain mean
  // after enough iterations from the center.
  AggregationOptions clip = Rule(AggregationRule::kCenteredClip);
  clip.clip_radius = 1e6;
  clip.clip_iterations = 1;
  EXPECT_THAT(Aggregate(odd, 1, clip)->delta, ElementsAre(FloatNear(8.0 / 3, 1e-5)));
}

TEST(AggregationTest, ScreeningRefusesWithReasonsAndGoesOnWithTheRest) {
  AggregationOptions o = Rule(AggregationRule::kMean);
  o.max_norm_ratio = 10;
  const std::vector<ReplicaUpdate> u = {
      U("ok-1", {1, 1}), U("ok-2", {1, 2}),    U("ok-3", {2, 1}),    U("nan", {1, std::nanf("")}),
      U("short", {1}),   U("idle", {1, 1}, 0), U("huge", {300, 300})};
  const AggregationResult r = *Aggregate(u, 2, o);
  EXPECT_THAT(r.accepted, ElementsAre("ok-1", "ok-2", "ok-3"));
  ASSERT_EQ(r.refused.size(), 4u);
  EXPECT_EQ(r.refused[0].replica, "nan");
  EXPECT_EQ(r.refused[0].reason, "value 1 is nan");
  EXPECT_EQ(r.refused[1].reason, "1 values, the model has 2");
  EXPECT_EQ(r.refused[2].reason, "it saw no samples");
  EXPECT_THAT(r.refused[3].reason, HasSubstr("norm 424.3 is 189.7x the round's median 2.236"));
  EXPECT_THAT(r.delta, ElementsAre(FloatNear(4.0 / 3, 1e-5), FloatNear(4.0 / 3, 1e-5)));
  const auto none = Aggregate({U("nan", {std::nanf("")})}, 1, o);
  EXPECT_EQ(none.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(none.status().message(),
              HasSubstr("no update to aggregate (refused: nan: value 0 is nan)"));
  o.trim_fraction = 0.5;
  EXPECT_EQ(Aggregate(u, 2, o).status().code(), absl::StatusCode::kInvalidArgument);
}

// Pseudo-gradients of replicas are noisy — each one's noise as large as
// the signal they share — so a sign-flipped one hides among them by norm;
// it still points against the coordinate-wise median.
TEST(AggregationTest, ScreeningRefusesUpdatesThatPointAgainstTheMajority) {
  const size_t d = 256;
  std::mt19937 rng(3);
  std::normal_distribution<float> noise(0, 1.0f);
  std::vector<ReplicaUpdate> u;
  for (int r = 0; r < 10; ++r) {
    std::vector<float> x(d);
    for (size_t i = 0; i < d; ++i) x[i] = std::sin(static_cast<float>(i)) + noise(rng);
    if (r >= 8) {
      for (float& v : x) v = -v;
    }
    u.push_back(U((r >= 8 ? "flipped-" : "honest-") + std::to_string(r), x));
  }
  AggregationOptions o = Rule(AggregationRule::kCenteredClip);
  o.max_norm_ratio = 10;
  o.min_cosine = 0;
  const AggregationResult r = *Aggregate(u, d, o);
  EXPECT_EQ(r.accepted.size(), 8u);
  ASSERT_EQ(r.refused.size(), 2u);
  EXPECT_EQ(r.refused[0].replica, "flipped-8");
  EXPECT_THAT(r.refused[0].reason, HasSubstr("points against the round's majority: cosine -0."));
  EXPECT_THAT(r.refused[1].reason,
              HasSubstr("with the others' coordinate-wise median (at least 0)"));
  // Off at -1; and with fewer than 3 updates there is no majority to ask.
  o.min_cosine = -1;
  EXPECT_EQ(Aggregate(u, d, o)->accepted.size(), 10u);
  o.min_cosine = 0;
  EXPECT_EQ(Aggregate({u[0], u[9]}, d, o)->accepted.size(), 2u);
  o.min_cosine = 1.5;
  EXPECT_EQ(Aggregate(u, d, o).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(AggregationTest, TheRelativeDirectionScreenRefusesFlippedUpdatesOnlyAsFarAsTheHonestAgree) {
  // Honest i: g + b·e_i (a common direction g and a part of its own), so
  // every honest cosine with the others' median is the same c; flipped:
  // −(g + b·e_i), cosine −c. With b large, c is small: an absolute bar of
  // 0.2 refuses honest updates, the relative screen only the flipped.
  const size_t d = 64;
  auto update = [&](int i, double b, bool flipped) {
    std::vector<float> x(d, 1.0f);
    x[i] += static_cast<float>(b);
    if (flipped) {
      for (float& v : x) v = -v;
    }
    return U((flipped ? "flipped-" : "honest-") + std::to_string(i), x);
  };
  std::vector<ReplicaUpdate> u;
  for (int i = 0; i < 10; ++i) u.push_back(update(i, /*b=*/400, /*flipped=*/i >= 8));
  AggregationOptions o = Rule(AggregationRule::kCenteredClip);
  o.direction_mads = 3;
  const AggregationResult r = *Aggregate(u, d, o);
  EXPECT_EQ(r.accepted.size(), 8u);
  ASSERT_EQ(r.refused.size(), 2u);
  EXPECT_EQ(r.refused[0].replica, "flipped-8");
  EXPECT_THAT(r.refused[0].reason, HasSubstr("under 0 and under the round's median"));
  o.direction_mads = 0;
  o.min_cosine = 0.2;  // an absolute bar over the honest cosine c ≈ 0.145
  EXPECT_EQ(Aggregate(u, d, o).status().code(), absl::StatusCode::kFailedPrecondition);  // all
  // An update that agrees with the majority, however weakly, stays.
  std::vector<ReplicaUpdate> weak;
  for (int i = 0; i < 9; ++i) weak.push_back(update(i, /*b=*/0.1, false));
  weak.push_back(update(9, /*b=*/200, false));  // cosine ≈ 0.16, far under the others' ≈ 1
  o.min_cosine = -1;
  o.direction_mads = 3;
  EXPECT_EQ(Aggregate(weak, d, o)->accepted.size(), 10u);
  // Late in a job, with the honest updates nearly orthogonal, one round
  // cannot tell: the replica that flipped in every earlier round is
  // refused by its history, and the honest one whose update points
  // slightly against the others this time is not.
  std::vector<ReplicaUpdate> late;
  for (int i = 0; i < 10; ++i) {
    ReplicaUpdate x = update(i, /*b=*/400, /*flipped=*/i == 9 || i == 0);
    x.past_rounds = 10;
    x.past_cosine_sum = i == 9 ? -3 : 3;  // replica 0 honest until now
    late.push_back(x);
  }
  const AggregationResult by_history = *Aggregate(late, d, o);
  ASSERT_EQ(by_history.refused.size(), 1u);
  EXPECT_EQ(by_history.refused[0].replica, "flipped-9");
  EXPECT_THAT(by_history.refused[0].reason, HasSubstr("over its 11 rounds"));
  ASSERT_EQ(by_history.cosines.size(), 10u);  // for the next round's history
  EXPECT_NEAR(by_history.cosines[0].second, -0.145, 0.01);
  o.direction_mads = -1;
  EXPECT_EQ(Aggregate(u, d, o).status().code(), absl::StatusCode::kInvalidArgument);
}

// 10 honest replicas around a true delta, 2 poisoned ones (20%).
std::vector<ReplicaUpdate> Poisoned(const std::string& attack, std::vector<float>* truth) {
  const size_t d = 64;
  std::mt19937 rng(7);
  std::normal_distribution<float> noise(0, 0.1f);
  truth->assign(d, 0);
  for (size_t i = 0; i < d; ++i) (*truth)[i] = std::sin(static_cast<float>(i));
  std::vector<ReplicaUpdate> u;
  for (int r = 0; r < 10; ++r) {
    std::vector<float> x(d);
    for (size_t i = 0; i < d; ++i) x[i] = (*truth)[i] + noise(rng);
    u.push_back(U("honest-" + std::to_string(r), x));
  }
  for (int r = 0; r < 2; ++r) {
    std::vector<float> x(*truth);
    for (size_t i = 0; i < d; ++i) {
      if (attack == "sign") x[i] = -x[i];
      if (attack == "x100") x[i] *= 100;
      // A Little Is Enough (Baruch et al. 2019): every coordinate shifted
      // the same way, by ten times the honest spread here (so that it
      // moves the mean measurably), yet inside what screening accepts.
      if (attack == "alie") x[i] -= 1.0f;
    }
    u.push_back(U("poisoned-" + std::to_string(r), x, 1));
  }
  return u;
}

double Error(const std::vector<float>& got, const std::vector<float>& truth) {
  double sum = 0;
  for (size_t i = 0; i < got.size(); ++i) sum += (got[i] - truth[i]) * (got[i] - truth[i]);
  return std::sqrt(sum / got.size());
}

// The direction screen's cosines, against the definition computed the
// slow way (each update's own median of the others), for odd and even
// counts and columns with ties: bit for bit.
TEST(AggregationTest, DirectionCosinesAreEachUpdatesWithTheMedianOfTheOthers) {
  std::mt19937 rng(11);
  std::uniform_int_distribution<int> small(-3, 3);  // ties in every column
  std::normal_distribution<float> normal(0, 1);
  for (int n : {3, 4, 7, 10}) {
    std::vector<ReplicaUpdate> u;
    for (int k = 0; k < n; ++k) {
      std::vector<float> d(64);
      for (size_t i = 0; i < d.size(); ++i) {
        d[i] = i % 2 == 0 ? static_cast<float>(small(rng)) : normal(rng);
      }
      u.push_back(U("r" + std::to_string(k), d));
    }
    AggregationOptions o = Rule(AggregationRule::kMean);
    o.min_cosine = -0.99;
    absl::StatusOr<AggregationResult> r = Aggregate(u, 64, o);
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_EQ(r->cosines.size(), static_cast<size_t>(n));
    for (int k = 0; k < n; ++k) {
      std::vector<float> median(64);
      for (size_t i = 0; i < 64; ++i) {
        std::vector<float> others;
        for (int j = 0; j < n; ++j) {
          if (j != k) others.push_back(u[j].delta[i]);
        }
        std::sort(others.begin(), others.end());
        const size_t m = others.size();
        double sum = 0;
        for (size_t q = (m - 1) / 2; q < m / 2 + 1; ++q) sum += others[q];
        median[i] = static_cast<float>(sum / static_cast<double>(m / 2 + 1 - (m - 1) / 2));
      }
      double dot = 0, own = 0, med = 0;
      for (size_t i = 0; i < 64; ++i) {
        dot += static_cast<double>(u[k].delta[i]) * median[i];
        own += static_cast<double>(u[k].delta[i]) * u[k].delta[i];
        med += static_cast<double>(median[i]) * median[i];
      }
      EXPECT_EQ(r->cosines[k].first, u[k].replica);
      EXPECT_EQ(r->cosines[k].second, dot / (std::sqrt(own) * std::sqrt(med))) << n << " " << k;
    }
  }
}

TEST(AggregationTest, RobustRulesHoldAgainstAPoisonedFifthThatMovesTheMean) {
  for (const std::string attack : {"sign", "x100", "alie"}) {
    std::vector<float> truth;
    const std::vector<ReplicaUpdate> u = Poisoned(attack, &truth);
    const double mean =
        Error(Aggregate(u, truth.size(), Rule(AggregationRule::kMean))->delta, truth);
    AggregationOptions robust;  // the default: centered clipping, screening on
    const double clipped = Error(Aggregate(u, truth.size(), robust)->delta, truth);
    const double median =
        Error(Aggregate(u, truth.size(), Rule(AggregationRule::kMedian))->delta, truth);
    EXPECT_GT(mean, 0.15) << attack << ": the attack must move the plain mean";
    EXPECT_LT(clipped, 0.1) << attack << " (mean's error " << mean << ")";
    EXPECT_LT(median, 0.1) << attack;
  }
}

}  // namespace
}  // namespace nightshift::coordinator::rounds
