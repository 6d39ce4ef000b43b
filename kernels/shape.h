// Shape: the dimensions of a tensor, outermost first — the vocabulary that
// tensors, layers and spec validation share. Plain values; no oneDNN, so
// code that only reasons about shapes (spec/) links nothing heavy.
#ifndef NIGHTSHIFT_KERNELS_SHAPE_H_
#define NIGHTSHIFT_KERNELS_SHAPE_H_

#include <cstdint>
#include <string>
#include <vector>

namespace nightshift {

using Shape = std::vector<int64_t>;

// Number of elements of `shape` (1 for a scalar shape {}).
int64_t NumElements(const Shape& shape);
// "[64, 1, 28, 28]".
std::string ShapeToString(const Shape& shape);

}  // namespace nightshift

#endif  // NIGHTSHIFT_KERNELS_SHAPE_H_
