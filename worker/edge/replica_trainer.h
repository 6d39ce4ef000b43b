// ReplicaTrainer: one DiLoCo replica's inner loop (the agent side of
// coordinator/rounds/round_keeper.h). It holds the model, the inner
// optimizer (whose state carries over from round to round, as in DiLoCo)
// and the replica's sticky shard of the training set
// (data/replica_shards.h, from the spec and the shard number alone).
//
// RunRound(θ, H): loads θ (the round's base parameters), takes up to H
// steps of the spec's optimizer on batches of replica_batch_size drawn
// from a seeded per-epoch order of the shard, the learning rate following
// the spec's schedule over the replica's own step count (rounds × H in
// all), and returns Δ = θ_end − θ with the samples seen and the mean
// loss. Preemption: `stop` is read before every micro-batch (at most
// kMicroBatch samples, gradients summed over them), so compute ends
// within one micro-batch of it being set; the round then returns what it
// did so far with preempted = true (Δ over the steps completed; a step cut
// mid-way is not applied).
//
// Group mode (hybrid jobs: a data-center ring that acts as one replica):
// set_group(communicator) on every rank of the ring, each trainer built
// for the ring's one shard. Each inner step every rank computes the
// gradient sum of its part of the step's batch (rank r of n: positions
// [r·B/n, (r+1)·B/n) of the same seeded order), the ranks all-reduce the
// sums (and the loss), and every rank applies the same optimizer step:
// the parameters stay bitwise equal on all ranks, and equal one replica's
// up to the order of the summation. The ring protocol, rank 0 driving:
//   header: Broadcast [command, steps] from rank 0, then by command
//     kTrain: Broadcast θ; every rank takes the steps together; Δ is rank
//             0's to push (the others' is the same);
//     kIdle:  nothing (a keep-alive while rank 0 waits between rounds, so
//             the followers' collective timeout does not run out);
//     kEnd:   the job ended; the followers return.
// Rank 0 calls RunRound (it sends kTrain, the steps and θ itself), Idle()
// and End(); the other ranks call Follow() until it returns kEnd. When the
// ring forms or changes, every rank calls SyncGroup(): rank 0's optimizer
// state and step count go to all (a joiner then steps as the others do).
// The stop flag is not read in group mode: one rank stopping alone would
// leave the others blocked; a ring stops by cancel (its communicator is
// interrupted) instead.
//
// Not thread-safe; the compute runs on the calling thread.
#ifndef NIGHTSHIFT_WORKER_EDGE_REPLICA_TRAINER_H_
#define NIGHTSHIFT_WORKER_EDGE_REPLICA_TRAINER_H_

#include <atomic>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "collective/communicator.h"
#include "data/batch_plan.h"
#include "data/dataset.h"
#include "kernels/model.h"
#include "kernels/optimizer.h"
#include "nightshift/v1/job.pb.h"

namespace nightshift {

struct RoundResult {
  std::vector<float> delta;
  int64_t samples = 0;
  int steps_done = 0;
  float mean_loss = 0;
  bool preempted = false;
};

// What a round client needs of a replica's compute: the inner steps of a
// round, an evaluation, the model's size. ReplicaTrainer trains for real;
// the fleet simulator (fleet/) stands in for most vehicles with modelled
// compute time.
class RoundCompute {
 public:
  virtual ~RoundCompute() = default;
  virtual absl::StatusOr<RoundResult> RunRound(absl::Span<const float> parameters, int steps,
                                               const std::atomic<bool>* stop) = 0;
  virtual absl::StatusOr<float> TestAccuracy(absl::Span<const float> parameters) = 0;
  virtual int64_t num_parameters() const = 0;
};

class ReplicaTrainer final : public RoundCompute {
 public:
  static constexpr int64_t kMicroBatch = 64;

  // Loads the data set and cuts out shard `shard` of the spec's
  // sync.diloco.shards; INVALID_ARGUMENT naming the field otherwise.
  static absl::StatusOr<std::unique_ptr<ReplicaTrainer>> Create(const v1::JobSpec& spec, int shard);
  // The same on a data set already loaded from spec.dataset() (an edge
  // agent loads it with a DatasetLoader, whose pieces survive preemption).
  static absl::StatusOr<std::unique_ptr<ReplicaTrainer>> Create(const v1::JobSpec& spec, int shard,
                                                                DatasetSplits data);

  absl::StatusOr<RoundResult> RunRound(absl::Span<const float> parameters, int steps,
                                       const std::atomic<bool>* stop = nullptr) override;

  // Group mode (above). `group` outlives its use here; null: alone.
  void set_group(collective::Communicator* group) { group_ = group; }
  enum class GroupCommand { kTrain = 1, kIdle = 2, kEnd = 3 };
  // Every rank, when the ring (re)forms: rank 0's optimizer state to all.
  absl::Status SyncGroup();
  // Rank 0, between rounds and at the end.
  absl::Status Idle() { return SendHeader(GroupCommand::kIdle, 0); }
  absl::Status End() { return SendHeader(GroupCommand::kEnd, 0); }
  // The other ranks: one command from rank 0 (kTrain: its round done here).
  absl::StatusOr<GroupCommand> Follow();
  // Test accuracy of `parameters` over the whole test split.
  absl::StatusOr<float> TestAccuracy(absl::Span<const float> parameters) override;

  int64_t num_parameters() const override { return model_->num_parameters(); }
  // The model's parameters now (after a round: θ + Δ).
  std::vector<float> CurrentParameters() {
    const absl::Span<const float> p = model_->flat_parameters();
    return {p.begin(), p.end()};
  }
  int64_t shard_size() const { return static_cast<int64_t>(shard_.size()); }
  int64_t inner_steps_taken() const { return step_; }

 private:
  ReplicaTrainer() = default;
  absl::Status SendHeader(GroupCommand command, int steps);
  // The inner steps from the parameters now in the model.
  absl::StatusOr<RoundResult> RunSteps(absl::Span<const float> base, int steps,
                                       const std::atomic<bool>* stop);

  v1::JobSpec spec_;
  DatasetSplits data_;
  std::vector<int64_t> shard_;  // indices into data_.train
  std::unique_ptr<Model> model_;
  std::unique_ptr<Optimizer> optimizer_;
  std::unique_ptr<BatchPlan> plan_;
  int64_t batch_ = 0;
  int64_t step_ = 0;         // inner steps taken over all rounds
  int64_t total_steps_ = 0;  // rounds × H: the schedule's length
  // Gradient sums, then (group mode) the loss sum in the last element.
  std::vector<float> accumulated_;
  collective::Communicator* group_ = nullptr;
  std::vector<float> base_;  // a follower's copy of the round's θ
};

}  // namespace nightshift

#endif  // NIGHTSHIFT_WORKER_EDGE_REPLICA_TRAINER_H_
