#include "kernels/model.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "kernels/random.h"

namespace nightshift {

absl::StatusOr<std::unique_ptr<Model>> Model::Create(const v1::ModelSpec& spec,
                                                     const Shape& input_shape, uint64_t seed) {
  std::unique_ptr<Model> model(new Model());
  model->input_shape_ = input_shape;
  model->context_ = std::make_unique<OneDnnContext>();
  if (spec.layers_size() == 0) {
    return absl::InvalidArgumentError("model.layers: must not be empty");
  }
  Shape shape = input_shape;
  std::vector<std::vector<ParamSpec>> layer_params;
  int64_t total = 0;
  for (int i = 0; i < spec.layers_size(); ++i) {
    auto layer = MakeLayer(spec.layers(i), shape, model->context_.get());
    if (!layer.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("model.layers[", i, "]: ", layer.status().message()));
    }
    shape = (*layer)->output_shape();
    layer_params.push_back((*layer)->Params());
    for (const ParamSpec& p : layer_params.back()) total += NumElements(p.shape);
    model->layers_.push_back(*std::move(layer));
  }
  if (shape.size() != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("model.layers: the last layer's output must be [classes], got ",
                     ShapeToString(shape), "; end with a dense layer"));
  }
  model->num_classes_ = shape[0];

  // One flat buffer each for parameters and gradients, in layer order.
  model->params_ = Tensor({total});
  model->grads_ = Tensor({total});
  int64_t offset = 0;
  for (size_t i = 0; i < model->layers_.size(); ++i) {
    for (const ParamSpec& p : layer_params[i]) {
      model->parameters_.push_back({absl::StrCat("layers.", i, ".", p.name),
                                    Tensor::View(p.shape, model->params_.data() + offset),
                                    Tensor::View(p.shape, model->grads_.data() + offset)});
      offset += NumElements(p.shape);
    }
  }
  // Bind after all views exist (the vector no longer reallocates).
  size_t next = 0;
  for (size_t i = 0; i < model->layers_.size(); ++i) {
    std::vector<Tensor*> values, grads;
    for (size_t j = 0; j < layer_params[i].size(); ++j, ++next) {
      values.push_back(&model->parameters_[next].value);
      grads.push_back(&model->parameters_[next].grad);
    }
    model->layers_[i]->BindParams(values, grads);
  }

  // PyTorch's default init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights
  // (Kaiming-uniform, a = sqrt(5)) and biases, one stream per parameter.
  next = 0;
  for (size_t i = 0; i < model->layers_.size(); ++i) {
    for (const ParamSpec& p : layer_params[i]) {
      Parameter& param = model->parameters_[next++];
      const double bound = 1.0 / std::sqrt(static_cast<double>(p.fan_in));
      Rng rng({seed, 0x1417, i, next});
      for (float& v : param.value.span()) {
        v = static_cast<float>(rng.Uniform(-bound, bound));
      }
    }
  }
  model->first_trainable_layer_ = model->layers_.size();
  for (size_t i = 0; i < model->layers_.size(); ++i) {
    if (!layer_params[i].empty()) {
      model->first_trainable_layer_ = i;
      break;
    }
  }
  model->activations_.resize(model->layers_.size());
  model->loss_ = std::make_unique<SoftmaxCrossEntropy>(model->context_.get());
  return model;
}

void Model::MoveFlatBuffersTo(absl::Span<float> parameters, absl::Span<float> gradients) {
  CHECK_EQ(static_cast<int64_t>(parameters.size()), num_parameters());
  CHECK_EQ(static_cast<int64_t>(gradients.size()), num_parameters());
  std::copy(params_.span().begin(), params_.span().end(), parameters.begin());
  std::copy(grads_.span().begin(), grads_.span().end(), gradients.begin());
  // The layers hold pointers to the Parameter views: repoint them in place.
  for (Parameter& p : parameters_) {
    const int64_t offset = p.value.data() - params_.data();
    p.value = Tensor::View(p.value.shape(), parameters.data() + offset);
    p.grad = Tensor::View(p.grad.shape(), gradients.data() + offset);
  }
  params_ = Tensor::View({num_parameters()}, parameters.data());
  grads_ = Tensor::View({num_parameters()}, gradients.data());
}

const Tensor& Model::Forward(const Tensor& input) {
  const Tensor* x = &input;
  for (size_t i = 0; i < layers_.size(); ++i) {
    layers_[i]->Forward(*x, &activations_[i]);
    x = &activations_[i];
  }
  return *x;
}

LossResult Model::Evaluate(const Tensor& input, absl::Span<const int32_t> labels) {
  if (input.dim(0) == 0) return {};
  return loss_->Compute(Forward(input), labels, 0.f, nullptr);
}

LossResult Model::ComputeGradients(const Tensor& input, absl::Span<const int32_t> labels,
                                   float grad_scale) {
  if (input.dim(0) == 0) {
    grads_.Fill(0.f);
    return {};
  }
  const Tensor& logits = Forward(input);
  LossResult result = loss_->Compute(logits, labels, grad_scale, &dlogits_);
  const Tensor* dout = &dlogits_;
  // Layers before the first one with parameters need no gradient at all, and
  // that layer needs none for its input (for an MLP this skips the largest
  // matrix product of the backward pass).
  for (size_t i = layers_.size(); i-- > first_trainable_layer_;) {
    const Tensor& in = i == 0 ? input : activations_[i - 1];
    Tensor* din = i == first_trainable_layer_ ? nullptr : (dout == &grad_a_ ? &grad_b_ : &grad_a_);
    layers_[i]->Backward(in, activations_[i], *dout, din);
    dout = din;
  }
  return result;
}

}  // namespace nightshift
