// InferOutputShape: what each layer kind of a ModelSpec does to a
// per-sample shape — the one rule that layers (kernels/layer.h) build by and
// spec validation (spec/job_spec.h) checks by. No oneDNN: the coordinator
// validates specs with it without linking any kernel.
#ifndef NIGHTSHIFT_KERNELS_SHAPE_INFERENCE_H_
#define NIGHTSHIFT_KERNELS_SHAPE_INFERENCE_H_

#include "absl/status/statusor.h"
#include "kernels/shape.h"
#include "nightshift/v1/job.pb.h"

namespace nightshift {

// The per-sample output shape of `spec` applied to `input`, or
// INVALID_ARGUMENT saying what does not fit (without a field path: the
// caller prefixes one).
absl::StatusOr<Shape> InferOutputShape(const v1::LayerSpec& spec, const Shape& input);

}  // namespace nightshift

#endif  // NIGHTSHIFT_KERNELS_SHAPE_INFERENCE_H_
