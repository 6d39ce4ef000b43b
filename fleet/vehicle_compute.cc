#include "fleet/vehicle_compute.h"

#include <algorithm>
#include <utility>
#include <vector>

namespace nightshift::fleet {

absl::StatusOr<RoundResult> ModelledCompute::RunRound(absl::Span<const float>, int steps,
                                                      const std::atomic<bool>* stop) {
  const double seconds = static_cast<double>(steps) * batch_ / rate_;
  const double from = clock_->Now();
  const bool preempted = clock_->WaitUntil(from + seconds, stop);
  const double to = preempted ? clock_->Now() : from + seconds;
  record_span_(from, to);
  RoundResult r;
  r.steps_done =
      preempted ? std::min(steps, static_cast<int>(steps * (to - from) / seconds)) : steps;
  r.samples = static_cast<int64_t>(r.steps_done) * batch_;
  r.mean_loss = 1;
  r.preempted = preempted;
  std::normal_distribution<float> noise(0, 1e-3f);
  r.delta.resize(static_cast<size_t>(n_));
  for (float& d : r.delta) d = noise(rng_);
  return r;
}

absl::StatusOr<RoundResult> PacedTraining::RunRound(absl::Span<const float> parameters, int steps,
                                                    const std::atomic<bool>* stop) {
  const double from = clock_->Now();
  const double seconds_per_step = batch_ / rate_;
  std::vector<float> current(parameters.begin(), parameters.end());
  RoundResult total;
  double loss_sum = 0;
  while (total.steps_done < steps) {
    const int piece = std::min(kPaceSteps, steps - total.steps_done);
    // A piece is computed once its modelled time is over: a stop before
    // then loses it, as the vehicle would have lost it part-done.
    if (clock_->WaitUntil(from + (total.steps_done + piece) * seconds_per_step, stop)) {
      total.preempted = true;
      break;
    }
    absl::StatusOr<RoundResult> r = trainer_->RunRound(current, piece, stop);
    if (!r.ok()) return r.status();
    total.steps_done += r->steps_done;
    total.samples += r->samples;
    loss_sum += static_cast<double>(r->mean_loss) * static_cast<double>(r->samples);
    current = trainer_->CurrentParameters();
    if (r->preempted) {
      total.preempted = true;
      break;
    }
  }
  record_span_(from, clock_->Now());
  total.mean_loss =
      total.samples > 0 ? static_cast<float>(loss_sum / static_cast<double>(total.samples)) : 0;
  total.delta.resize(current.size());
  for (size_t i = 0; i < current.size(); ++i) total.delta[i] = current[i] - parameters[i];
  return total;
}

DatasetSplits ViewOf(DatasetSplits& data) {
  auto view = [](Dataset& d) {
    Dataset v;
    v.sample_shape = d.sample_shape;
    v.num_classes = d.num_classes;
    v.images = Tensor::View(d.images.shape(), d.images.data());
    v.labels = d.labels;
    return v;
  };
  return {view(data.train), view(data.test)};
}

}  // namespace nightshift::fleet
