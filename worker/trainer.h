// Trainer: runs a JobSpec to the end in this process — the engine of
// `nightshift train --local`, and the step loop the distributed worker
// builds on.
//
// The step loop (global step g = 0, 1, ... total_steps − 1):
//   1. B = the size of g's global batch (BatchPlan: seeded per-epoch
//      permutation, last batch of an epoch may be smaller).
//   2. Gather the batch's samples; forward, loss, backward with gradient
//      scale 1/B, so the gradient is that of the batch's mean loss.
//   3. lr = LearningRateAt(schedule, g); one optimizer step.
//   4. Every `progress_interval_steps`, report a Progress (mean loss and
//      accuracy since the last report, samples/s from the injected clock).
//   5. Evaluate on the test set every eval_interval_steps, or at the end of
//      every epoch when it is 0, and always after the last step.
//   6. Every checkpoint_interval_steps, write
//      OUT/checkpoint-step-<g+1>.safetensors; after the last step write
//      the final checkpoint and OUT/model.safetensors (parameters only).
// Resuming loads a checkpoint and continues at its step; the data order,
// schedule and optimizer state make the rest identical to never stopping.
//
// Not thread-safe; Run() once.
#ifndef NIGHTSHIFT_WORKER_TRAINER_H_
#define NIGHTSHIFT_WORKER_TRAINER_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "base/clock.h"
#include "kernels/batch_plan.h"
#include "kernels/dataset.h"
#include "kernels/model.h"
#include "kernels/optimizer.h"
#include "nightshift/v1/status.pb.h"

namespace nightshift {

struct TrainerOptions {
  std::string out_dir;      // created if missing; empty: write nothing
  std::string resume_path;  // a checkpoint to continue from
  int64_t progress_interval_steps = 20;
  // Called at each progress report (step 4) and after each evaluation
  // (step 5), with the progress so far.
  std::function<void(const v1::Progress&)> on_progress;
  std::function<void(const v1::Progress&)> on_evaluation;
  Clock* clock = nullptr;   // default: the real clock
};

struct TrainResult {
  int64_t steps = 0;            // global steps completed
  float test_accuracy = 0;
  float test_loss = 0;
  std::string model_path;       // OUT/model.safetensors, if written
};

class Trainer {
 public:
  // Validates the spec, loads the data set and builds model and optimizer.
  static absl::StatusOr<std::unique_ptr<Trainer>> Create(
      const v1::JobSpec& spec, TrainerOptions options);

  absl::StatusOr<TrainResult> Run();

  const Model& model() const { return *model_; }
  int64_t total_steps() const { return total_steps_; }

 private:
  Trainer() = default;
  struct Evaluation {
    float loss;
    float accuracy;
  };
  Evaluation Evaluate();
  absl::Status WriteCheckpoint(int64_t next_step, const std::string& name);

  v1::JobSpec spec_;
  TrainerOptions options_;
  RealClock real_clock_;
  Clock* clock_ = nullptr;
  DatasetSplits data_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<Optimizer> optimizer_;
  std::unique_ptr<BatchPlan> plan_;
  std::string spec_hash_;
  int64_t total_steps_ = 0;
  int64_t start_step_ = 0;
};

}  // namespace nightshift

#endif  // NIGHTSHIFT_WORKER_TRAINER_H_
