// PoisonedRoundService (test and benchmark only, never a production
// flag): a RoundService in front of the real one that turns the updates
// of chosen replicas into attacks, so tests and bench/diloco_bench.cc
// show what robust aggregation (coordinator/rounds/aggregation.h) holds
// against. Joins and fetches pass through; a poisoned replica's push
// chunks are held until its update is complete, then the decoded delta
// Δ is replaced and sent on in one chunk:
//   kSignFlip  −Δ
//   kScale100  100·Δ
//   kNaN       Δ with every 16th value NaN (sent as float32, so the NaN
//              reaches the coordinator's screening)
//   kALIE      "A Little Is Enough" (Baruch, Baruch & Goldberg, NeurIPS
//              2019): μ − z·σ per coordinate over the honest updates of
//              the same round (the attacker sees them: its replicas push
//              last), z = Φ⁻¹((n − s)/n), s = ⌊n/2 + 1⌋ − m, for n
//              replicas of which m are poisoned. With no honest update
//              seen yet it sends −Δ.
// Honest updates pass through untouched (and are remembered per round
// for ALIE).
//
// Not thread-safe.
#ifndef NIGHTSHIFT_TESTS_POISONED_ROUND_SERVICE_H_
#define NIGHTSHIFT_TESTS_POISONED_ROUND_SERVICE_H_

#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/coordinator_client.h"

namespace nightshift {

enum class Attack { kNone, kSignFlip, kScale100, kNaN, kALIE };

// "none", "sign_flip", "scale100", "nan", "alie"; INVALID_ARGUMENT otherwise.
absl::StatusOr<Attack> ParseAttack(const std::string& name);
const char* AttackName(Attack attack);

class PoisonedRoundService : public RoundService {
 public:
  // `replicas`: how many replicas the job has (ALIE's n); `poisoned`: the
  // worker ids whose updates are attacked; `num_parameters`: the model's.
  PoisonedRoundService(RoundService* inner, Attack attack, int replicas,
                       std::set<std::string> poisoned, size_t num_parameters);

  absl::StatusOr<v1::RoundTicket> JoinRound(const v1::JoinRoundRequest& request) override {
    return inner_->JoinRound(request);
  }
  absl::StatusOr<v1::FetchParametersResponse> FetchParameters(
      const v1::FetchParametersRequest& request) override {
    return inner_->FetchParameters(request);
  }
  absl::StatusOr<v1::PushUpdateResponse> PushUpdate(const v1::PushUpdateRequest& request) override;

  int attacks_sent() const { return attacks_sent_; }

 private:
  std::vector<float> Poison(std::vector<float> delta, int64_t round) const;

  RoundService* inner_;
  Attack attack_;
  int replicas_;
  std::set<std::string> poisoned_;
  size_t num_parameters_;
  std::map<std::string, std::string> held_;                    // by replica: chunks so far
  std::map<int64_t, std::vector<std::vector<float>>> honest_;  // by round
  int attacks_sent_ = 0;
};

}  // namespace nightshift

#endif  // NIGHTSHIFT_TESTS_POISONED_ROUND_SERVICE_H_
