// OuterOptimizer: DiLoCo's outer step (Douillard et al. 2023), applied by
// the coordinator to the round's aggregated delta Δ (the mean change of
// the replicas' parameters; aggregation.h). The pseudo-gradient is
// g = −Δ; with momentum m (starting at zero):
//     m ← μ m + g
//     θ ← θ − lr (g + μ m)      Nesterov (the default)
//     θ ← θ − lr m              heavy ball
// lr = 1, μ = 0 is plain averaging (FedAvg): θ ← θ + Δ. OpenDiLoCo's
// defaults: lr 0.7, μ 0.9, Nesterov. The momentum is part of the job's
// state and is checkpointed with the outer parameters every round.
#ifndef NIGHTSHIFT_COORDINATOR_ROUNDS_OUTER_OPTIMIZER_H_
#define NIGHTSHIFT_COORDINATOR_ROUNDS_OUTER_OPTIMIZER_H_

#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"

namespace nightshift::coordinator::rounds {

struct OuterOptimizerOptions {
  double lr = 0.7;
  double momentum = 0.9;
  bool nesterov = true;
};

class OuterOptimizer {
 public:
  OuterOptimizer(size_t size, const OuterOptimizerOptions& options)
      : options_(options), momentum_(size, 0.0f) {}

  // θ ← the outer step with Δ; both must have the optimizer's size.
  absl::Status Apply(absl::Span<float> params, absl::Span<const float> delta);

  // For checkpoints: the momentum buffer, and setting it back.
  absl::Span<const float> momentum() const { return momentum_; }
  absl::Status RestoreMomentum(absl::Span<const float> m);

 private:
  const OuterOptimizerOptions options_;
  std::vector<float> momentum_;
};

}  // namespace nightshift::coordinator::rounds

#endif  // NIGHTSHIFT_COORDINATOR_ROUNDS_OUTER_OPTIMIZER_H_
