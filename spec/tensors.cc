#include "spec/tensors.h"

#include "absl/strings/str_cat.h"
#include "kernels/shape_inference.h"
#include "spec/defaults.h"

namespace nightshift {

absl::StatusOr<std::vector<TensorSpec>> ExpectedParameters(const v1::JobSpec& spec) {
  std::vector<TensorSpec> out;
  Shape shape = ExpectedDatasetShape(spec.dataset()).sample_shape;
  for (int i = 0; i < spec.model().layers_size(); ++i) {
    const v1::LayerSpec& layer = spec.model().layers(i);
    const std::string prefix = absl::StrCat("layers.", i, ".");
    if (layer.has_dense()) {
      if (shape.empty()) return absl::InvalidArgumentError(absl::StrCat(prefix, ": no input"));
      out.push_back({prefix + "weight", {layer.dense().units(), shape[0]}});
      if (!layer.dense().no_bias()) out.push_back({prefix + "bias", {layer.dense().units()}});
    } else if (layer.has_conv2d()) {
      if (shape.empty()) return absl::InvalidArgumentError(absl::StrCat(prefix, ": no input"));
      const v1::Conv2dLayer& c = layer.conv2d();
      out.push_back({prefix + "weight", {c.filters(), shape[0], c.kernel_size(), c.kernel_size()}});
      if (!c.no_bias()) out.push_back({prefix + "bias", {c.filters()}});
    }
    absl::StatusOr<Shape> next = InferOutputShape(layer, shape);
    if (!next.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("model.layers[", i, "]: ", next.status().message()));
    }
    shape = *next;
  }
  return out;
}

std::vector<std::string> OptimizerStateBuffers(const v1::OptimizerSpec& optimizer) {
  if (optimizer.has_adamw()) return {"exp_avg", "exp_avg_sq"};
  if (optimizer.has_sgd() && optimizer.sgd().momentum() != 0) return {"momentum_buffer"};
  return {};
}

absl::StatusOr<std::vector<TensorSpec>> ExpectedCheckpointTensors(const v1::JobSpec& spec,
                                                                  bool model_only) {
  absl::StatusOr<std::vector<TensorSpec>> params = ExpectedParameters(spec);
  if (!params.ok() || model_only) return params;
  std::vector<TensorSpec> out = *params;
  for (const std::string& buffer : OptimizerStateBuffers(spec.optimizer())) {
    for (const TensorSpec& p : *params) {
      out.push_back({absl::StrCat("optimizer.", buffer, ".", p.name), p.shape});
    }
  }
  return out;
}

}  // namespace nightshift
