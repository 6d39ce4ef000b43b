#include "worker/trainer.h"

#include <sys/stat.h>

#include <algorithm>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "google/protobuf/util/time_util.h"
#include "kernels/checkpoint.h"
#include "kernels/job_spec.h"
#include "kernels/lr_schedule.h"

namespace nightshift {
namespace {

constexpr int64_t kEvalBatch = 1000;

absl::Status MakeDirs(const std::string& dir) {
  std::string path;
  for (size_t i = 0; i <= dir.size(); ++i) {
    if (i == dir.size() || (dir[i] == '/' && i > 0)) {
      path = dir.substr(0, i);
      if (mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) {
        return absl::FailedPreconditionError(
            absl::StrCat(path, ": cannot create directory: ", strerror(errno)));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Trainer>> Trainer::Create(
    const v1::JobSpec& spec, TrainerOptions options) {
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
    return absl::FailedPreconditionError(absl::StrCat(
        "dataset: labels go up to ", t->data_.train.num_classes - 1,
        " but the model has only ", t->model_->num_classes(), " outputs"));
  }
  absl::StatusOr<std::unique_ptr<Optimizer>> optimizer =
      MakeOptimizer(spec.optimizer(), t->model_->num_parameters());
  if (!optimizer.ok()) return optimizer.status();
  t->optimizer_ = *std::move(optimizer);
  t->plan_ = std::make_unique<BatchPlan>(t->data_.train.size(),
                                         spec.global_batch_size(), spec.seed());
  t->total_steps_ = TotalSteps(spec, t->data_.train.size());
  t->spec_hash_ = JobSpecHash(spec);
  if (!t->options_.resume_path.empty()) {
    absl::StatusOr<CheckpointMeta> meta = LoadCheckpoint(
        t->options_.resume_path, t->spec_hash_, t->model_.get(), t->optimizer_.get());
    if (!meta.ok()) return meta.status();
    t->start_step_ = meta->step;
  }
  if (!t->options_.out_dir.empty()) {
    if (absl::Status s = MakeDirs(t->options_.out_dir); !s.ok()) return s;
  }
  return t;
}

Trainer::Evaluation Trainer::Evaluate() {
  const Dataset& test = data_.test;
  if (test.size() == 0) return {0, 0};
  Tensor images;
  std::vector<int32_t> labels;
  double loss = 0;
  int64_t correct = 0;
  std::vector<int64_t> indices;
  for (int64_t begin = 0; begin < test.size(); begin += kEvalBatch) {
    const int64_t end = std::min(test.size(), begin + kEvalBatch);
    indices.resize(end - begin);
    std::iota(indices.begin(), indices.end(), begin);
    GatherBatch(test, indices, &images, &labels);
    LossResult r = model_->Evaluate(images, labels);
    loss += r.loss_sum;
    correct += r.correct;
  }
  return {static_cast<float>(loss / test.size()),
          static_cast<float>(correct) / test.size()};
}

absl::Status Trainer::WriteCheckpoint(int64_t next_step, const std::string& name) {
  if (options_.out_dir.empty()) return absl::OkStatus();
  CheckpointMeta meta{next_step, plan_->Position(std::max<int64_t>(0, next_step - 1)).epoch,
                      spec_.seed(), spec_hash_};
  return SaveCheckpoint(absl::StrCat(options_.out_dir, "/", name), *model_,
                        *optimizer_, meta);
}

absl::StatusOr<TrainResult> Trainer::Run() {
  const float base_lr = BaseLearningRate(spec_.optimizer());
  Tensor images;
  std::vector<int32_t> labels;
  v1::Progress progress;
  progress.set_total_steps(total_steps_);
  progress.set_workers(1);
  double window_loss = 0;
  int64_t window_correct = 0, window_samples = 0;
  absl::Time window_start = clock_->Now();
  Evaluation eval{0, 0};
  bool evaluated_at_end = false;

  auto report = [&](const std::function<void(const v1::Progress&)>& to) {
    if (to) {
      *progress.mutable_time() = google::protobuf::util::TimeUtil::NanosecondsToTimestamp(
          absl::ToUnixNanos(clock_->Now()));
      to(progress);
    }
  };

  for (int64_t step = start_step_; step < total_steps_; ++step) {
    // 1–2. The step's global batch, its mean-loss gradient.
    const int64_t batch = plan_->BatchSize(step);
    GatherBatch(data_.train, plan_->Indices(step, 0, batch), &images, &labels);
    LossResult r = model_->ComputeGradients(images, labels, 1.f / batch);
    // 3. One optimizer step at the scheduled rate.
    const float lr = LearningRateAt(spec_.lr_schedule(), base_lr, step, total_steps_);
    optimizer_->Step(model_->flat_parameters(), model_->flat_gradients(), lr);

    window_loss += r.loss_sum;
    window_correct += r.correct;
    window_samples += batch;
    const BatchPosition pos = plan_->Position(step);
    const bool last = step + 1 == total_steps_;
    progress.set_step(step + 1);
    progress.set_epoch(static_cast<int32_t>(pos.epoch));
    progress.set_learning_rate(lr);

    // 4. Progress.
    if ((step + 1) % options_.progress_interval_steps == 0 || last) {
      const absl::Time now = clock_->Now();
      const double seconds = absl::ToDoubleSeconds(now - window_start);
      progress.set_loss(static_cast<float>(window_loss / window_samples));
      progress.set_train_accuracy(static_cast<float>(window_correct) / window_samples);
      progress.set_samples_per_second(seconds > 0 ? window_samples / seconds : 0);
      report(options_.on_progress);
      window_loss = 0;
      window_correct = window_samples = 0;
      window_start = now;
    }
    // 5. Evaluation.
    const bool epoch_end = pos.step_in_epoch + 1 == plan_->steps_per_epoch();
    const bool eval_due = spec_.eval_interval_steps() > 0
                              ? (step + 1) % spec_.eval_interval_steps() == 0
                              : epoch_end;
    if (eval_due || last) {
      const absl::Time eval_start = clock_->Now();
      eval = Evaluate();
      evaluated_at_end = last;
      progress.set_test_accuracy(eval.accuracy);
      progress.set_test_loss(eval.loss);
      report(options_.on_evaluation);
      // Evaluation time is not training time: move the window's start on.
      window_start += clock_->Now() - eval_start;
    }
    // 6. Checkpoints.
    if (spec_.checkpoint_interval_steps() > 0 &&
        (step + 1) % spec_.checkpoint_interval_steps() == 0) {
      if (absl::Status s = WriteCheckpoint(step + 1, absl::StrFormat(
              "checkpoint-step-%07d.safetensors", step + 1)); !s.ok()) {
        return s;
      }
    }
  }
  if (!evaluated_at_end) eval = Evaluate();  // resumed at the very end

  TrainResult result;
  result.steps = total_steps_;
  result.test_accuracy = eval.accuracy;
  result.test_loss = eval.loss;
  if (!options_.out_dir.empty()) {
    if (absl::Status s = WriteCheckpoint(total_steps_, absl::StrFormat(
            "checkpoint-step-%07d.safetensors", total_steps_)); !s.ok()) {
      return s;
    }
    result.model_path = absl::StrCat(options_.out_dir, "/model.safetensors");
    CheckpointMeta meta{total_steps_, plan_->Position(total_steps_ - 1).epoch,
                        spec_.seed(), spec_hash_};
    if (absl::Status s = SaveModelParameters(result.model_path, *model_, meta); !s.ok()) {
      return s;
    }
  }
  return result;
}

}  // namespace nightshift
