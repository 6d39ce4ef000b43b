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
  ASSIGN_OR_RETURN(DatasetSplits data, LoadDataset(spec.dataset(), spec.seed()));
  return Create(spec, shard, std::move(data));
}

absl::StatusOr<std::unique_ptr<ReplicaTrainer>> ReplicaTrainer::Create(const v1::JobSpec& spec,
                                                                       int shard,
                                                                       DatasetSplits data) {
  RETURN_IF_ERROR(ValidateJobSpec(spec));
  if (!spec.sync().has_diloco()) return absl::InvalidArgumentError("sync: not a diloco job");
  const DiLoCoSettings settings = ResolveDiLoCo(spec);
  if (shard < 0 || shard >= settings.shard_count) {
    return absl::InvalidArgumentError(
        absl::StrCat("shard ", shard, " is outside [0, ", settings.shard_count, ")"));
  }
  std::unique_ptr<ReplicaTrainer> t(new ReplicaTrainer());
  t->spec_ = spec;
  t->data_ = std::move(data);
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
  t->accumulated_.assign(t->model_->num_parameters() + 1, 0.0f);
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
  if (group_ != nullptr) {
    if (group_->rank() != 0) {
      return absl::FailedPreconditionError(
          "only rank 0 of a ring runs its rounds; the others Follow");
    }
    RETURN_IF_ERROR(SendHeader(GroupCommand::kTrain, steps));
    RETURN_IF_ERROR(group_->Broadcast(params, 0));
    stop = nullptr;  // group mode: see the header
  }
  return RunSteps(parameters, steps, stop);
}

absl::Status ReplicaTrainer::SendHeader(GroupCommand command, int steps) {
  if (group_ == nullptr) return absl::OkStatus();
  if (group_->rank() != 0) return absl::FailedPreconditionError("only rank 0 drives the ring");
  std::vector<float> header = {static_cast<float>(command), static_cast<float>(steps)};
  return group_->Broadcast(absl::MakeSpan(header), 0);
}

absl::StatusOr<ReplicaTrainer::GroupCommand> ReplicaTrainer::Follow() {
  if (group_ == nullptr || group_->rank() == 0) {
    return absl::FailedPreconditionError("Follow: not a follower of a ring");
  }
  std::vector<float> header(2);
  RETURN_IF_ERROR(group_->Broadcast(absl::MakeSpan(header), 0));
  const auto command = static_cast<GroupCommand>(static_cast<int>(header[0]));
  if (command == GroupCommand::kIdle || command == GroupCommand::kEnd) return command;
  if (command != GroupCommand::kTrain || header[1] < 0) {
    return absl::DataLossError(absl::StrCat("rank 0 sent an unknown ring command ", header[0]));
  }
  const absl::Span<float> params = model_->flat_parameters();
  RETURN_IF_ERROR(group_->Broadcast(params, 0));
  base_.assign(params.begin(), params.end());
  RETURN_IF_ERROR(RunSteps(base_, static_cast<int>(header[1]), nullptr).status());
  return command;
}

absl::Status ReplicaTrainer::SyncGroup() {
  if (group_ == nullptr) return absl::OkStatus();
  // Step counts as two floats each (exact below 2^24 apiece).
  constexpr int64_t kLow = int64_t{1} << 20;
  std::vector<float> counts = {static_cast<float>(step_ / kLow), static_cast<float>(step_ % kLow),
                               static_cast<float>(optimizer_->steps() / kLow),
                               static_cast<float>(optimizer_->steps() % kLow)};
  RETURN_IF_ERROR(group_->Broadcast(absl::MakeSpan(counts), 0));
  step_ = static_cast<int64_t>(counts[0]) * kLow + static_cast<int64_t>(counts[1]);
  optimizer_->set_steps(static_cast<int64_t>(counts[2]) * kLow + static_cast<int64_t>(counts[3]));
  for (const OptimizerState& state : optimizer_->State()) {
    RETURN_IF_ERROR(group_->Broadcast(state.buffer->span(), 0));
  }
  return absl::OkStatus();
}

absl::StatusOr<RoundResult> ReplicaTrainer::RunSteps(absl::Span<const float> base, int steps,
                                                     const std::atomic<bool>* stop) {
  const absl::Span<float> params = model_->flat_parameters();
  const size_t n = params.size();
  const int ranks = group_ == nullptr ? 1 : group_->size();
  const int rank = group_ == nullptr ? 0 : group_->rank();
  const float base_lr = BaseLearningRate(spec_.optimizer());
  RoundResult result;
  double loss_sum = 0;
  Tensor images;
  std::vector<int32_t> labels;
  auto stopped = [&] { return stop != nullptr && stop->load(std::memory_order_relaxed); };
  for (int s = 0; s < steps && !result.preempted; ++s) {
    const int64_t batch = plan_->BatchSize(step_);
    // This rank's part of the step's batch (all of it, alone).
    const int64_t first = batch * rank / ranks, last = batch * (rank + 1) / ranks;
    std::fill(accumulated_.begin(), accumulated_.end(), 0.0f);
    for (int64_t begin = first; begin < last; begin += kMicroBatch) {
      if (stopped()) {
        result.preempted = true;
        break;
      }
      const int64_t end = std::min(last, begin + kMicroBatch);
      std::vector<int64_t> positions = plan_->Indices(step_, begin, end);
      for (int64_t& p : positions) p = shard_[p];
      GatherBatch(data_.train, positions, &images, &labels);
      const LossResult r = model_->ComputeGradients(images, labels, 1.f);
      accumulated_[n] += static_cast<float>(r.loss_sum);
      const absl::Span<const float> grads = model_->flat_gradients();
      for (size_t i = 0; i < n; ++i) accumulated_[i] += grads[i];
    }
    if (result.preempted) break;
    if (group_ != nullptr) RETURN_IF_ERROR(group_->AllReduce(absl::MakeSpan(accumulated_)));
    const float lr = LearningRateAt(spec_.lr_schedule(), base_lr, step_, total_steps_);
    optimizer_->Step(params, absl::MakeConstSpan(accumulated_).subspan(0, n), lr,
                     1.0f / static_cast<float>(batch));
    ++step_;
    ++result.steps_done;
    result.samples += batch;
    loss_sum += accumulated_[n];
  }
  result.mean_loss = result.samples > 0 ? static_cast<float>(loss_sum / result.samples) : 0;
  result.delta.resize(n);
  for (size_t i = 0; i < n; ++i) result.delta[i] = params[i] - base[i];
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
