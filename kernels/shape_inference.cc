#include "kernels/shape_inference.h"

#include "absl/strings/str_cat.h"

namespace nightshift {
namespace {

absl::Status Invalid(absl::string_view message) { return absl::InvalidArgumentError(message); }

absl::StatusOr<Shape> SpatialOutput(const Shape& input, int64_t channels_out, int64_t kernel,
                                    int64_t stride, int64_t padding, absl::string_view what) {
  if (input.size() != 3) {
    return Invalid(
        absl::StrCat(what, " needs [channels, height, width] input, got ", ShapeToString(input)));
  }
  const int64_t h = input[1] + 2 * padding - kernel;
  const int64_t w = input[2] + 2 * padding - kernel;
  if (h < 0 || w < 0) {
    return Invalid(absl::StrCat("kernel_size ", kernel, " is larger than the ", what, " input ",
                                ShapeToString(input), " with padding ", padding));
  }
  return Shape{channels_out, h / stride + 1, w / stride + 1};
}

}  // namespace

absl::StatusOr<Shape> InferOutputShape(const v1::LayerSpec& spec, const Shape& input) {
  switch (spec.kind_case()) {
    case v1::LayerSpec::kDense:
      if (spec.dense().units() <= 0) {
        return Invalid("units: must be > 0");
      }
      if (input.size() != 1) {
        return Invalid(absl::StrCat("input has shape ", ShapeToString(input),
                                    "; dense needs a flat input: add a "
                                    "flatten layer before it"));
      }
      return Shape{spec.dense().units()};
    case v1::LayerSpec::kRelu:
      return input;
    case v1::LayerSpec::kFlatten:
      return Shape{NumElements(input)};
    case v1::LayerSpec::kConv2D: {
      const v1::Conv2dLayer& c = spec.conv2d();
      if (c.filters() <= 0) return Invalid("filters: must be > 0");
      if (c.kernel_size() <= 0) return Invalid("kernel_size: must be > 0");
      if (c.stride() < 0) return Invalid("stride: must be >= 0");
      if (c.padding() < 0) return Invalid("padding: must be >= 0");
      return SpatialOutput(input, c.filters(), c.kernel_size(), c.stride() == 0 ? 1 : c.stride(),
                           c.padding(), "conv2d");
    }
    case v1::LayerSpec::kMaxPool2D: {
      const v1::MaxPool2dLayer& p = spec.max_pool2d();
      if (p.kernel_size() <= 0) return Invalid("kernel_size: must be > 0");
      if (p.stride() < 0) return Invalid("stride: must be >= 0");
      if (input.size() != 3) {
        return Invalid(absl::StrCat("max_pool2d needs [channels, height, width] input, got ",
                                    ShapeToString(input)));
      }
      return SpatialOutput(input, input[0], p.kernel_size(),
                           p.stride() == 0 ? p.kernel_size() : p.stride(), 0, "max_pool2d");
    }
    case v1::LayerSpec::KIND_NOT_SET:
      break;
  }
  return Invalid("no layer kind set (dense, relu, conv2d, max_pool2d, flatten)");
}

}  // namespace nightshift
