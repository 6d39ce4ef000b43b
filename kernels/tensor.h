// Tensor: a dense, row-major float32 array with a shape.
//
// A Tensor either owns its storage (64-byte aligned, so oneDNN and vector
// loops see aligned rows) or is a view of memory owned elsewhere — the model
// keeps all parameters, and all gradients, in one flat buffer each and hands
// out views into them. Copying a Tensor is explicit (`Clone`); moving is
// cheap. Not thread-safe: one thread at a time per Tensor.
#ifndef NIGHTSHIFT_KERNELS_TENSOR_H_
#define NIGHTSHIFT_KERNELS_TENSOR_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/types/span.h"
#include "kernels/shape.h"

namespace nightshift {

class Tensor {
 public:
  Tensor() = default;
  // Owning, zero-filled.
  explicit Tensor(Shape shape);
  // Owning, contents unspecified: for a caller that writes every element
  // itself, in pieces of its own choosing. (Zero-filling 188 MB is one
  // uninterruptible storm of page faults: 0.5 s on this machine.)
  static Tensor Uninitialized(Shape shape);
  // A view of `data`, which must hold NumElements(shape) floats and outlive
  // the view.
  static Tensor View(Shape shape, float* data);

  Tensor(Tensor&&) = default;
  Tensor& operator=(Tensor&&) = default;
  Tensor(const Tensor&) = delete;
  Tensor& operator=(const Tensor&) = delete;

  // A deep, owning copy.
  Tensor Clone() const;

  const Shape& shape() const { return shape_; }
  int64_t dim(int i) const { return shape_[i]; }
  int rank() const { return static_cast<int>(shape_.size()); }
  int64_t size() const { return size_; }
  bool owns_data() const { return storage_ != nullptr; }

  float* data() { return data_; }
  const float* data() const { return data_; }
  absl::Span<float> span() { return {data_, static_cast<size_t>(size_)}; }
  absl::Span<const float> span() const { return {data_, static_cast<size_t>(size_)}; }

  // Takes the new shape, reallocating (zero-filled) only when the element
  // count outgrows the storage; otherwise the storage is kept and its
  // contents are whatever it held (callers overwrite it). Buffers that
  // alternate between sizes — a backward pass's ping-pong gradients — so
  // stop allocating and zeroing on every step. Must own its storage or be
  // empty.
  void Resize(const Shape& shape);
  void Fill(float value);

 private:
  struct AlignedFree {
    void operator()(float* p) const;
  };

  Shape shape_;
  int64_t size_ = 0;
  int64_t capacity_ = 0;  // elements in storage_
  std::unique_ptr<float[], AlignedFree> storage_;
  float* data_ = nullptr;
};

}  // namespace nightshift

#endif  // NIGHTSHIFT_KERNELS_TENSOR_H_
