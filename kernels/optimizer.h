// Optimizers over the model's flat parameter and gradient buffers, with
// PyTorch's update rules so results can be compared one to one:
//   SGD:   g += wd·p; buf = μ·buf + g (buf = g on the first step);
//          g = nesterov ? g + μ·buf : buf (when μ > 0); p -= lr·g
//   AdamW: p *= 1 − lr·wd; m = β1·m + (1−β1)·g; v = β2·v + (1−β2)·g²;
//          p -= lr · (m / (1−β1^t)) / (sqrt(v / (1−β2^t)) + ε)
// State buffers are flat like the parameters, named for checkpoints
// ("momentum_buffer", "exp_avg", "exp_avg_sq"). An update may be applied
// in pieces — BeginStep() once, then Update() over disjoint ranges — so
// that ranks of a group can each update only the range they own (sharded
// optimizer step, worker/trainer.h); the state of a range is then current
// only where it was updated. Not thread-safe; the loops run on the OpenMP
// pool.
#ifndef NIGHTSHIFT_KERNELS_OPTIMIZER_H_
#define NIGHTSHIFT_KERNELS_OPTIMIZER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "kernels/tensor.h"
#include "nightshift/v1/job.pb.h"

namespace nightshift {

struct OptimizerState {
  std::string name;
  Tensor* buffer;  // flat, as long as the parameters
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  // One update with learning rate `lr` from gradient grad_scale × grads
  // (the trainer passes gradient sums and 1/batch, saving a pass over
  // them); grads and params are equally long.
  void Step(absl::Span<float> params, absl::Span<const float> grads, float lr,
            float grad_scale = 1.f) {
    BeginStep();
    Update(params, grads, lr, grad_scale, 0, static_cast<int64_t>(params.size()));
  }
  // The same update in pieces: BeginStep once per step, then Update on
  // elements [begin, end) of the full-length params and grads.
  void BeginStep() { ++steps_; }
  virtual void Update(absl::Span<float> params, absl::Span<const float> grads, float lr,
                      float grad_scale, int64_t begin, int64_t end) = 0;
  // The buffers a checkpoint must keep, in a fixed order.
  virtual std::vector<OptimizerState> State() = 0;
  // Updates applied so far (AdamW's t; SGD's first-step rule).
  int64_t steps() const { return steps_; }
  void set_steps(int64_t steps) { steps_ = steps; }

 protected:
  int64_t steps_ = 0;
};

// Builds the optimizer of `spec` for `num_parameters` floats. The learning
// rate in the spec is the schedule's base; Step takes the current one.
absl::StatusOr<std::unique_ptr<Optimizer>> MakeOptimizer(const v1::OptimizerSpec& spec,
                                                         int64_t num_parameters);

// The base learning rate of `spec`.
float BaseLearningRate(const v1::OptimizerSpec& spec);

}  // namespace nightshift

#endif  // NIGHTSHIFT_KERNELS_OPTIMIZER_H_
