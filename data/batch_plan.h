// BatchPlan: which samples form each step's global batch, and how a global
// batch splits over workers.
//
// Epoch e visits the training set in a permutation drawn from (seed, e) by
// a Fisher–Yates shuffle on Rng, so every worker computes the same order
// without talking. Step s of epoch e takes permutation positions
// [s·B, min((s+1)·B, N)): the last batch of an epoch may be smaller, as with
// PyTorch's DataLoader (drop_last = False). Global step g maps to
// (g / steps_per_epoch, g % steps_per_epoch).
//
// SplitBatch cuts a batch of B samples into contiguous slices proportional
// to per-worker weights (largest remainder, ties to the lower rank), so the
// slices of all ranks are disjoint and cover the batch exactly.
// Not thread-safe (it caches the current epoch's permutation).
#ifndef NIGHTSHIFT_DATA_BATCH_PLAN_H_
#define NIGHTSHIFT_DATA_BATCH_PLAN_H_

#include <cstdint>
#include <utility>
#include <vector>

#include "absl/types/span.h"

namespace nightshift {

struct BatchPosition {
  int64_t epoch;
  int64_t step_in_epoch;
};

class BatchPlan {
 public:
  BatchPlan(int64_t dataset_size, int64_t global_batch, uint64_t seed);

  int64_t steps_per_epoch() const { return steps_per_epoch_; }
  BatchPosition Position(int64_t global_step) const;
  // Samples in the global batch of `global_step`.
  int64_t BatchSize(int64_t global_step) const;
  // Dataset indices of positions [begin, end) of the step's global batch.
  std::vector<int64_t> Indices(int64_t global_step, int64_t begin, int64_t end);
  // The whole permutation of `epoch`.
  const std::vector<int64_t>& Permutation(int64_t epoch);

 private:
  int64_t dataset_size_, global_batch_, steps_per_epoch_;
  uint64_t seed_;
  int64_t cached_epoch_ = -1;
  std::vector<int64_t> permutation_;
};

// Slice [begin, end) of each rank; `weights` must be positive.
std::vector<std::pair<int64_t, int64_t>> SplitBatch(int64_t batch,
                                                    absl::Span<const double> weights);

}  // namespace nightshift

#endif  // NIGHTSHIFT_DATA_BATCH_PLAN_H_
