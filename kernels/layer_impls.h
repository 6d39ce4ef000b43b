// Constructors of the concrete oneDNN layers, for the factory in layer.cc.
// Callers outside kernels/ use MakeLayer (kernels/layer.h). Each assumes its
// shapes were checked by InferOutputShape.
#ifndef NIGHTSHIFT_KERNELS_LAYER_IMPLS_H_
#define NIGHTSHIFT_KERNELS_LAYER_IMPLS_H_

#include <memory>

#include "kernels/layer.h"

namespace nightshift::internal {

std::unique_ptr<Layer> NewDenseLayer(const v1::DenseLayer& spec, const Shape& input,
                                     const Shape& output, OneDnnContext* context);
std::unique_ptr<Layer> NewConv2dLayer(const v1::Conv2dLayer& spec, const Shape& input,
                                      const Shape& output, OneDnnContext* context);
std::unique_ptr<Layer> NewMaxPool2dLayer(const v1::MaxPool2dLayer& spec, const Shape& input,
                                         const Shape& output, OneDnnContext* context);
std::unique_ptr<Layer> NewReluLayer(const Shape& input, OneDnnContext* context);
std::unique_ptr<Layer> NewFlattenLayer(const Shape& input, const Shape& output);

// Batch shape [n, sample...].
inline Shape WithBatch(int64_t n, const Shape& sample) {
  Shape s{n};
  s.insert(s.end(), sample.begin(), sample.end());
  return s;
}

}  // namespace nightshift::internal

#endif  // NIGHTSHIFT_KERNELS_LAYER_IMPLS_H_
