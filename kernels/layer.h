// Layer: one step of a sequential model, forward and backward on oneDNN.
//
// A layer is built for a fixed per-sample input shape (no batch dimension)
// and creates its oneDNN primitives lazily, once per batch size, reusing
// them on every later call with that batch size. Parameters are not owned:
// the model allocates one flat buffer for all parameters and one for all
// gradients and binds views of them with `BindParams`, so the all-reduce
// sees every gradient as one contiguous span.
//
// Backward writes (not accumulates) parameter gradients: they hold the
// gradient of the loss the caller back-propagated, for this batch only.
// Not thread-safe; a layer belongs to one model used by one thread (oneDNN
// parallelizes inside each primitive).
#ifndef NIGHTSHIFT_KERNELS_LAYER_H_
#define NIGHTSHIFT_KERNELS_LAYER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/onednn_context.h"
#include "kernels/shape_inference.h"
#include "kernels/tensor.h"
#include "nightshift/v1/job.pb.h"

namespace nightshift {

// A parameter a layer declares: name suffix ("weight", "bias") and shape.
struct ParamSpec {
  std::string name;
  Shape shape;
  int64_t fan_in = 0;  // for initialization
};

class Layer {
 public:
  virtual ~Layer() = default;

  // Per-sample shapes (no batch dimension).
  virtual const Shape& input_shape() const = 0;
  virtual const Shape& output_shape() const = 0;
  // The parameters this layer needs, in binding order.
  virtual std::vector<ParamSpec> Params() const { return {}; }
  // `params[i]` and `grads[i]` are views shaped as Params()[i]; they must
  // outlive the layer.
  virtual void BindParams(std::vector<Tensor*> params, std::vector<Tensor*> grads) {}

  // in: [N, input_shape...]; out is resized to [N, output_shape...].
  virtual void Forward(const Tensor& in, Tensor* out) = 0;
  // Given the forward's in and out and dL/dout, sets parameter gradients and,
  // if `din` is not null, dL/din (resized to in's shape).
  virtual void Backward(const Tensor& in, const Tensor& out, const Tensor& dout, Tensor* din) = 0;
};

// Builds the oneDNN layer for `spec`. `context` must outlive the layer.
absl::StatusOr<std::unique_ptr<Layer>> MakeLayer(const v1::LayerSpec& spec, const Shape& input,
                                                 OneDnnContext* context);

}  // namespace nightshift

#endif  // NIGHTSHIFT_KERNELS_LAYER_H_
