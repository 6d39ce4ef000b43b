#include "worker/trainer.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/filesystem.h"
#include "base/status_macros.h"
#include "checkpoint/checkpoint.h"
#include "checkpoint/file_names.h"
#include "google/protobuf/util/time_util.h"
#include "kernels/lr_schedule.h"
#include "kernels/threads.h"
#include "spec/job_spec.h"

namespace nightshift {
namespace {

constexpr int64_t kEvalBatch = 1000;
// Smallest change of a rank's share of the batch that a rebalance acts on.
constexpr double kRebalanceThreshold = 0.04;
// Longest progress window under a progress_period, in steps.
constexpr int64_t kMaxProgressWindowSteps = 100000;

}  // namespace

absl::StatusOr<std::unique_ptr<Trainer>> Trainer::Create(const v1::JobSpec& spec,
                                                         TrainerOptions options) {
  if (absl::Status s = ValidateJobSpec(spec); !s.ok()) return s;
  std::unique_ptr<Trainer> t(new Trainer());
  t->spec_ = spec;
  t->options_ = std::move(options);
  t->clock_ = t->options_.clock ? t->options_.clock : &t->real_clock_;
  absl::StatusOr<DatasetSplits> data = LoadDataset(spec.dataset(), spec.seed());
  if (!data.ok()) return data.status();
  t->data_ = *std::move(data);
  if (t->data_.train.size() == 0) {
    return absl::FailedPreconditionError("dataset: the training split is empty");
  }
  absl::StatusOr<std::unique_ptr<Model>> model =
      Model::Create(spec.model(), t->data_.train.sample_shape, spec.seed());
  if (!model.ok()) return model.status();
  t->model_ = *std::move(model);
  if (t->data_.train.num_classes > t->model_->num_classes()) {
    return absl::FailedPreconditionError(
        absl::StrCat("dataset: labels go up to ", t->data_.train.num_classes - 1,
                     " but the model has only ", t->model_->num_classes(), " outputs"));
  }
  RETURN_IF_ERROR(t->BindStepMemory());  // a no-op unless the step is sharded
  absl::StatusOr<std::unique_ptr<Optimizer>> optimizer =
      MakeOptimizer(spec.optimizer(), t->model_->num_parameters());
  if (!optimizer.ok()) return optimizer.status();
  t->optimizer_ = *std::move(optimizer);
  t->plan_ =
      std::make_unique<BatchPlan>(t->data_.train.size(), spec.global_batch_size(), spec.seed());
  t->total_steps_ = TotalSteps(spec, t->data_.train.size());
  t->spec_hash_ = JobSpecHash(spec);
  if (!t->options_.resume_path.empty()) {
    absl::StatusOr<CheckpointMeta> meta = LoadCheckpoint(t->options_.resume_path, t->spec_hash_,
                                                         t->model_.get(), t->optimizer_.get());
    if (!meta.ok()) return meta.status();
    t->start_step_ = meta->step;
  }
  if (!t->options_.out_dir.empty()) {
    RETURN_IF_ERROR(MakeDirectories(t->options_.out_dir));
  }
  return t;
}

absl::StatusOr<Trainer::Evaluation> Trainer::Evaluate() {
  const Dataset& test = data_.test;
  if (test.size() == 0) return Evaluation{0, 0};
  Tensor images;
  std::vector<int32_t> labels;
  double loss = 0;
  int64_t correct = 0;
  std::vector<int64_t> indices;
  // Each rank evaluates an equal share of the test set; the sums meet in
  // one all-reduce, so every rank ends with the same figures.
  const auto [first, last] =
      SplitBatch(test.size(), std::vector<double>(world_size(), 1.0))[rank()];
  for (int64_t begin = first; begin < last; begin += kEvalBatch) {
    const int64_t end = std::min(last, begin + kEvalBatch);
    indices.resize(end - begin);
    std::iota(indices.begin(), indices.end(), begin);
    GatherBatch(test, indices, &images, &labels);
    LossResult r = model_->Evaluate(images, labels);
    loss += r.loss_sum;
    correct += r.correct;
  }
  float sums[2] = {static_cast<float>(loss), static_cast<float>(correct)};
  RETURN_IF_ERROR(SumOverRanks(absl::MakeSpan(sums, 2)));
  return Evaluation{sums[0] / test.size(), sums[1] / test.size()};
}

absl::StatusOr<std::string> Trainer::Checkpoint(int64_t next_step) {
  RETURN_IF_ERROR(GatherOptimizerState());  // on every rank
  if (rank() != 0 || options_.out_dir.empty()) return std::string();
  const std::string path = PathIn(options_.out_dir, CheckpointFileName(next_step));
  CheckpointMeta meta{next_step, plan_->Position(std::max<int64_t>(0, next_step - 1)).epoch,
                      spec_.seed(), spec_hash_};
  RETURN_IF_ERROR(SaveCheckpoint(path, *model_, *optimizer_, meta));
  return path;
}

absl::Status Trainer::BindStepMemory() {
  if (!sharded_step()) return absl::OkStatus();
  // Ranks on one machine update in each other's memory (step 4).
  absl::StatusOr<collective::Communicator::StepBuffers> shared =
      options_.data_parallel->communicator->MapStepBuffers(model_->num_parameters());
  if (shared.ok()) {
    model_->MoveFlatBuffersTo(shared->parameters, shared->gradients);
    return absl::OkStatus();
  }
  return absl::IsUnimplemented(shared.status()) ? absl::OkStatus() : shared.status();
}

void Trainer::MoveToOwnMemory() {
  if (own_parameters_.size() != model_->num_parameters()) {
    own_parameters_ = Tensor({model_->num_parameters()});
    own_gradients_ = Tensor({model_->num_parameters()});
  }
  model_->MoveFlatBuffersTo(own_parameters_.span(), own_gradients_.span());
}

// 8.
absl::Status Trainer::Commit(int64_t next_step) {
  RETURN_IF_ERROR(GatherOptimizerState());
  if (commit_.step != next_step) std::swap(previous_commit_, commit_);  // reuses its buffers
  absl::Span<const float> params = model_->flat_parameters();
  commit_.parameters.assign(params.begin(), params.end());
  const std::vector<OptimizerState> state = optimizer_->State();
  commit_.optimizer_state.resize(state.size());
  for (size_t i = 0; i < state.size(); ++i) {
    absl::Span<const float> b = state[i].buffer->span();
    commit_.optimizer_state[i].assign(b.begin(), b.end());
  }
  commit_.optimizer_steps = optimizer_->steps();
  commit_.step = next_step;
  return absl::OkStatus();
}

namespace {

// Steps travel through float collectives as two exact floats (24 bits each).
void PutStep(int64_t step, float* out) {
  out[0] = static_cast<float>(step >> 24);
  out[1] = static_cast<float>(step & 0xffffff);
}
int64_t GetStep(const float* in) {
  // (A multiplication: the high part is -1 for "no commit", and shifting
  // a negative value left is undefined.)
  return static_cast<int64_t>(in[0]) * (int64_t{1} << 24) + static_cast<int64_t>(in[1]);
}

}  // namespace

absl::Status Trainer::Regroup(DataParallel group) {
  if (group.communicator == nullptr) {
    return absl::InvalidArgumentError("regroup: no communicator");
  }
  // Out of the failed group's memory first (it goes with that group).
  MoveToOwnMemory();
  options_.data_parallel = std::move(group);
  collective::Communicator* comm = options_.data_parallel->communicator;
  // Which commits each rank holds: its newest and the one before.
  float mine[4];
  PutStep(commit_.step, mine);
  PutStep(previous_commit_.step, mine + 2);
  std::vector<float> all(4 * world_size());
  RETURN_IF_ERROR(comm->AllGather(absl::MakeConstSpan(mine, 4), absl::MakeSpan(all)));
  // The group resumes at the oldest newest commit among the ranks that hold
  // one (a loss during a commit's gather can leave them one commit apart);
  // the lowest rank holding it gives it to all.
  int64_t step = -1;
  for (int r = 0; r < world_size(); ++r) {
    const int64_t newest = GetStep(&all[4 * r]);
    if (newest >= 0 && (step < 0 || newest < step)) step = newest;
  }
  if (step < 0) {
    return absl::FailedPreconditionError(
        "regroup: no rank of the new group holds a commit point to resume from");
  }
  int donor = -1;
  for (int r = 0; r < world_size() && donor < 0; ++r) {
    if (GetStep(&all[4 * r]) == step || GetStep(&all[4 * r + 2]) == step) donor = r;
  }
  const CommitPoint* held = step == commit_.step            ? &commit_
                            : step == previous_commit_.step ? &previous_commit_
                                                            : nullptr;
  CommitPoint point;
  if (rank() == donor) {
    point = *held;
  } else {
    point.parameters.resize(model_->num_parameters());
    for (const OptimizerState& s : optimizer_->State()) {
      point.optimizer_state.emplace_back(s.buffer->size());
    }
  }
  float optimizer_steps[2];
  PutStep(point.optimizer_steps, optimizer_steps);
  RETURN_IF_ERROR(comm->Broadcast(absl::MakeSpan(point.parameters), donor));
  for (std::vector<float>& buffer : point.optimizer_state) {
    RETURN_IF_ERROR(comm->Broadcast(absl::MakeSpan(buffer), donor));
  }
  RETURN_IF_ERROR(comm->Broadcast(absl::MakeSpan(optimizer_steps, 2), donor));
  point.optimizer_steps = GetStep(optimizer_steps);
  point.step = step;

  RETURN_IF_ERROR(BindStepMemory());
  absl::Span<float> params = model_->flat_parameters();
  std::copy(point.parameters.begin(), point.parameters.end(), params.begin());
  const std::vector<OptimizerState> state = optimizer_->State();
  for (size_t i = 0; i < state.size(); ++i) {
    std::copy(point.optimizer_state[i].begin(), point.optimizer_state[i].end(),
              state[i].buffer->span().begin());
  }
  optimizer_->set_steps(point.optimizer_steps);
  start_step_ = step;
  // Any newer commit belongs to a trajectory this group will not take.
  commit_ = std::move(point);
  previous_commit_.step = -1;
  return absl::OkStatus();
}

int Trainer::rank() const {
  return options_.data_parallel ? options_.data_parallel->communicator->rank() : 0;
}

int Trainer::world_size() const {
  return options_.data_parallel ? options_.data_parallel->communicator->size() : 1;
}

absl::Status Trainer::SumOverRanks(absl::Span<float> values) {
  if (!options_.data_parallel) return absl::OkStatus();
  return options_.data_parallel->communicator->AllReduce(values);
}

bool Trainer::sharded_step() const {
  return options_.data_parallel && options_.data_parallel->sharded_optimizer_step &&
         world_size() > 1;
}

absl::Status Trainer::SumAndUpdate(float lr, int64_t batch) {
  absl::Span<float> params = model_->flat_parameters();
  absl::Span<float> grads = model_->flat_gradients();
  // The 1/B of the global batch's mean is applied inside the update,
  // saving a pass over the gradients.
  const float scale = 1.f / static_cast<float>(batch);
  if (!sharded_step()) {
    RETURN_IF_ERROR(SumOverRanks(grads));
    optimizer_->Step(params, grads, lr, scale);
    return absl::OkStatus();
  }
  optimizer_->BeginStep();
  return options_.data_parallel->communicator->AllReduceShardedUpdate(
      grads, params, [&](int64_t begin, int64_t end) {
        optimizer_->Update(params, grads, lr, scale, begin, end);
      });
}

absl::Status Trainer::GatherOptimizerState() {
  if (!sharded_step()) return absl::OkStatus();
  for (const OptimizerState& state : optimizer_->State()) {
    RETURN_IF_ERROR(options_.data_parallel->communicator->GatherFromOwners(state.buffer->span()));
  }
  return absl::OkStatus();
}

absl::Status Trainer::Rebalance(double my_samples_per_second, std::vector<double>* weights) {
  const int n = world_size();
  const float mine = static_cast<float>(my_samples_per_second);
  std::vector<float> rates(n);
  RETURN_IF_ERROR(options_.data_parallel->communicator->AllGather(absl::MakeConstSpan(&mine, 1),
                                                                  absl::MakeSpan(rates)));
  double total = 0;
  for (float r : rates) total += r;
  if (!(total > 0)) return absl::OkStatus();  // nothing measured: keep the split
  // Every rank keeps at least 2% of the mean share, so a slow rank still
  // measures a rate at the next rebalance.
  std::vector<double> proposed(n);
  double proposed_total = 0, current_total = 0;
  for (int i = 0; i < n; ++i) {
    proposed[i] = std::max<double>(rates[i], 0.02 * total / n);
    proposed_total += proposed[i];
    current_total += (*weights)[i];
  }
  // Hysteresis: measurements jitter by a few percent, and every new slice
  // size costs new oneDNN primitives and an uneven step; move only when
  // some rank's share changes by more than kRebalanceThreshold.
  bool move = false;
  for (int i = 0; i < n; ++i) {
    move |= std::abs(proposed[i] / proposed_total - (*weights)[i] / current_total) >
            kRebalanceThreshold;
  }
  if (move) *weights = std::move(proposed);
  return absl::OkStatus();
}

absl::StatusOr<TrainResult> Trainer::Run() {
  SetComputeThreads(options_.compute_threads);
  const float base_lr = BaseLearningRate(spec_.optimizer());
  const int me = rank(), n = world_size();
  std::vector<double> weights(n, 1.0);
  int64_t rebalance_every = 0;
  if (options_.data_parallel) {
    if (!options_.data_parallel->shard_weights.empty()) {
      if (static_cast<int>(options_.data_parallel->shard_weights.size()) != n) {
        return absl::InvalidArgumentError(absl::StrCat("shard_weights has ",
                                                       options_.data_parallel->shard_weights.size(),
                                                       " entries for ", n, " ranks"));
      }
      weights = options_.data_parallel->shard_weights;
    }
    rebalance_every = options_.data_parallel->rebalance_interval_steps;
  }
  Tensor images;
  std::vector<int32_t> labels;
  v1::Progress progress;
  progress.set_total_steps(total_steps_);
  progress.set_workers(n);
  // Window sums for progress: loss, correct, samples, seconds, and the
  // ranks asking to yield (summed over ranks at report time).
  float window[5] = {0, 0, 0, 0, 0};
  absl::Time window_start = clock_->Now();
  int64_t window_steps = std::max<int64_t>(1, options_.progress_interval_steps);
  // At multiples of the interval, also after a resume.
  int64_t next_report_step = (start_step_ / window_steps + 1) * window_steps;
  absl::Duration compute_time;  // steps 1–2 since the last rebalance
  int64_t computed_samples = 0;
  Evaluation eval{0, 0};
  bool evaluated_at_end = false;
  int64_t checkpointed_step = -1;       // the last step Checkpoint() saved
  double seconds_since_checkpoint = 0;  // the ranks' mean, all-reduced: equal on all

  // 8. Only a group member can lose peers and regroup.
  const bool commits = options_.data_parallel.has_value();
  int64_t commit_count = 0;
  absl::Duration commit_time;
  auto commit = [&](int64_t next_step) -> absl::Status {
    const absl::Time start = clock_->Now();
    RETURN_IF_ERROR(Commit(next_step));
    commit_time += clock_->Now() - start;
    ++commit_count;
    return absl::OkStatus();
  };
  if (commits) RETURN_IF_ERROR(commit(start_step_));
  auto report = [&](const std::function<void(const v1::Progress&)>& to) {
    if (to && me == 0) {
      *progress.mutable_time() = google::protobuf::util::TimeUtil::NanosecondsToTimestamp(
          absl::ToUnixNanos(clock_->Now()));
      to(progress);
    }
  };

  for (int64_t step = start_step_; step < total_steps_; ++step) {
    if (options_.cancelled != nullptr && options_.cancelled->load()) {
      return absl::CancelledError(absl::StrCat("cancelled before step ", step));
    }
    // 1–2. This rank's slice of the global batch; its gradient sum.
    const int64_t batch = plan_->BatchSize(step);
    const auto [begin, end] = SplitBatch(batch, weights)[me];
    const absl::Time compute_start = clock_->Now();
    GatherBatch(data_.train, plan_->Indices(step, begin, end), &images, &labels);
    LossResult r = model_->ComputeGradients(images, labels, 1.f);
    if (options_.simulated_slowdown > 1) {
      absl::SleepFor((clock_->Now() - compute_start) * (options_.simulated_slowdown - 1));
    }
    compute_time += clock_->Now() - compute_start;
    computed_samples += end - begin;
    // 3–4. Sum over ranks; one optimizer step at the scheduled rate.
    const float lr = LearningRateAt(spec_.lr_schedule(), base_lr, step, total_steps_);
    RETURN_IF_ERROR(SumAndUpdate(lr, batch));

    window[0] += static_cast<float>(r.loss_sum);
    window[1] += static_cast<float>(r.correct);
    window[2] += static_cast<float>(end - begin);
    const BatchPosition pos = plan_->Position(step);
    const bool last = step + 1 == total_steps_;
    progress.set_step(step + 1);
    progress.set_epoch(static_cast<int32_t>(pos.epoch));
    progress.set_learning_rate(lr);

    // 5. Rebalance.
    if (rebalance_every > 0 && (step + 1) % rebalance_every == 0 && !last) {
      const double seconds = absl::ToDoubleSeconds(compute_time);
      RETURN_IF_ERROR(Rebalance(seconds > 0 ? computed_samples / seconds : 0, &weights));
      compute_time = absl::ZeroDuration();
      computed_samples = 0;
      if (options_.on_rebalance && me == 0) options_.on_rebalance(step + 1, weights);
    }
    // 6. Progress.
    if (step + 1 == next_report_step || last) {
      const absl::Time now = clock_->Now();
      window[3] = static_cast<float>(absl::ToDoubleSeconds(now - window_start));
      window[4] = options_.yield_requested != nullptr && options_.yield_requested->load() ? 1 : 0;
      RETURN_IF_ERROR(SumOverRanks(absl::MakeSpan(window, commits ? 5 : 4)));
      const double seconds = window[3] / n;  // the ranks' mean
      progress.set_loss(window[2] > 0 ? window[0] / window[2] : 0);
      progress.set_train_accuracy(window[2] > 0 ? window[1] / window[2] : 0);
      progress.set_samples_per_second(seconds > 0 ? window[2] / seconds : 0);
      report(options_.on_progress);
      if (options_.progress_period > absl::ZeroDuration() && seconds > 0) {
        const double scale = absl::ToDoubleSeconds(options_.progress_period) / seconds;
        window_steps = std::clamp<int64_t>(std::llround(static_cast<double>(window_steps) * scale),
                                           1, kMaxProgressWindowSteps);
      }
      next_report_step = step + 1 + window_steps;
      const bool yield = window[4] > 0;
      window[0] = window[1] = window[2] = window[3] = window[4] = 0;
      window_start = now;
      if (commits && !last) RETURN_IF_ERROR(commit(step + 1));  // 8.
      seconds_since_checkpoint += seconds;
      if (commits && !last && options_.checkpoint_period > absl::ZeroDuration() &&
          seconds_since_checkpoint >= absl::ToDoubleSeconds(options_.checkpoint_period)) {
        ASSIGN_OR_RETURN(const std::string path, Checkpoint(step + 1));
        checkpointed_step = step + 1;
        seconds_since_checkpoint = 0;
        if (!path.empty() && options_.on_checkpoint) options_.on_checkpoint(step + 1, path);
      }
      if (commits && !last && yield) {  // 9.
        TrainResult yielded;
        yielded.steps = step + 1;
        yielded.yielded = true;
        yielded.commits = commit_count;
        yielded.commit_time = commit_time;
        return yielded;
      }
    }
    // 7. Evaluation, shared by all ranks; checkpoints, on rank 0.
    const bool epoch_end = pos.step_in_epoch + 1 == plan_->steps_per_epoch();
    const bool eval_due =
        spec_.eval_interval_steps() > 0 ? (step + 1) % spec_.eval_interval_steps() == 0 : epoch_end;
    if (eval_due || last) {
      const absl::Time eval_start = clock_->Now();
      ASSIGN_OR_RETURN(eval, Evaluate());
      evaluated_at_end = last;
      progress.set_test_accuracy(eval.accuracy);
      progress.set_test_loss(eval.loss);
      report(options_.on_evaluation);
      // Evaluation time is not training time: move the window's start on.
      window_start += clock_->Now() - eval_start;
    }
    if (spec_.checkpoint_interval_steps() > 0 && checkpointed_step != step + 1 &&
        (step + 1) % spec_.checkpoint_interval_steps() == 0) {
      ASSIGN_OR_RETURN(const std::string path, Checkpoint(step + 1));
      checkpointed_step = step + 1;
      seconds_since_checkpoint = 0;
      if (!path.empty() && options_.on_checkpoint) options_.on_checkpoint(step + 1, path);
    }
  }
  if (!evaluated_at_end) {  // resumed at the very end
    ASSIGN_OR_RETURN(eval, Evaluate());
  }

  // The final checkpoint, unless the last step just wrote it.
  if (checkpointed_step != total_steps_) RETURN_IF_ERROR(Checkpoint(total_steps_).status());
  TrainResult result;
  result.steps = total_steps_;
  result.test_accuracy = eval.accuracy;
  result.test_loss = eval.loss;
  result.commits = commit_count;
  result.commit_time = commit_time;
  if (me == 0 && !options_.out_dir.empty()) {
    result.model_path = PathIn(options_.out_dir, kModelFileName);
    CheckpointMeta meta{total_steps_, plan_->Position(total_steps_ - 1).epoch, spec_.seed(),
                        spec_hash_};
    const ModelDescription description = DescribeModel(spec_, model_->input_shape());
    if (absl::Status s = SaveModelParameters(result.model_path, *model_, meta, &description);
        !s.ok()) {
      return s;
    }
  }
  return result;
}

}  // namespace nightshift
