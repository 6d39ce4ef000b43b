// Aggregation of a DiLoCo round's updates: each replica's delta (the
// change of its parameters over the round, collective/delta_codec.h
// decoded) into the one delta the outer optimizer applies.
//
// Screening first, every refusal with its reason (the round's history
// records them): a delta of the wrong length, with a NaN or infinity
// (the index is named), from a replica that saw no samples, or whose norm
// is more than `max_norm_ratio` times the median norm of the round's
// finite updates (a scaled or exploded update), or — with at least 3
// left — whose cosine similarity with the coordinate-wise median of the
// others is below `min_cosine` (an update that points against the
// majority: sign flipped, or trained on garbage; the median is the
// majority's direction, which a minority cannot turn), or — the relative
// screen, `direction_mads` > 0 — whose direction score is below 0 and
// more than direction_mads robust deviations (1.4826 × the median
// absolute deviation) under the round's median score. A replica's score
// is the mean of its cosines over every round it was screened in, this
// one included (ReplicaUpdate carries the earlier ones; the result gives
// this round's): late in a job the honest updates are nearly orthogonal
// and one round's cosine cannot tell a flipped update from an honest one,
// but a replica that flips every round stands out by its history, which
// the early rounds, where the updates agree, make clear. A score of 0 or
// above is never refused by it.
//
// Then one rule over the accepted deltas:
//   kMean           sample-weighted mean (FedAvg): Σ s_i x_i / Σ s_i
//   kTrimmedMean    per coordinate, the mean after dropping the
//                   floor(trim_fraction * n) largest and smallest values
//   kMedian         per coordinate median
//   kCenteredClip   centered clipping (Karimireddy, He & Jaggi, ICML
//                   2021): from v = `center` (the last round's aggregate;
//                   zeros if empty), `clip_iterations` times
//                   v <- v + (1/n) Σ (x_i - v) min(1, tau / |x_i - v|),
//                   tau = clip_radius, or when 0 the median of |x_i - v| at
//                   each iteration (the majority's spread sets it).
//                   The default when the edge pool is in the job: a
//                   minority of updates, however large or however shifted,
//                   moves v by at most tau times their share.
//
// Plain C++ (the coordinator links no oneDNN); pure functions.
#ifndef NIGHTSHIFT_COORDINATOR_ROUNDS_AGGREGATION_H_
#define NIGHTSHIFT_COORDINATOR_ROUNDS_AGGREGATION_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace nightshift::coordinator::rounds {

enum class AggregationRule { kMean, kTrimmedMean, kMedian, kCenteredClip };

const char* AggregationRuleName(AggregationRule rule);

struct ReplicaUpdate {
  std::string replica;  // names it in refusals
  std::vector<float> delta;
  int64_t samples = 0;  // seen in the round's inner steps
  // The relative direction screen: this replica's cosines in earlier rounds.
  double past_cosine_sum = 0;
  int past_rounds = 0;
};

struct AggregationOptions {
  AggregationRule rule = AggregationRule::kCenteredClip;
  double trim_fraction = 0.1;  // kTrimmedMean, in [0, 0.5)
  double clip_radius = 0;      // kCenteredClip; 0: the median distance
  int clip_iterations = 3;     // kCenteredClip, >= 1
  double max_norm_ratio = 10;  // screening; 0: off
  double min_cosine = -1;      // screening, in [-1, 1]; -1: off
  double direction_mads = 0;   // screening, >= 0; 0: off
};

struct Refusal {
  std::string replica;
  std::string reason;
};

struct AggregationResult {
  std::vector<float> delta;
  std::vector<std::string> accepted;
  std::vector<Refusal> refused;
  // Each direction-screened update's cosine with the others' median.
  std::vector<std::pair<std::string, double>> cosines;
};

// `size`: the model's parameter count. FAILED_PRECONDITION when no update
// passes screening (the message lists the refusals); INVALID_ARGUMENT for
// options out of range or a `center` of another size.
absl::StatusOr<AggregationResult> Aggregate(const std::vector<ReplicaUpdate>& updates, size_t size,
                                            const AggregationOptions& options,
                                            absl::Span<const float> center = {});

}  // namespace nightshift::coordinator::rounds

#endif  // NIGHTSHIFT_COORDINATOR_ROUNDS_AGGREGATION_H_
