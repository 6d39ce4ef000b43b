// SoftmaxCrossEntropy: the classification loss, log-softmax on oneDNN.
//
// Compute() takes logits [N, K] and labels in [0, K), returns the loss
// summed over the batch (not averaged: the all-reduce sums over ranks and
// the trainer divides by the global batch), the count of correct argmax
// predictions, and dL/dlogits multiplied by `grad_scale`. Pass
// grad_scale = 1 / global_batch to get the mean loss's gradient.
// Not thread-safe; primitives are cached per batch size.
#ifndef NIGHTSHIFT_KERNELS_SOFTMAX_CROSS_ENTROPY_H_
#define NIGHTSHIFT_KERNELS_SOFTMAX_CROSS_ENTROPY_H_

#include <cstdint>
#include <map>

#include "absl/types/span.h"
#include "kernels/onednn_context.h"
#include "kernels/tensor.h"

namespace nightshift {

struct LossResult {
  double loss_sum = 0;
  int64_t correct = 0;
};

class SoftmaxCrossEntropy {
 public:
  explicit SoftmaxCrossEntropy(OneDnnContext* context) : context_(context) {}

  // `dlogits` may be null (evaluation). Labels must be in range: the data
  // reader validates them.
  LossResult Compute(const Tensor& logits, absl::Span<const int32_t> labels, float grad_scale,
                     Tensor* dlogits);

 private:
  struct Primitives {
    dnnl::logsoftmax_forward forward;
    dnnl::memory src, dst;
  };
  Primitives& For(int64_t n, int64_t k);

  OneDnnContext* context_;
  Tensor log_probs_;
  std::map<std::pair<int64_t, int64_t>, Primitives> primitives_;
};

}  // namespace nightshift

#endif  // NIGHTSHIFT_KERNELS_SOFTMAX_CROSS_ENTROPY_H_
