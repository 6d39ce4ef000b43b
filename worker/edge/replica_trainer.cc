#include "worker/edge/replica_trainer.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "data/replica_shards.h"
#include "kernels/lr_schedule.h"
#include "spec/diloco.h"
#include "spec/job_spec.h"

namespace nightshift {

absl::StatusOr<std::unique_ptr<ReplicaTrainer>> ReplicaTrainer::Create(const v1::JobSpec& spec,
                                                                       int shard) {
  RETURN_IF_ERROR(ValidateJobSpec(spec));
  if (!spec.sync().has_diloco()) return absl::InvalidArgumentError("sync: not a diloco job");
  const DiLoCoSettings settings = ResolveDiLoCo(spec);
  if (shard < 0 || shard >= settings.shard_count) {
    return absl::InvalidArgumentError(
        absl::StrCat("shard ", shard, " is outside [0, ", settings.shard_count, ")"));
  }
  std::unique_ptr<ReplicaTrainer> t(new ReplicaTrainer());
  t->spec_ = spec;
  ASSIGN_OR_RETURN(t->data_, LoadDataset(spec.dataset(), spec.seed()));
  ASSIGN_OR_RETURN(
      std::vector<std::vector<int64_t>> shards,
      ReplicaShards(t->data_.train.labels, static_cast<int>(t->data_.train.num_classes),
                    settings.shard_count, settings.dirichlet_alpha, spec.seed()));
  t->shard_ = std::move(shards[shard]);
  ASSIGN_OR_RETURN(t->model_,
                   Model::Create(spec.model(), t->data_.train.sample_shape, spec.seed()));
  ASSIGN_OR_RETURN(t->optimizer_, MakeOptimizer(spec.optimizer(), t->model_->num_parameters()));
  t->batch_ = std::min<int64_t>(settings.replica_batch_size, t->shard_size());
  // Each shard its own order: the job seed and the shard number.
  t->plan_ = std::make_unique<BatchPlan>(t->shard_size(), t->batch_,
                                         spec.seed() ^ (0x9e3779b97f4a7c15ULL * (shard + 1)));
  t->total_steps_ = settings.rounds * settings.inner_steps;
  t->accumulated_.assign(t->model_->num_parameters(), 0.0f);
  return t;
}

absl::StatusOr<RoundResult> ReplicaTrainer::RunRound(absl::Span<const float> parameters, int steps,
                                                     const std::atomic<bool>* stop) {
  const absl::Span<float> params = model_->flat_parameters();
  if (parameters.size() != params.size()) {
    return absl::InvalidArgumentError(absl::StrCat("the round's parameters hold ",
                                                   parameters.size(), " values; the model has ",
                                                   params.size()));
  }
  std::copy(parameters.begin(), parameters.end(), params.begin());
  const float base_lr = BaseLearningRate(spec_.optimizer());
  RoundResult result;
  double loss_sum = 0;
  Tensor images;
  std::vector<int32_t> labels;
  auto stopped = [&] { return stop != nullptr && stop->load(std::memory_order_relaxed); };
  for (int s = 0; s < steps && !result.preempted; ++s) {
    const int64_t batch = plan_->BatchSize(step_);
    std::fill(accumulated_.begin(), accumulated_.end(), 0.0f);
    double batch_loss = 0;
    for (int64_t begin = 0; begin < batch; begin += kMicroBatch) {
      if (stopped()) {
        result.preempted = true;
        break;
      }
      const int64_t end = std::min(batch, begin + kMicroBatch);
      std::vector<int64_t> positions = plan_->Indices(step_, begin, end);
      for (int64_t& p : positions) p = shard_[p];
      GatherBatch(data_.train, positions, &images, &labels);
      const LossResult r = model_->ComputeGradients(images, labels, 1.f);
      batch_loss += r.loss_sum;
      const absl::Span<const float> grads = model_->flat_gradients();
      for (size_t i = 0; i < accumulated_.size(); ++i) accumulated_[i] += grads[i];
    }
    if (result.preempted) break;
    const float lr = LearningRateAt(spec_.lr_schedule(), base_lr, step_, total_steps_);
    optimizer_->Step(params, accumulated_, lr, 1.0f / static_cast<float>(batch));
    ++step_;
    ++result.steps_done;
    result.samples += batch;
    loss_sum += batch_loss;
  }
  result.mean_loss = result.samples > 0 ? static_cast<float>(loss_sum / result.samples) : 0;
  result.delta.resize(params.size());
  for (size_t i = 0; i < params.size(); ++i) result.delta[i] = params[i] - parameters[i];
  return result;
}

absl::StatusOr<float> ReplicaTrainer::TestAccuracy(absl::Span<const float> parameters) {
  const absl::Span<float> params = model_->flat_parameters();
  if (parameters.size() != params.size()) {
    return absl::InvalidArgumentError("parameters of another model");
  }
  std::copy(parameters.begin(), parameters.end(), params.begin());
  const Dataset& test = data_.test;
  if (test.size() == 0) return 0.0f;
  Tensor images;
  std::vector<int32_t> labels;
  int64_t correct = 0;
  for (int64_t begin = 0; begin < test.size(); begin += 1000) {
    std::vector<int64_t> indices;
    for (int64_t i = begin; i < std::min(test.size(), begin + 1000); ++i) indices.push_back(i);
    GatherBatch(test, indices, &images, &labels);
    correct += model_->Evaluate(images, labels).correct;
  }
  return static_cast<float>(correct) / static_cast<float>(test.size());
}

}  // namespace nightshift
