// Model: a sequential network built from a ModelSpec, with its loss.
//
// All parameters live in one flat float buffer and all gradients in another,
// in layer order; `parameters()` gives named views (`layers.0.weight`,
// `layers.0.bias`, numbered by the spec's layer index) and `flat_gradients()`
// the span the all-reduce works on. Parameters start from the job seed, so
// every worker that builds the same spec with the same seed starts equal.
//
// ComputeGradients runs forward, loss and backward on one batch and leaves
// the gradient of grad_scale × (summed loss) in the gradient buffer.
// Not thread-safe; oneDNN parallelizes inside each primitive.
#ifndef NIGHTSHIFT_KERNELS_MODEL_H_
#define NIGHTSHIFT_KERNELS_MODEL_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "kernels/layer.h"
#include "kernels/onednn_context.h"
#include "kernels/softmax_cross_entropy.h"
#include "kernels/tensor.h"
#include "nightshift/v1/job.pb.h"

namespace nightshift {

struct Parameter {
  std::string name;  // "layers.<i>.weight"
  Tensor value;      // view into the flat parameter buffer
  Tensor grad;       // view into the flat gradient buffer
};

class Model {
 public:
  // `input_shape` is one sample's shape, e.g. {1, 28, 28}. Fails with
  // INVALID_ARGUMENT naming `model.layers[i]` if a layer does not fit, or
  // if the output is not [classes].
  static absl::StatusOr<std::unique_ptr<Model>> Create(const v1::ModelSpec& spec,
                                                       const Shape& input_shape, uint64_t seed);

  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  const Shape& input_shape() const { return input_shape_; }
  int64_t num_classes() const { return num_classes_; }

  std::vector<Parameter>& parameters() { return parameters_; }
  const std::vector<Parameter>& parameters() const { return parameters_; }
  absl::Span<float> flat_parameters() { return params_.span(); }
  absl::Span<const float> flat_parameters() const { return params_.span(); }
  absl::Span<float> flat_gradients() { return grads_.span(); }
  int64_t num_parameters() const { return params_.size(); }
  // Moves the flat parameters and gradients into memory the caller
  // provides (num_parameters() floats each, outliving the model) — e.g.
  // memory the ranks of a group map from one another. Values are copied;
  // every view (and layer) follows.
  void MoveFlatBuffersTo(absl::Span<float> parameters, absl::Span<float> gradients);

  // Forward + loss + backward. `input` is [N, input_shape...] with N ≥ 0
  // (an empty slice leaves zero gradients).
  LossResult ComputeGradients(const Tensor& input, absl::Span<const int32_t> labels,
                              float grad_scale);
  // Forward + loss only.
  LossResult Evaluate(const Tensor& input, absl::Span<const int32_t> labels);
  // Forward only; returns the logits [N, classes], valid until the next call.
  const Tensor& Forward(const Tensor& input);

 private:
  Model() = default;

  Shape input_shape_;
  int64_t num_classes_ = 0;
  std::unique_ptr<OneDnnContext> context_;
  std::vector<std::unique_ptr<Layer>> layers_;
  std::vector<Parameter> parameters_;
  size_t first_trainable_layer_ = 0;
  Tensor params_, grads_;
  std::vector<Tensor> activations_;  // activations_[i] = output of layer i
  Tensor grad_a_, grad_b_, dlogits_;
  std::unique_ptr<SoftmaxCrossEntropy> loss_;
};

}  // namespace nightshift

#endif  // NIGHTSHIFT_KERNELS_MODEL_H_
