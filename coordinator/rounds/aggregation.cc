#include "coordinator/rounds/aggregation.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace nightshift::coordinator::rounds {
namespace {

double Norm(absl::Span<const float> x) {
  double sum = 0;
  for (float v : x) sum += static_cast<double>(v) * v;
  return std::sqrt(sum);
}

double Distance(absl::Span<const float> x, absl::Span<const float> y) {
  double sum = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double d = static_cast<double>(x[i]) - y[i];
    sum += d * d;
  }
  return std::sqrt(sum);
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

std::vector<float> WeightedMean(const std::vector<const ReplicaUpdate*>& in, size_t size) {
  std::vector<double> sum(size, 0);
  double weight = 0;
  for (const ReplicaUpdate* u : in) {
    const double w = static_cast<double>(u->samples);
    weight += w;
    for (size_t i = 0; i < size; ++i) sum[i] += w * u->delta[i];
  }
  std::vector<float> out(size);
  for (size_t i = 0; i < size; ++i) out[i] = static_cast<float>(sum[i] / weight);
  return out;
}

// Per coordinate, the mean of the values left after dropping `trim` from
// each end of their order (trim 0: the mean; the middle one or two: the
// median).
std::vector<float> OrderStatistic(const std::vector<const ReplicaUpdate*>& in, size_t size,
                                  bool median, size_t trim) {
  const size_t n = in.size();
  std::vector<float> column(n), out(size);
  for (size_t i = 0; i < size; ++i) {
    for (size_t r = 0; r < n; ++r) column[r] = in[r]->delta[i];
    std::sort(column.begin(), column.end());
    size_t lo = trim, hi = n - trim;  // [lo, hi)
    if (median) {
      lo = (n - 1) / 2;
      hi = n / 2 + 1;
    }
    double sum = 0;
    for (size_t r = lo; r < hi; ++r) sum += column[r];
    out[i] = static_cast<float>(sum / static_cast<double>(hi - lo));
  }
  return out;
}

// For each update k, its cosine with the coordinate-wise median of the
// others. One sort per coordinate serves every k: with the column sorted,
// the median of the others when k's value (at sorted position j) is left
// out is the value at rank r of the rest, which is the column's r if r < j
// and r + 1 otherwise. O(size · n log n), not n times that; the same
// values, summed in the same order, as OrderStatistic on the others.
std::vector<double> LeaveOneOutMedianCosines(const std::vector<const ReplicaUpdate*>& in,
                                             const std::vector<double>& norms, size_t size) {
  const size_t n = in.size();
  const size_t m = n - 1;                         // the others
  const size_t lo = (m - 1) / 2, hi = m / 2 + 1;  // their median's ranks [lo, hi)
  std::vector<double> dot(n, 0.0), median_sq(n, 0.0);
  std::vector<std::pair<float, size_t>> column(n);
  for (size_t i = 0; i < size; ++i) {
    for (size_t r = 0; r < n; ++r) column[r] = {in[r]->delta[i], r};
    std::sort(column.begin(), column.end());
    for (size_t j = 0; j < n; ++j) {
      double sum = 0;
      for (size_t r = lo; r < hi; ++r) sum += column[r < j ? r : r + 1].first;
      const float median = static_cast<float>(sum / static_cast<double>(hi - lo));
      const size_t k = column[j].second;
      dot[k] += static_cast<double>(in[k]->delta[i]) * median;
      median_sq[k] += static_cast<double>(median) * median;
    }
  }
  std::vector<double> cosines(n);
  for (size_t k = 0; k < n; ++k) {
    const double median_norm = std::sqrt(median_sq[k]);
    cosines[k] = norms[k] > 0 && median_norm > 0 ? dot[k] / (norms[k] * median_norm) : 0;
  }
  return cosines;
}

std::vector<float> CenteredClip(const std::vector<const ReplicaUpdate*>& in, size_t size,
                                absl::Span<const float> center, double radius, int iterations) {
  std::vector<float> v(size, 0.0f);
  if (!center.empty()) v.assign(center.begin(), center.end());
  const double n = static_cast<double>(in.size());
  std::vector<double> step(size), distances(in.size());
  for (int it = 0; it < iterations; ++it) {
    for (size_t r = 0; r < in.size(); ++r) distances[r] = Distance(in[r]->delta, v);
    // The honest majority's distance: a minority cannot set it.
    const double tau = radius > 0 ? radius : Median(distances);
    std::fill(step.begin(), step.end(), 0.0);
    for (size_t r = 0; r < in.size(); ++r) {
      const ReplicaUpdate* u = in[r];
      const double d = distances[r];
      const double scale = d > tau && d > 0 ? tau / d : 1.0;
      for (size_t i = 0; i < size; ++i) step[i] += scale * (u->delta[i] - v[i]);
    }
    for (size_t i = 0; i < size; ++i) v[i] = static_cast<float>(v[i] + step[i] / n);
  }
  return v;
}

}  // namespace

const char* AggregationRuleName(AggregationRule rule) {
  switch (rule) {
    case AggregationRule::kMean:
      return "mean";
    case AggregationRule::kTrimmedMean:
      return "trimmed mean";
    case AggregationRule::kMedian:
      return "median";
    case AggregationRule::kCenteredClip:
      return "centered clipping";
  }
  return "?";
}

