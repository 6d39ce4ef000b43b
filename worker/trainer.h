// Trainer: runs a JobSpec to the end — alone (`nightshift train --local`)
// or as one rank of a synchronous data-parallel group (sync mode
// `allreduce`), in which case every rank runs the same loop.
//
// The step loop (global step g = 0, 1, ... total_steps − 1):
//   1. B = the size of g's global batch (BatchPlan: a seeded per-epoch
//      permutation; the last batch of an epoch may be smaller). This rank
//      takes slice SplitBatch(B, shard_weights)[rank] of it — all of it
//      when alone.
//   2. Forward, loss and backward on the slice with gradient scale 1: the
//      gradient *sum* over the slice (zero for an empty slice).
//   3. All-reduce (sum) the flat gradient over the ranks, then scale it by
//      1/B: the gradient of the global batch's mean loss, whatever the
//      split — so N ranks reproduce one rank up to summation order.
//   4. lr = LearningRateAt(schedule, g); the same optimizer step on every
//      rank, so parameters stay identical without being sent.
//   5. Every rebalance_interval_steps, ranks all-gather the samples/s each
//      measured for steps 1–2 since the last rebalance; the new weights
//      (proportional to those rates) take effect at step g+1 on every rank
//      alike — the announced step is implied by the interval. Shares that
//      would move by less than 4 points are left as they are.
//   6. Every progress_interval_steps, loss, correct count and samples of
//      the window are summed over ranks; rank 0 reports a Progress.
//   7. Every eval_interval_steps (or at each epoch's end when 0) and after
//      the last step, each rank evaluates an equal share of the test set
//      and the sums are all-reduced; rank 0 reports them. Rank 0 writes
//      OUT/checkpoint-step-<g+1>.safetensors every checkpoint_interval_steps
//      and OUT/model.safetensors (parameters only) at the end.
// Resuming loads a checkpoint and continues at its step; the data order,
// schedule and optimizer state make the rest identical to never stopping.
//
// Not thread-safe; Run() once.
#ifndef NIGHTSHIFT_WORKER_TRAINER_H_
#define NIGHTSHIFT_WORKER_TRAINER_H_

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "base/clock.h"
#include "collective/communicator.h"
#include "kernels/batch_plan.h"
#include "kernels/dataset.h"
#include "kernels/model.h"
#include "kernels/optimizer.h"
#include "nightshift/v1/status.pb.h"

namespace nightshift {

// How a rank takes part in synchronous data-parallel training.
struct DataParallel {
  collective::Communicator* communicator = nullptr;  // not owned
  std::vector<double> shard_weights;  // by rank, positive; empty: equal
  int64_t rebalance_interval_steps = 0;  // 0: keep the weights
};

struct TrainerOptions {
  std::string out_dir;      // created if missing; empty: write nothing
  std::string resume_path;  // a checkpoint to continue from
  int64_t progress_interval_steps = 20;
  // Called at each progress report (step 4) and after each evaluation
  // (step 5), with the progress so far.
  std::function<void(const v1::Progress&)> on_progress;
  std::function<void(const v1::Progress&)> on_evaluation;
  Clock* clock = nullptr;   // default: the real clock
  // Unset: train alone.
  std::optional<DataParallel> data_parallel;
  // Called on rank 0 after each rebalance, with the weights now in force.
  std::function<void(int64_t step, const std::vector<double>& weights)> on_rebalance;
  // Called on rank 0 after each checkpoint file is written (not the final
  // model.safetensors, which Run returns).
  std::function<void(int64_t step, const std::string& path)> on_checkpoint;
  // Checked before every step: once true, Run returns CANCELLED.
  const std::atomic<bool>* cancelled = nullptr;
  // OpenMP threads for this trainer's compute, set on the thread that runs
  // it (OpenMP's thread count is per calling thread). 0: leave as is.
  int compute_threads = 0;
  // Benchmarks only: stretch this rank's compute (steps 1–2) by this
  // factor, to stand for a slower machine. 1: off.
  double simulated_slowdown = 1;
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
  absl::StatusOr<Evaluation> Evaluate();
  absl::Status WriteCheckpoint(int64_t next_step, const std::string& name);
  int rank() const;
  int world_size() const;
  // All-reduces (sums) `values` over the ranks; a no-op alone.
  absl::Status SumOverRanks(absl::Span<float> values);
  absl::Status Rebalance(double my_samples_per_second, std::vector<double>* weights);

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
