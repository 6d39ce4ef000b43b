// LearningRateAt: the learning rate of a step under an LrSchedule.
//
// Step s is 0-based (the s-th optimizer update). With W warmup steps the
// rate ramps linearly, base·(s+1)/W for s < W; after warmup, with
// d = s − W decay steps done out of D = total_steps − W:
//   constant: base
//   step:     base · gamma^floor(d / step_size)
//   cosine:   min + (base − min) · (1 + cos(π · min(d, D) / D)) / 2
// A pure function; the spec is assumed valid (ValidateJobSpec).
#ifndef NIGHTSHIFT_KERNELS_LR_SCHEDULE_H_
#define NIGHTSHIFT_KERNELS_LR_SCHEDULE_H_

#include <cstdint>

#include "nightshift/v1/job.pb.h"

namespace nightshift {

float LearningRateAt(const v1::LrSchedule& schedule, float base_lr, int64_t step,
                     int64_t total_steps);

}  // namespace nightshift

#endif  // NIGHTSHIFT_KERNELS_LR_SCHEDULE_H_
