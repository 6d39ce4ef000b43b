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
//   3. Sum the flat gradient over the ranks, then scale it by 1/B: the
//      gradient of the global batch's mean loss, whatever the split — so
//      N ranks reproduce one rank up to summation order.
//   4. lr = LearningRateAt(schedule, g); one optimizer step. Sharded (the
//      default in a group, ZeRO stage 1): 3 and 4 are one ring pass — each
//      rank receives the final sums only of the part it owns, updates those
//      parameters (and keeps that part of the optimizer state), and the
//      new parameters travel the all-gather in place of the sums. Each rank
//      thus does 1/N of the update, and every rank ends with the same
//      parameters as if each had done all of it. When every rank runs on
//      one machine, the ranks map one another's parameters and gradients
//      and the same step runs one-sided, with the same results
//      (collective/shared_step.h). Unsharded: all-reduce,
//      then the whole update on every rank. Before a checkpoint the owners'
//      optimizer state is gathered, so checkpoints are the same either way.
//   5. Every rebalance_interval_steps, ranks all-gather the samples/s each
//      measured for steps 1–2 since the last rebalance; the new weights
//      (proportional to those rates) take effect at step g+1 on every rank
//      alike — the announced step is implied by the interval. Shares that
//      would move by less than 4 points are left as they are.
//   6. At the end of each progress window (progress_interval_steps at
//      first), loss, correct count, samples and the window's seconds are
//      summed over ranks; rank 0 reports a Progress. With a
//      progress_period, the next window's length in steps is chosen from
//      the ranks' mean window time, so that reports come about once a
//      period — every rank computes it from the same all-reduced figures,
//      so all agree on when the next (collective) report falls.
//   7. Every eval_interval_steps (or at each epoch's end when 0) and after
//      the last step, each rank evaluates an equal share of the test set
//      and the sums are all-reduced; rank 0 reports them. Rank 0 writes
//      OUT/checkpoint-step-<g+1>.safetensors every checkpoint_interval_steps
//      and OUT/model.safetensors (parameters only) at the end.
//   8. Commit points (in a group only): at the start of Run and at every
//      progress report (step 6: a step all ranks agree on, about once a
//      progress period), every rank gathers the owners' optimizer state
//      and copies parameters, optimizer state and step into its own
//      memory. The LR schedule position and the data order are functions
//      of the step, so nothing else is needed to resume there. Measured:
//      0.86–0.90% of a 2-worker Fashion-MNIST run at 500 ms reports (17
//      commits of ~4 ms in 7.9 s; the daemon logs the figure per job).
//   9. Yielding (in a group only): the progress all-reduce of step 6 also
//      sums the ranks' yield_requested flags; when any is set, every rank
//      takes the commit point of step 8 and Run returns `yielded` at that
//      same step — the group's common stopping point for a planned
//      membership change (a worker joins or drains): nothing is redone.
// Resuming loads a checkpoint and continues at its step; the data order,
// schedule and optimizer state make the rest identical to never stopping.
// Regrouping (elastic membership): when Run fails on a lost peer, or
// yields (9), the caller builds the next generation's group and every
// member calls Regroup: the ranks agree on a commit point, the lowest rank
// holding it broadcasts it (parameters, complete optimizer state, step)
// over the new group — so a joiner, whose trainer never ran, receives the
// model from a live member, not from a file — and Run continues from that
// step. No reloaded data set, no file. Work lost is at most one commit
// interval (none on a yield), and the final model is the one a
// failure-free run reaches, up to float summation order.
//
// Not thread-safe. Run() once, or again after each Regroup().
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
#include "data/batch_plan.h"
#include "data/dataset.h"
#include "kernels/model.h"
#include "kernels/optimizer.h"
#include "nightshift/v1/status.pb.h"

