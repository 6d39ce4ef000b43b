// KeeperRoundService (test and benchmark only): the coordinator's three
// round calls served in process by a real RoundKeeper, as the
// coordinator's handlers serve them (coordinator/diloco_jobs.cc) minus
// RPC, leases and the job store: JoinRound → Join (after the last round:
// the evaluation ticket), FetchParameters → Fetch, PushUpdate → Push and,
// when the push completes, MaybeClose at the service's clock. The clock
// is the caller's: set_now() moves it (deadlines are tested that way).
//
// With it the agent's real RoundClient and ReplicaTrainer train a diloco
// job with many replicas in one process (bench/diloco_bench.cc, the
// poisoned-replica test, round_client_test behind a cut link), each
// closed round's RoundInfo kept in rounds().
//
// Not thread-safe, as the keeper is not.
#ifndef NIGHTSHIFT_WORKER_EDGE_KEEPER_ROUND_SERVICE_H_
#define NIGHTSHIFT_WORKER_EDGE_KEEPER_ROUND_SERVICE_H_

#include <vector>

#include "coordinator/rounds/round_keeper.h"
#include "worker/coordinator_client.h"

namespace nightshift {

class KeeperRoundService : public RoundService {
 public:
  KeeperRoundService(coordinator::rounds::RoundKeeper* keeper, absl::Time now)
      : keeper_(keeper), now_(now) {}

  absl::StatusOr<v1::RoundTicket> JoinRound(const v1::JoinRoundRequest& request) override {
    if (keeper_->done()) return keeper_->EvaluationTicket();
    return keeper_->Join(request.worker_id(), now_);
  }
  absl::StatusOr<v1::FetchParametersResponse> FetchParameters(
      const v1::FetchParametersRequest& request) override {
    return keeper_->Fetch(request.worker_id(), request);
  }
  absl::StatusOr<v1::PushUpdateResponse> PushUpdate(const v1::PushUpdateRequest& request) override {
    absl::StatusOr<v1::PushUpdateResponse> out = keeper_->Push(request.worker_id(), request);
    if (out.ok() && out->complete()) Close();
    return out;
  }

  // Moves the clock and closes a round whose deadline passed.
  void set_now(absl::Time now) {
    now_ = now;
    Close();
  }
  const std::vector<v1::RoundInfo>& rounds() const { return rounds_; }

 private:
  void Close() {
    if (std::optional<v1::RoundInfo> closed = keeper_->MaybeClose(now_)) {
      rounds_.push_back(*std::move(closed));
    }
  }

  coordinator::rounds::RoundKeeper* keeper_;
  absl::Time now_;
  std::vector<v1::RoundInfo> rounds_;
};

}  // namespace nightshift

#endif  // NIGHTSHIFT_WORKER_EDGE_KEEPER_ROUND_SERVICE_H_
