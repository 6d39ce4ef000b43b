#include "kernels/tensor.h"

#include <cstdlib>
#include <cstring>

#include "glog/logging.h"

namespace nightshift {
namespace {

constexpr size_t kAlignment = 64;

size_t AlignedBytes(int64_t n) {
  return (static_cast<size_t>(n) * sizeof(float) + kAlignment - 1) / kAlignment * kAlignment;
}

float* Allocate(int64_t n) {
  if (n == 0) return nullptr;
  const size_t bytes = AlignedBytes(n);
  void* p = std::aligned_alloc(kAlignment, bytes);
  CHECK(p != nullptr) << "out of memory allocating " << bytes << " bytes";
  return static_cast<float*>(p);
}

float* AllocateZeroed(int64_t n) {
  float* p = Allocate(n);
  if (p != nullptr) std::memset(p, 0, AlignedBytes(n));
  return p;
}

}  // namespace

void Tensor::AlignedFree::operator()(float* p) const { std::free(p); }

Tensor::Tensor(Shape shape) : shape_(std::move(shape)) {
  size_ = capacity_ = NumElements(shape_);
  storage_.reset(AllocateZeroed(size_));
  data_ = storage_.get();
}

Tensor Tensor::Uninitialized(Shape shape) {
  Tensor t;
  t.shape_ = std::move(shape);
  t.size_ = t.capacity_ = NumElements(t.shape_);
  t.storage_.reset(Allocate(t.size_));
  t.data_ = t.storage_.get();
  return t;
}

Tensor Tensor::View(Shape shape, float* data) {
  Tensor t;
  t.shape_ = std::move(shape);
  t.size_ = NumElements(t.shape_);
  t.data_ = data;
  return t;
}

Tensor Tensor::Clone() const {
  Tensor t = Uninitialized(shape_);
  if (size_ > 0) std::memcpy(t.data_, data_, size_ * sizeof(float));
  return t;
}

void Tensor::Resize(const Shape& shape) {
  CHECK(storage_ != nullptr || data_ == nullptr) << "Resize of a view";
  const int64_t n = NumElements(shape);
  if (n > capacity_ || storage_ == nullptr) {
    storage_.reset(AllocateZeroed(n));
    data_ = storage_.get();
    capacity_ = n;
  }
  size_ = n;
  shape_ = shape;
}

void Tensor::Fill(float value) {
  for (int64_t i = 0; i < size_; ++i) data_[i] = value;
}

}  // namespace nightshift
