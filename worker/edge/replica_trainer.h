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
// Not thread-safe; the compute runs on the calling thread.
#ifndef NIGHTSHIFT_WORKER_EDGE_REPLICA_TRAINER_H_
#define NIGHTSHIFT_WORKER_EDGE_REPLICA_TRAINER_H_

#include <atomic>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
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

class ReplicaTrainer {
 public:
  static constexpr int64_t kMicroBatch = 64;

  // Loads the data set and cuts out shard `shard` of the spec's
  // sync.diloco.shards; INVALID_ARGUMENT naming the field otherwise.
  static absl::StatusOr<std::unique_ptr<ReplicaTrainer>> Create(const v1::JobSpec& spec, int shard);

  absl::StatusOr<RoundResult> RunRound(absl::Span<const float> parameters, int steps,
                                       const std::atomic<bool>* stop = nullptr);
  // Test accuracy of `parameters` over the whole test split.
  absl::StatusOr<float> TestAccuracy(absl::Span<const float> parameters);

  int64_t num_parameters() const { return model_->num_parameters(); }
  int64_t shard_size() const { return static_cast<int64_t>(shard_.size()); }
  int64_t inner_steps_taken() const { return step_; }

 private:
  ReplicaTrainer() = default;

  v1::JobSpec spec_;
  DatasetSplits data_;
  std::vector<int64_t> shard_;  // indices into data_.train
  std::unique_ptr<Model> model_;
  std::unique_ptr<Optimizer> optimizer_;
  std::unique_ptr<BatchPlan> plan_;
  int64_t batch_ = 0;
  int64_t step_ = 0;         // inner steps taken over all rounds
  int64_t total_steps_ = 0;  // rounds × H: the schedule's length
  std::vector<float> accumulated_;
};

}  // namespace nightshift

#endif  // NIGHTSHIFT_WORKER_EDGE_REPLICA_TRAINER_H_
