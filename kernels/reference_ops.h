// Plain-loop reference implementations of every op, in double precision.
//
// These are the ground truth for tests: the oneDNN layers are checked
// against them, and they are checked against finite differences. They favour
// obviousness over speed and are never used for training. Layouts match the
// oneDNN layers: activations NCHW or NC, dense weights [out, in], conv
// weights [filters, channels, k, k]. All functions are pure.
#ifndef NIGHTSHIFT_KERNELS_REFERENCE_OPS_H_
#define NIGHTSHIFT_KERNELS_REFERENCE_OPS_H_

#include <cstdint>
#include <vector>

#include "kernels/tensor.h"

namespace nightshift::reference {

struct Array {
  Shape shape;
  std::vector<double> v;

  Array() = default;
  explicit Array(Shape s) : shape(std::move(s)), v(NumElements(shape), 0.0) {}
};

// y[n, o] = sum_i x[n, i] * w[o, i] + b[o]  (b may be empty: no bias).
Array DenseForward(const Array& x, const Array& w, const Array& b);
// Given dy, returns dx, dw and db (db empty when b was).
void DenseBackward(const Array& x, const Array& w, bool has_bias, const Array& dy, Array* dx,
                   Array* dw, Array* db);

Array ReluForward(const Array& x);
Array ReluBackward(const Array& x, const Array& dy);

struct ConvParams {
  int stride = 1;
  int padding = 0;
};
Array Conv2dForward(const Array& x, const Array& w, const Array& b, const ConvParams& p);
void Conv2dBackward(const Array& x, const Array& w, bool has_bias, const Array& dy,
                    const ConvParams& p, Array* dx, Array* dw, Array* db);

struct PoolParams {
  int kernel = 2;
  int stride = 2;
};
Array MaxPoolForward(const Array& x, const PoolParams& p);
// Routes each dy to the first maximum of its window (ties: lowest index).
Array MaxPoolBackward(const Array& x, const Array& dy, const PoolParams& p);

// Softmax cross-entropy summed over the batch: returns
// sum_n -log softmax(logits[n])[labels[n]], and sets dlogits to the gradient
// of `scale` times that sum.
double SoftmaxCrossEntropy(const Array& logits, const std::vector<int>& labels, double scale,
                           Array* dlogits);

// Conversions for comparing against float tensors.
Array FromTensor(const Tensor& t);
Tensor ToTensor(const Array& a);

}  // namespace nightshift::reference

#endif  // NIGHTSHIFT_KERNELS_REFERENCE_OPS_H_