absl::StatusOr<AggregationResult> Aggregate(const std::vector<ReplicaUpdate>& updates, size_t size,
                                            const AggregationOptions& options,
                                            absl::Span<const float> center) {
  if (!(options.trim_fraction >= 0 && options.trim_fraction < 0.5)) {
    return absl::InvalidArgumentError(
        absl::StrCat("trim_fraction must be in [0, 0.5), not ", options.trim_fraction));
  }
  if (options.clip_iterations < 1 || options.clip_radius < 0 || options.max_norm_ratio < 0 ||
      !(options.min_cosine >= -1 && options.min_cosine <= 1) || !(options.direction_mads >= 0)) {
    return absl::InvalidArgumentError(
        "clip_iterations must be >= 1, clip_radius, max_norm_ratio and direction_mads >= 0, "
        "min_cosine in [-1, 1]");
  }
  if (!center.empty() && center.size() != size) {
    return absl::InvalidArgumentError(
        absl::StrCat("center has ", center.size(), " values, the model ", size));
  }
  AggregationResult result;
  // Screening: shape, samples, finiteness, then the norm against the median.
  std::vector<const ReplicaUpdate*> finite;
  std::vector<double> norms;
  for (const ReplicaUpdate& u : updates) {
    std::string why;
    if (u.delta.size() != size) {
      why = absl::StrCat(u.delta.size(), " values, the model has ", size);
    } else if (u.samples <= 0) {
      why = "it saw no samples";
    } else {
      for (size_t i = 0; i < size; ++i) {
        if (!std::isfinite(u.delta[i])) {
          why = absl::StrCat("value ", i, " is ", u.delta[i]);
          break;
        }
      }
    }
    if (!why.empty()) {
      result.refused.push_back({u.replica, why});
      continue;
    }
    finite.push_back(&u);
    norms.push_back(Norm(u.delta));
  }
  std::vector<const ReplicaUpdate*> sized;
  std::vector<double> sized_norms;  // Norm(sized[k]->delta), computed once above
  const double median_norm = norms.empty() ? 0 : Median(norms);
  for (size_t k = 0; k < finite.size(); ++k) {
    if (options.max_norm_ratio > 0 && median_norm > 0 &&
        norms[k] > options.max_norm_ratio * median_norm) {
      result.refused.push_back(
          {finite[k]->replica,
           absl::StrFormat("norm %.4g is %.1fx the round's median %.4g (limit %gx)", norms[k],
                           norms[k] / median_norm, median_norm, options.max_norm_ratio)});
      continue;
    }
    sized.push_back(finite[k]);
    sized_norms.push_back(norms[k]);
  }
  // The direction screen: each update's cosine with the majority's
  // direction without it (each update is a part of the median of all,
  // which would tilt it toward the update — much so when the replicas'
  // updates are nearly orthogonal).
  const bool absolute = options.min_cosine > -1;
  const bool relative = options.direction_mads > 0;
  std::vector<double> cosines;
  if ((absolute || relative) && sized.size() >= 3) {
    cosines = LeaveOneOutMedianCosines(sized, sized_norms, size);
  }
  // The relative screen's scores: each replica's mean cosine over its rounds.
  std::vector<double> scores;
  double bar = -2;  // under every score: refuses nothing
  double median_score = 0, deviation = 0;
  for (size_t k = 0; k < cosines.size(); ++k) {
    result.cosines.push_back({sized[k]->replica, cosines[k]});
    scores.push_back((sized[k]->past_cosine_sum + cosines[k]) / (sized[k]->past_rounds + 1));
  }
  if (relative && !scores.empty()) {
    median_score = Median(scores);
    std::vector<double> deviations;
    for (double c : scores) deviations.push_back(std::abs(c - median_score));
    deviation = 1.4826 * Median(deviations);
    bar = std::min(0.0, median_score - options.direction_mads * deviation);
  }
  std::vector<const ReplicaUpdate*> accepted;
  for (size_t k = 0; k < sized.size(); ++k) {
    const ReplicaUpdate* u = sized[k];
    if (!cosines.empty() && absolute && cosines[k] < options.min_cosine) {
      result.refused.push_back(
          {u->replica, absl::StrFormat("points against the round's majority: cosine %.3f with "
                                       "the others' coordinate-wise median (at least %g)",
                                       cosines[k], options.min_cosine)});
      continue;
    }
    if (!scores.empty() && scores[k] < bar) {
      result.refused.push_back(
          {u->replica,
           absl::StrFormat("points against the majority: mean cosine %.3f with the others' "
                           "coordinate-wise median over its %d rounds (this one %.3f), under 0 "
                           "and under the round's median %.3f less %g x its deviation %.3f",
                           scores[k], u->past_rounds + 1, cosines[k], median_score,
                           options.direction_mads, deviation)});
      continue;
    }
    accepted.push_back(u);
    result.accepted.push_back(u->replica);
  }
  if (accepted.empty()) {
    std::vector<std::string> reasons;
    for (const Refusal& r : result.refused) reasons.push_back(r.replica + ": " + r.reason);
    return absl::FailedPreconditionError(
        absl::StrCat("no update to aggregate",
                     reasons.empty() ? "" : " (refused: " + absl::StrJoin(reasons, "; ") + ")"));
  }
  switch (options.rule) {
    case AggregationRule::kMean:
      result.delta = WeightedMean(accepted, size);
      break;
    case AggregationRule::kTrimmedMean:
      result.delta =
          OrderStatistic(accepted, size, /*median=*/false,
                         static_cast<size_t>(std::floor(options.trim_fraction *
                                                        static_cast<double>(accepted.size()))));
      break;
    case AggregationRule::kMedian:
      result.delta = OrderStatistic(accepted, size, /*median=*/true, 0);
      break;
    case AggregationRule::kCenteredClip:
      result.delta =
          CenteredClip(accepted, size, center, options.clip_radius, options.clip_iterations);
      break;
  }
  return result;
}

}  // namespace nightshift::coordinator::rounds
