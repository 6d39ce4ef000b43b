#include "tests/in_process_diloco.h"

#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "spec/diloco.h"
#include "spec/tensors.h"

namespace nightshift {

using coordinator::rounds::RoundKeeper;
using coordinator::rounds::RoundSnapshot;

absl::StatusOr<std::unique_ptr<InProcessDiLoCo>> InProcessDiLoCo::Create(const v1::JobSpec& spec,
                                                                         Attack attack,
                                                                         int poisoned) {
  if (!spec.sync().has_diloco()) return absl::InvalidArgumentError("sync.diloco is not set");
  const DiLoCoSettings settings = ResolveDiLoCo(spec);
  const int replicas = settings.shard_count;
  if (attack == Attack::kNone) poisoned = 0;
  if (poisoned < 0 || poisoned >= replicas) {
    return absl::InvalidArgumentError(
        absl::StrCat("poisoned replicas: ", poisoned, ", expected 0..", replicas - 1));
  }
  std::unique_ptr<InProcessDiLoCo> job(new InProcessDiLoCo());
  job->clock_ = absl::FromUnixSeconds(1'800'000'000);
  job->deadline_seconds_ = settings.round_deadline_seconds;
  absl::StatusOr<std::vector<float>> init = InitialParameters(spec);
  if (!init.ok()) return init.status();
  RoundSnapshot start;
  start.parameters = *std::move(init);
  absl::StatusOr<std::unique_ptr<RoundKeeper>> keeper =
      RoundKeeper::Create(spec, std::move(start), job->clock_);
  if (!keeper.ok()) return keeper.status();
  job->keeper_ = *std::move(keeper);
  job->service_ = std::make_unique<KeeperRoundService>(job->keeper_.get(), job->clock_);

  std::vector<std::string> names;
  std::set<std::string> attacked;
  for (int i = 0; i < replicas; ++i) {
    names.push_back(absl::StrCat("replica-", i));
    if (i >= replicas - poisoned) attacked.insert(names.back());
    absl::StatusOr<std::unique_ptr<ReplicaTrainer>> trainer =
        ReplicaTrainer::Create(spec, job->keeper_->ShardFor(names.back()));
    if (!trainer.ok()) return trainer.status();
    job->trainers_.push_back(*std::move(trainer));
  }
  job->poisoner_ = std::make_unique<PoisonedRoundService>(
      job->service_.get(), attack, replicas, std::move(attacked), job->num_parameters());
  for (int i = 0; i < replicas; ++i) {
    job->clients_.push_back(std::make_unique<RoundClient>(
        spec, job->poisoner_.get(), job->trainers_[i].get(), RoundClientOptions{names[i], "job"}));
  }
  return job;
}

absl::StatusOr<InProcessDiLoCoResult> InProcessDiLoCo::Run(bool evaluate_each_round,
                                                           const RoundCallback& on_round) {
  InProcessDiLoCoResult result;
  while (!keeper_->done()) {
    const int64_t before = keeper_->round();
    for (size_t i = 0; i < clients_.size() && keeper_->round() == before; ++i) {
      absl::StatusOr<RoundOutcome> out = clients_[i]->RunOnce();
      if (!out.ok()) return out.status();
      result.bytes_fetched += out->bytes_fetched;
      result.bytes_pushed += out->bytes_pushed;
    }
    if (keeper_->round() == before) {  // every update refused: the deadline reopens it
      clock_ += absl::Seconds(deadline_seconds_ + 1);
      service_->set_now(clock_);
      continue;
    }
    ++result.rounds;
    float accuracy = 0;
    if (evaluate_each_round || keeper_->done()) {
      absl::StatusOr<float> acc = trainers_[0]->TestAccuracy(keeper_->parameters());
      if (!acc.ok()) return acc.status();
      accuracy = *acc;
    }
    if (on_round) {
      on_round(keeper_->round(), (result.bytes_fetched + result.bytes_pushed) / replicas(),
               accuracy);
    }
    result.test_accuracy = accuracy;
  }
  result.history = service_->rounds();
  for (const v1::RoundInfo& round : result.history) result.refused += round.refused_size();
  return result;
}

}  // namespace nightshift
