// A simulated vehicle's compute for the agent's round client
// (worker/edge/round_client.h), on the simulator's virtual clock.
//
// Every simulated vehicle computes at one modelled rate, `rate` samples
// per virtual second, so a round of H inner steps of B samples takes
// H·B/rate virtual seconds whether it is computed or modelled:
//  - ModelledCompute waits that long and returns a small seeded update
//    (most vehicles of a large fleet: no CPU spent on them).
//  - PacedTraining trains for real (the agent's ReplicaTrainer) and holds
//    the training to the same rate: the round's steps go in pieces of
//    kPaceSteps, each computed once the virtual clock has reached the
//    piece's modelled end (on a schedule from the round's start, so a
//    piece's compute overlaps the next one's modelled time; a round ends
//    one piece's real compute after its modelled end). A vehicle whose
//    real compute falls behind its rate takes longer, as an overloaded
//    one would. Its update is the real Δ of the steps taken; the pieces
//    are the same optimizer steps as one call (the trainer's state and
//    schedule carry over), so Δ equals an unpaced round's bit for bit.
// Preemption, both: the stop flag is read while waiting (and by the
// trainer before every micro-batch); the round then returns what it did
// with preempted set. A paced round stopped while waiting loses the piece
// whose time was not over, as the vehicle would have lost it part-done;
// one stopped while a piece computes (its time over, the machine behind)
// loses that piece's steps not yet taken.
// Each round records its virtual span [start, end) through `record_span`
// (the simulator's check that no vehicle computes while it drives).
//
// Not thread-safe: one round at a time per object.
#ifndef NIGHTSHIFT_FLEET_VEHICLE_COMPUTE_H_
#define NIGHTSHIFT_FLEET_VEHICLE_COMPUTE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <random>

#include "data/dataset.h"
#include "worker/edge/replica_trainer.h"

namespace nightshift::fleet {

// The simulator's clock, as a vehicle's compute sees it: virtual seconds
// since midnight of the traces' day 0.
class VirtualClock {
 public:
  virtual ~VirtualClock() = default;
  virtual double Now() const = 0;
  // Returns once the clock reads `t`, or early, true, once *stop (may be
  // null) is raised.
  virtual bool WaitUntil(double t, const std::atomic<bool>* stop) = 0;
};

using SpanRecorder = std::function<void(double from, double to)>;

class ModelledCompute final : public RoundCompute {
 public:
  ModelledCompute(VirtualClock* clock, SpanRecorder record_span, int64_t parameters, int batch,
                  double rate, uint64_t seed)
      : clock_(clock),
        record_span_(std::move(record_span)),
        n_(parameters),
        batch_(batch),
        rate_(rate),
        rng_(seed) {}
  absl::StatusOr<RoundResult> RunRound(absl::Span<const float> parameters, int steps,
                                       const std::atomic<bool>* stop) override;
  // No model to evaluate: 0 (a modelled fleet's accuracy means nothing).
  absl::StatusOr<float> TestAccuracy(absl::Span<const float>) override { return 0.0f; }
  int64_t num_parameters() const override { return n_; }

 private:
  VirtualClock* clock_;
  SpanRecorder record_span_;
  const int64_t n_;
  const int batch_;
  const double rate_;
  std::mt19937_64 rng_;
};

class PacedTraining final : public RoundCompute {
 public:
  static constexpr int kPaceSteps = 10;

  // `trainer` is for the spec's replica batch `batch`.
  PacedTraining(VirtualClock* clock, SpanRecorder record_span,
                std::unique_ptr<ReplicaTrainer> trainer, int batch, double rate)
      : clock_(clock),
        record_span_(std::move(record_span)),
        trainer_(std::move(trainer)),
        batch_(batch),
        rate_(rate) {}
  absl::StatusOr<RoundResult> RunRound(absl::Span<const float> parameters, int steps,
                                       const std::atomic<bool>* stop) override;
  absl::StatusOr<float> TestAccuracy(absl::Span<const float> parameters) override {
    return trainer_->TestAccuracy(parameters);
  }
  int64_t num_parameters() const override { return trainer_->num_parameters(); }

 private:
  VirtualClock* clock_;
  SpanRecorder record_span_;
  std::unique_ptr<ReplicaTrainer> trainer_;
  const int batch_;
  const double rate_;
};

// Splits that view `data`'s images (which must outlive them and not
// change) and copy its labels: many simulated trainers on one loaded set.
DatasetSplits ViewOf(DatasetSplits& data);

}  // namespace nightshift::fleet

#endif  // NIGHTSHIFT_FLEET_VEHICLE_COMPUTE_H_
