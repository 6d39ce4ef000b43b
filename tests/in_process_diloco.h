// InProcessDiLoCo (test and benchmark only): one diloco job trained in
// this process by the real parts — the coordinator's RoundKeeper behind
// KeeperRoundService, and for each of the spec's replicas (one per shard,
// sync.diloco.shards) the agent's ReplicaTrainer and RoundClient — one
// replica after another in each round, optionally through
// PoisonedRoundService with the last `poisoned` replicas attacked. The
// spec's quorum should be its replica count with no over-selection, so
// that every replica trains every round.
//
// A round whose updates screening refuses every one of is reopened by
// moving the service's clock past the deadline, as time would.
//
// Not thread-safe.
#ifndef NIGHTSHIFT_TESTS_IN_PROCESS_DILOCO_H_
#define NIGHTSHIFT_TESTS_IN_PROCESS_DILOCO_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "coordinator/rounds/round_keeper.h"
#include "nightshift/v1/job.pb.h"
#include "tests/poisoned_round_service.h"
#include "worker/edge/keeper_round_service.h"
#include "worker/edge/replica_trainer.h"
#include "worker/edge/round_client.h"

namespace nightshift {

struct InProcessDiLoCoResult {
  int rounds = 0;
  int64_t bytes_fetched = 0, bytes_pushed = 0;  // summed over the replicas
  int refused = 0;                              // updates, over all rounds
  float test_accuracy = 0;                      // of the final parameters
  std::vector<v1::RoundInfo> history;
};

class InProcessDiLoCo {
 public:
  static absl::StatusOr<std::unique_ptr<InProcessDiLoCo>> Create(const v1::JobSpec& spec,
                                                                 Attack attack = Attack::kNone,
                                                                 int poisoned = 0);

  // After each closed round: its number (rounds done), the bytes each
  // replica fetched and pushed so far on average, and the test accuracy
  // of the new parameters (measured only when `evaluate_each_round`).
  using RoundCallback = std::function<void(int64_t round, int64_t bytes_per_replica, float acc)>;
  absl::StatusOr<InProcessDiLoCoResult> Run(bool evaluate_each_round = false,
                                            const RoundCallback& on_round = nullptr);

  int replicas() const { return static_cast<int>(clients_.size()); }
  int64_t num_parameters() const { return trainers_[0]->num_parameters(); }
  int attacks_sent() const { return poisoner_->attacks_sent(); }

 private:
  InProcessDiLoCo() = default;

  absl::Time clock_;
  int deadline_seconds_ = 0;
  std::unique_ptr<coordinator::rounds::RoundKeeper> keeper_;
  std::unique_ptr<KeeperRoundService> service_;
  std::unique_ptr<PoisonedRoundService> poisoner_;
  std::vector<std::unique_ptr<ReplicaTrainer>> trainers_;
  std::vector<std::unique_ptr<RoundClient>> clients_;
};

}  // namespace nightshift

#endif  // NIGHTSHIFT_TESTS_IN_PROCESS_DILOCO_H_
