#include "kernels/lr_schedule.h"

#include <algorithm>
#include <cmath>

namespace nightshift {

float LearningRateAt(const v1::LrSchedule& schedule, float base_lr, int64_t step,
                     int64_t total_steps) {
  const int64_t warmup = schedule.warmup_steps();
  if (step < warmup) {
    return static_cast<float>(static_cast<double>(base_lr) * (step + 1) / warmup);
  }
  const int64_t done = step - warmup;
  switch (schedule.kind_case()) {
    case v1::LrSchedule::kStep:
      return static_cast<float>(base_lr *
                                std::pow(static_cast<double>(schedule.step().gamma()),
                                         static_cast<double>(done / schedule.step().step_size())));
    case v1::LrSchedule::kCosine: {
      const double min_lr = schedule.cosine().min_lr();
      const int64_t decay_steps = std::max<int64_t>(1, total_steps - warmup);
      const double progress = static_cast<double>(std::min(done, decay_steps)) / decay_steps;
      return static_cast<float>(min_lr +
                                (base_lr - min_lr) * 0.5 * (1.0 + std::cos(M_PI * progress)));
    }
    case v1::LrSchedule::kConstant:
    case v1::LrSchedule::KIND_NOT_SET:
      break;
  }
  return base_lr;
}

}  // namespace nightshift
