#include "coordinator/rounds/outer_optimizer.h"

#include "absl/strings/str_cat.h"

namespace nightshift::coordinator::rounds {

absl::Status OuterOptimizer::Apply(absl::Span<float> params, absl::Span<const float> delta) {
  if (params.size() != momentum_.size() || delta.size() != momentum_.size()) {
    return absl::InvalidArgumentError(absl::StrCat("outer step: ", params.size(),
                                                   " parameters and ", delta.size(),
                                                   " deltas for a model of ", momentum_.size()));
  }
  const double lr = options_.lr, mu = options_.momentum;
  for (size_t i = 0; i < params.size(); ++i) {
    const double g = -static_cast<double>(delta[i]);
    const double m = mu * momentum_[i] + g;
    momentum_[i] = static_cast<float>(m);
    const double step = options_.nesterov ? g + mu * m : m;
    params[i] = static_cast<float>(params[i] - lr * step);
  }
  return absl::OkStatus();
}

absl::Status OuterOptimizer::RestoreMomentum(absl::Span<const float> m) {
  if (m.size() != momentum_.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("outer momentum of ", m.size(), " values for a model of ", momentum_.size()));
  }
  momentum_.assign(m.begin(), m.end());
  return absl::OkStatus();
}

}  // namespace nightshift::coordinator::rounds
