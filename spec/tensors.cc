#include "spec/tensors.h"

#include <cmath>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "kernels/random.h"
#include "kernels/shape_inference.h"
#include "spec/defaults.h"

namespace nightshift {

absl::StatusOr<std::vector<TensorSpec>> ExpectedParameters(const v1::JobSpec& spec) {
  return ExpectedModelParameters(spec.model(), ExpectedDatasetShape(spec.dataset()).sample_shape);
}

absl::StatusOr<std::vector<TensorSpec>> ExpectedModelParameters(const v1::ModelSpec& model,
                                                                Shape shape) {
  std::vector<TensorSpec> out;
  for (int i = 0; i < model.layers_size(); ++i) {
    const v1::LayerSpec& layer = model.layers(i);
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

absl::StatusOr<std::vector<float>> InitialParameters(const v1::JobSpec& spec) {
  absl::StatusOr<std::vector<TensorSpec>> params = ExpectedParameters(spec);
  if (!params.ok()) return params.status();
  std::vector<float> out;
  // As kernels/model.cc draws them: one stream per parameter, seeded by
  // (job seed, 0x1417, layer index, 1-based parameter ordinal); weights
  // and biases both U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in the
  // weight's inputs per output.
  uint64_t ordinal = 0;
  int64_t fan_in = 1;
  for (const TensorSpec& p : *params) {
    const size_t dot = p.name.find('.', 7);  // "layers.I.weight"
    const uint64_t layer = std::stoull(p.name.substr(7, dot - 7));
    if (absl::EndsWith(p.name, ".weight")) {
      fan_in = 1;
      for (size_t d = 1; d < p.shape.size(); ++d) fan_in *= p.shape[d];
    }
    ++ordinal;
    const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
    Rng rng({spec.seed(), 0x1417, layer, ordinal});
    const int64_t n = NumElements(p.shape);
    for (int64_t k = 0; k < n; ++k) out.push_back(static_cast<float>(rng.Uniform(-bound, bound)));
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
