#include "tests/poisoned_round_service.h"

#include <cmath>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "collective/delta_codec.h"

namespace nightshift {

absl::StatusOr<Attack> ParseAttack(const std::string& name) {
  for (Attack a :
       {Attack::kNone, Attack::kSignFlip, Attack::kScale100, Attack::kNaN, Attack::kALIE}) {
    if (name == AttackName(a)) return a;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("attack \"", name, "\": expected none, sign_flip, scale100, nan or alie"));
}

const char* AttackName(Attack attack) {
  switch (attack) {
    case Attack::kNone:
      return "none";
    case Attack::kSignFlip:
      return "sign_flip";
    case Attack::kScale100:
      return "scale100";
    case Attack::kNaN:
      return "nan";
    case Attack::kALIE:
      return "alie";
  }
  return "?";
}

namespace {

// Φ⁻¹(p) by bisection on Φ(x) = erfc(−x/√2)/2.
double InverseNormalCdf(double p) {
  double lo = -10, hi = 10;
  for (int i = 0; i < 100; ++i) {
    const double mid = (lo + hi) / 2;
    (0.5 * std::erfc(-mid / std::sqrt(2.0)) < p ? lo : hi) = mid;
  }
  return (lo + hi) / 2;
}

}  // namespace

PoisonedRoundService::PoisonedRoundService(RoundService* inner, Attack attack, int replicas,
                                           std::set<std::string> poisoned, size_t num_parameters)
    : inner_(inner),
      attack_(attack),
      replicas_(replicas),
      poisoned_(std::move(poisoned)),
      num_parameters_(num_parameters) {}

absl::StatusOr<v1::PushUpdateResponse> PoisonedRoundService::PushUpdate(
    const v1::PushUpdateRequest& request) {
  const bool poisoned = attack_ != Attack::kNone && poisoned_.count(request.worker_id()) > 0;
  std::string& held = held_[request.worker_id()];
  if (request.offset() == 0) held.clear();
  if (!poisoned) {
    absl::StatusOr<v1::PushUpdateResponse> out = inner_->PushUpdate(request);
    if (out.ok() && request.offset() == static_cast<int64_t>(held.size())) held += request.data();
    if (out.ok() && out->complete()) {
      if (out->accepted() && static_cast<int64_t>(held.size()) == request.total_bytes()) {
        absl::StatusOr<std::vector<float>> delta = collective::DecodeDelta(held, num_parameters_);
        if (delta.ok()) honest_[request.round()].push_back(*std::move(delta));
        honest_.erase(honest_.begin(), honest_.lower_bound(request.round() - 1));
      }
      held.clear();
    }
    return out;
  }
  // A poisoned replica: hold its chunks until the update is whole.
  v1::PushUpdateResponse partial;
  if (request.offset() == static_cast<int64_t>(held.size())) held += request.data();
  partial.set_next_offset(static_cast<int64_t>(held.size()));
  if (static_cast<int64_t>(held.size()) < request.total_bytes()) return partial;
  absl::StatusOr<std::vector<float>> delta = collective::DecodeDelta(held, num_parameters_);
  if (!delta.ok()) return delta.status();
  const auto format = static_cast<collective::DeltaFormat>(static_cast<uint8_t>(held[0]));
  std::vector<float> attacked = Poison(*std::move(delta), request.round());
  v1::PushUpdateRequest forward = request;
  forward.set_offset(0);
  forward.set_data(collective::EncodeDelta(
      attack_ == Attack::kNaN ? collective::DeltaFormat::kFloat32 : format, attacked));
  forward.set_total_bytes(static_cast<int64_t>(forward.data().size()));
  held.clear();
  ++attacks_sent_;
  return inner_->PushUpdate(forward);
}

std::vector<float> PoisonedRoundService::Poison(std::vector<float> delta, int64_t round) const {
  switch (attack_) {
    case Attack::kNone:
      break;
    case Attack::kSignFlip:
      for (float& x : delta) x = -x;
      break;
    case Attack::kScale100:
      for (float& x : delta) x *= 100;
      break;
    case Attack::kNaN:
      for (size_t i = 0; i < delta.size(); i += 16)
        delta[i] = std::numeric_limits<float>::quiet_NaN();
      break;
    case Attack::kALIE: {
      auto it = honest_.find(round);
      if (it == honest_.end() || it->second.empty()) {
        for (float& x : delta) x = -x;
        break;
      }
      const std::vector<std::vector<float>>& seen = it->second;
      const int m = static_cast<int>(poisoned_.size());
      const int s = replicas_ / 2 + 1 - m;
      const double z = InverseNormalCdf(static_cast<double>(replicas_ - s) / replicas_);
      for (size_t i = 0; i < delta.size(); ++i) {
        double sum = 0, sum2 = 0;
        for (const std::vector<float>& h : seen) {
          sum += h[i];
          sum2 += static_cast<double>(h[i]) * h[i];
        }
        const double mean = sum / seen.size();
        const double var = std::max(0.0, sum2 / seen.size() - mean * mean);
        delta[i] = static_cast<float>(mean - z * std::sqrt(var));
      }
      break;
    }
  }
  return delta;
}

}  // namespace nightshift