namespace nightshift {

// How a rank takes part in synchronous data-parallel training.
struct DataParallel {
  collective::Communicator* communicator = nullptr;  // not owned
  std::vector<double> shard_weights;                 // by rank, positive; empty: equal
  int64_t rebalance_interval_steps = 0;              // 0: keep the weights
  bool sharded_optimizer_step = true;                // step 4
};

struct TrainerOptions {
  std::string out_dir;                   // created if missing; empty: write nothing
  std::string resume_path;               // a checkpoint to continue from
  int64_t progress_interval_steps = 20;  // the first window's length
  // > 0: later windows last about this long (step 6). Frequent reports
  // cost every rank a collective and the coordinator a database write.
  absl::Duration progress_period = absl::ZeroDuration();
  // Called at each progress report (step 6) and after each evaluation
  // (step 7), with the progress so far.
  std::function<void(const v1::Progress&)> on_progress;
  std::function<void(const v1::Progress&)> on_evaluation;
  Clock* clock = nullptr;  // default: the real clock
  // Unset: train alone.
  std::optional<DataParallel> data_parallel;
  // Called on rank 0 after each rebalance, with the weights now in force.
  std::function<void(int64_t step, const std::vector<double>& weights)> on_rebalance;
  // In a group: also checkpoint at the first commit point after this much
  // training time (step 8; every rank sums the same all-reduced window
  // times, so all agree). Zero: only checkpoint_interval_steps.
  absl::Duration checkpoint_period = absl::ZeroDuration();
  // Called on rank 0 after each checkpoint file is written (not the final
  // model.safetensors, which Run returns).
  std::function<void(int64_t step, const std::string& path)> on_checkpoint;
  // Checked before every step: once true, Run returns CANCELLED.
  const std::atomic<bool>* cancelled = nullptr;
  // Checked at each commit point (9): once true on any rank, the group
  // stops there and Run returns `yielded`.
  const std::atomic<bool>* yield_requested = nullptr;
  // OpenMP threads for this trainer's compute, set on the thread that runs
  // it (OpenMP's thread count is per calling thread). 0: leave as is.
  int compute_threads = 0;
  // Benchmarks only: stretch this rank's compute (steps 1–2) by this
  // factor, to stand for a slower machine. 1: off.
  double simulated_slowdown = 1;
};

// A rank's whole training state at the start of global step `step`, in
// its own memory: what Regroup resumes from.
struct CommitPoint {
  int64_t step = -1;  // the next global step to run; -1: none yet
  int64_t optimizer_steps = 0;
  std::vector<float> parameters;
  std::vector<std::vector<float>> optimizer_state;  // Optimizer::State() order
};

struct TrainResult {
  int64_t steps = 0;     // global steps completed
  bool yielded = false;  // stopped at commit point `steps` (9), not at the end
  float test_accuracy = 0;
  float test_loss = 0;
  std::string model_path;      // OUT/model.safetensors, if written
  int64_t commits = 0;         // commit points taken (step 8), this Run
  absl::Duration commit_time;  // spent taking them, this rank
};

class Trainer {
 public:
  // Validates the spec, loads the data set and builds model and optimizer.
  static absl::StatusOr<std::unique_ptr<Trainer>> Create(const v1::JobSpec& spec,
                                                         TrainerOptions options);

  // Runs from the start step (or the last commit, after Regroup) to the
  // end. May be called again after Regroup.
  absl::StatusOr<TrainResult> Run();

  // Elastic membership (see above): binds `group` (the next generation's
  // communicator, shard weights and rebalance interval) and takes the
  // commit point it resumes from — the oldest newest commit among the
  // ranks holding one (a loss during a commit can leave them one apart;
  // each keeps the one before its newest), broadcast by the lowest rank
  // holding it. A trainer that never ran (a joiner: create it without
  // data_parallel) holds none and receives it. FAILED_PRECONDITION when no rank holds one.
  // Collective over `group`. Call it while the previous group's communicator still exists: the
  // model's buffers may be that group's shared memory, and move out of it first.
  absl::Status Regroup(DataParallel group);
  const CommitPoint& last_commit() const { return commit_; }

  const Model& model() const { return *model_; }
  int64_t total_steps() const { return total_steps_; }

 private:
  Trainer() = default;
  struct Evaluation {
    float loss;
    float accuracy;
  };
  absl::StatusOr<Evaluation> Evaluate();
  // Gathers the optimizer state (every rank must call it) and, on rank 0
  // with an out_dir, writes OUT/checkpoint-step-<next_step>.safetensors;
  // returns its path there, "" elsewhere.
  absl::StatusOr<std::string> Checkpoint(int64_t next_step);
  int rank() const;
  int world_size() const;
  // All-reduces (sums) `values` over the ranks; a no-op alone.
  absl::Status SumOverRanks(absl::Span<float> values);
  absl::Status Rebalance(double my_samples_per_second, std::vector<double>* weights);
  bool sharded_step() const;
  // Steps 3–4 for the global batch of `batch` samples.
  absl::Status SumAndUpdate(float lr, int64_t batch);
  // Every rank's optimizer state, complete (collective when sharded).
  absl::Status GatherOptimizerState();
  // Step 8 at the start of global step `next_step`; collective when sharded.
  absl::Status Commit(int64_t next_step);
  // Puts the model's flat buffers in the group's shared step memory when
  // the group has one (sharded step, every rank on one host).
  absl::Status BindStepMemory();
  // Puts them in memory of this trainer's own (leaving a group's).
  void MoveToOwnMemory();

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
  CommitPoint commit_;           // the newest
  CommitPoint previous_commit_;  // the one before it
  // The model's flat buffers after a regroup moved them out of a group's
  // shared memory.
  Tensor own_parameters_, own_gradients_;
};

}  // namespace nightshift

#endif  // NIGHTSHIFT_WORKER_TRAINER_H_
