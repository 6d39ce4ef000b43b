#include "data/batch_plan.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "glog/logging.h"
#include "kernels/random.h"

namespace nightshift {

BatchPlan::BatchPlan(int64_t dataset_size, int64_t global_batch, uint64_t seed)
    : dataset_size_(dataset_size),
      global_batch_(global_batch),
      steps_per_epoch_((dataset_size + global_batch - 1) / global_batch),
      seed_(seed) {
  CHECK_GT(dataset_size, 0);
  CHECK_GT(global_batch, 0);
}

BatchPosition BatchPlan::Position(int64_t global_step) const {
  return {global_step / steps_per_epoch_, global_step % steps_per_epoch_};
}

int64_t BatchPlan::BatchSize(int64_t global_step) const {
  const int64_t start = Position(global_step).step_in_epoch * global_batch_;
  return std::min(global_batch_, dataset_size_ - start);
}

const std::vector<int64_t>& BatchPlan::Permutation(int64_t epoch) {
  if (epoch != cached_epoch_) {
    permutation_.resize(dataset_size_);
    std::iota(permutation_.begin(), permutation_.end(), 0);
    Rng rng({seed_, 0x5e1ec7, static_cast<uint64_t>(epoch)});
    for (int64_t i = dataset_size_ - 1; i > 0; --i) {
      std::swap(permutation_[i], permutation_[rng.Below(i + 1)]);
    }
    cached_epoch_ = epoch;
  }
  return permutation_;
}

std::vector<int64_t> BatchPlan::Indices(int64_t global_step, int64_t begin, int64_t end) {
  const BatchPosition pos = Position(global_step);
  CHECK_LE(0, begin);
  CHECK_LE(begin, end);
  CHECK_LE(end, BatchSize(global_step));
  const std::vector<int64_t>& perm = Permutation(pos.epoch);
  const int64_t base = pos.step_in_epoch * global_batch_;
  return std::vector<int64_t>(perm.begin() + base + begin, perm.begin() + base + end);
}

std::vector<std::pair<int64_t, int64_t>> SplitBatch(int64_t batch,
                                                    absl::Span<const double> weights) {
  const double total = std::accumulate(weights.begin(), weights.end(), 0.0);
  const size_t n = weights.size();
  std::vector<int64_t> counts(n);
  std::vector<std::pair<double, size_t>> remainders;
  int64_t assigned = 0;
  for (size_t i = 0; i < n; ++i) {
    const double exact = batch * weights[i] / total;
    counts[i] = static_cast<int64_t>(std::floor(exact));
    assigned += counts[i];
    remainders.push_back({exact - counts[i], i});
  }
  std::stable_sort(remainders.begin(), remainders.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  for (size_t k = 0; assigned < batch; ++k, ++assigned) {
    ++counts[remainders[k % n].second];
  }
  std::vector<std::pair<int64_t, int64_t>> slices;
  int64_t begin = 0;
  for (int64_t c : counts) {
    slices.push_back({begin, begin + c});
    begin += c;
  }
  return slices;
}

}  // namespace nightshift
