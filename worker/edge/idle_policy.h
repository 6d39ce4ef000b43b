// IdlePolicyEvaluator: whether a vehicle may lend its computer now, and
// why, from its latest state (vehicle_state_source.h) and the policy
// (proto/nightshift/v1/vehicle.proto, IdlePolicy).
//
// Fails safe: a state that cannot be read, or is older than the staleness
// bound, is "no" with that reason; so is an unknown ignition or gear.
// Conditions are checked in this order and the first that fails is the
// reason (ignition first, so that a driver is never kept waiting by a
// lesser one): readable, fresh, ignition off, gear P, nobody inside,
// parked for the debounce time, temperatures, battery (charging, or above
// the floor plus the next trip's reserve), the stay's energy budget when
// not charging, a network and its byte budget when metered, time before
// the predicted departure.
//
// Stateful: it remembers when the vehicle parked (the debounce and the
// stay's energy), the energy the computer used this stay and the bytes
// sent over metered links today (UTC). Not thread-safe: one agent thread
// owns it.
#ifndef NIGHTSHIFT_WORKER_EDGE_IDLE_POLICY_H_
#define NIGHTSHIFT_WORKER_EDGE_IDLE_POLICY_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "nightshift/v1/vehicle.pb.h"

namespace nightshift::edge {

// A state as a source last read it.
struct VehicleReading {
  // An error says why there is no state (missing, malformed: the message
  // names the file and field).
  absl::StatusOr<v1::VehicleState> state = absl::UnavailableError("no vehicle state yet");
  absl::Time observed = absl::InfinitePast();  // when that state held
};

// `policy` with every unset (0) field at its documented default.
v1::IdlePolicy WithDefaults(v1::IdlePolicy policy);

// Parses a textproto IdlePolicy; errors name the file and the field
// (unknown, or a value out of range).
absl::StatusOr<v1::IdlePolicy> ParseIdlePolicy(const std::string& text, const std::string& path);
absl::StatusOr<v1::IdlePolicy> LoadIdlePolicy(const std::string& path);

class IdlePolicyEvaluator {
 public:
  explicit IdlePolicyEvaluator(const v1::IdlePolicy& policy) : policy_(WithDefaults(policy)) {}

  // The decision at `now`; `since` is when the answer last changed.
  v1::Eligibility Evaluate(const VehicleReading& reading, absl::Time now);

  // What the agent used, for the stay's energy and the day's bytes.
  void AddComputeTime(absl::Duration d) { compute_this_stay_ += d; }
  void AddMeteredBytes(int64_t bytes, absl::Time now);

  const v1::IdlePolicy& policy() const { return policy_; }

 private:
  // The reason the vehicle may not compute, or nullopt if it may.
  std::optional<std::string> Refusal(const VehicleReading& reading, absl::Time now);
  std::string Grant(const v1::VehicleState& state, absl::Time now) const;

  const v1::IdlePolicy policy_;
  std::optional<absl::Time> parked_since_;
  absl::Duration compute_this_stay_ = absl::ZeroDuration();
  int64_t metered_bytes_today_ = 0;
  int64_t metered_day_ = -1;  // days since the epoch (UTC) of that count
  bool eligible_ = false;
  absl::Time since_ = absl::InfinitePast();
};

}  // namespace nightshift::edge

#endif  // NIGHTSHIFT_WORKER_EDGE_IDLE_POLICY_H_
