#include "data/replica_shards.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "kernels/random.h"

namespace nightshift {
namespace {

// Fisher–Yates with the project's own generator (portable across
// standard libraries, unlike std::shuffle).
void Shuffle(std::vector<int64_t>& v, Rng& rng) {
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng.Below(i)]);
}

// Gamma(alpha, 1): Marsaglia & Tsang (2000) for alpha >= 1; below 1,
// Gamma(alpha + 1) * U^(1 / alpha).
double Gamma(double alpha, Rng& rng) {
  if (alpha < 1) {
    double u = rng.Uniform();
    while (u <= 0) u = rng.Uniform();
    return Gamma(alpha + 1, rng) * std::pow(u, 1 / alpha);
  }
  const double d = alpha - 1.0 / 3, c = 1 / std::sqrt(9 * d);
  while (true) {
    double x, v;
    do {
      x = rng.Normal();
      v = 1 + c * x;
    } while (v <= 0);
    v = v * v * v;
    const double u = rng.Uniform();
    if (u < 1 - 0.0331 * x * x * x * x) return d * v;
    if (u > 0 && std::log(u) < 0.5 * x * x + d * (1 - v + std::log(v))) return d * v;
  }
}

}  // namespace

absl::StatusOr<std::vector<std::vector<int64_t>>> ReplicaShards(absl::Span<const int32_t> labels,
                                                                int num_classes, int count,
                                                                double alpha, uint64_t seed) {
  const int64_t n = static_cast<int64_t>(labels.size());
  if (count < 1) return absl::InvalidArgumentError("shards.count must be >= 1");
  if (count > n) {
    return absl::InvalidArgumentError(
        absl::StrCat("shards.count ", count, " is more than the ", n, " training samples"));
  }
  if (!(alpha >= 0) || std::isinf(alpha)) {
    return absl::InvalidArgumentError("shards.dirichlet_alpha must be >= 0 and finite");
  }
  std::vector<std::vector<int64_t>> shards(count);
  if (alpha == 0) {
    std::vector<int64_t> order(n);
    std::iota(order.begin(), order.end(), 0);
    Rng rng({seed, 0x5a4d});
    Shuffle(order, rng);
    for (int s = 0; s < count; ++s) {
      const int64_t begin = n * s / count, end = n * (s + 1) / count;
      shards[s].assign(order.begin() + begin, order.begin() + end);
    }
  } else {
    std::vector<std::vector<int64_t>> by_class(num_classes);
    for (int64_t i = 0; i < n; ++i) {
      if (labels[i] < 0 || labels[i] >= num_classes) {
        return absl::InvalidArgumentError(absl::StrCat("label ", labels[i], " of sample ", i,
                                                       " is outside [0, ", num_classes, ")"));
      }
      by_class[labels[i]].push_back(i);
    }
    for (int c = 0; c < num_classes; ++c) {
      Rng rng({seed, 0xd1c1, static_cast<uint64_t>(c)});
      Shuffle(by_class[c], rng);
      std::vector<double> p(count);
      double sum = 0;
      for (double& x : p) sum += x = Gamma(alpha, rng);
      const int64_t m = static_cast<int64_t>(by_class[c].size());
      double cumulative = 0;
      int64_t begin = 0;
      for (int s = 0; s < count; ++s) {
        cumulative += p[s];
        const int64_t end =
            s == count - 1 ? m
                           : std::min(m, static_cast<int64_t>(std::llround(m * cumulative / sum)));
        shards[s].insert(shards[s].end(), by_class[c].begin() + begin, by_class[c].begin() + end);
        begin = std::max(begin, end);
      }
    }
    for (auto& shard : shards) {
      if (!shard.empty()) continue;
      auto largest =
          std::max_element(shards.begin(), shards.end(),
                           [](const auto& a, const auto& b) { return a.size() < b.size(); });
      shard.push_back(largest->back());
      largest->pop_back();
    }
  }
  for (auto& shard : shards) std::sort(shard.begin(), shard.end());
  return shards;
}

}  // namespace nightshift
