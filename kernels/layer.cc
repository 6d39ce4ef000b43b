#include "kernels/layer.h"

#include "kernels/layer_impls.h"

namespace nightshift {
absl::StatusOr<std::unique_ptr<Layer>> MakeLayer(const v1::LayerSpec& spec, const Shape& input,
                                                 OneDnnContext* context) {
  absl::StatusOr<Shape> output = InferOutputShape(spec, input);
  if (!output.ok()) return output.status();
  switch (spec.kind_case()) {
    case v1::LayerSpec::kDense:
      return internal::NewDenseLayer(spec.dense(), input, *output, context);
    case v1::LayerSpec::kRelu:
      return internal::NewReluLayer(input, context);
    case v1::LayerSpec::kFlatten:
      return internal::NewFlattenLayer(input, *output);
    case v1::LayerSpec::kConv2D:
      return internal::NewConv2dLayer(spec.conv2d(), input, *output, context);
    case v1::LayerSpec::kMaxPool2D:
      return internal::NewMaxPool2dLayer(spec.max_pool2d(), input, *output, context);
    case v1::LayerSpec::KIND_NOT_SET:
      break;
  }
  return absl::InvalidArgumentError("no layer kind set");
}

}  // namespace nightshift
