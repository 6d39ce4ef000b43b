// RoundKeeper: one diloco job's outer loop on the coordinator — the outer
// parameters θ_v (version v = rounds completed), the outer optimizer's
// momentum, and the open round's selection and updates. No RPC types and
// no clock of its own (callers pass `now`), so it is tested alone.
//
// The round protocol (coordinator.proto's JoinRound, FetchParameters and
// PushUpdate; every call names the replica, the worker's name):
//  1. Join(replica): the job ended → job_ended. The replica already holds
//     a place in the open round and has not pushed → the same ticket
//     again (an agent that restarted). It pushed already, or the round has
//     selected_per_round places taken (quorum × (1 + over-selection)) →
//     not selected, retry_after_ms. Otherwise it is selected: round r,
//     base version r, the parameters' encoded size and SHA-256, the
//     inner steps and the time left to the deadline.
//  2. Fetch(version, offset): bytes of θ_version encoded as the spec's
//     parameter_dtype (collective/delta_codec.h layout), from `offset`;
//     only the current version is served (FAILED_PRECONDITION names the
//     current one otherwise: join again).
//  3. Push(round, base, offset, data, total): chunks append at the
//     replica's received length; any other offset is answered with
//     next_offset = that length, so a replica whose link was cut resends
//     from there. total_bytes may not exceed a float32 update of the
//     model (memory bound per replica). With every byte in, the update
//     is decoded (a bad one is refused naming the byte offset) and
//     judged: staleness s = current version − base; s > max_staleness →
//     refused ("stale"); else taken with weight samples / (1 + s), as
//     the replica's push to the open round (it is not selected for it
//     again).
//     An empty push (total_bytes 0) withdraws the replica from the round
//     (preempted with too little done): its place is freed for another.
//  4. MaybeClose(now): at quorum updates, or at the deadline with at
//     least one, or (with a join window, from the round's first
//     selection, once it is over) when every replica selected within it
//     has pushed or withdrawn with at least one update in (later joiners
//     do not hold the round), it closes:
//     aggregation.h screens and combines the updates (the rule of the
//     spec; centered clipping's centre is the last round's aggregate),
//     the outer optimizer applies the result, v and r advance, and a
//     RoundInfo records the selected, accepted and refused replicas (with
//     reasons), samples, bytes in and out, times and the update's norm.
//     At the deadline with no update, or when screening refuses every
//     update, the round opens again with a new deadline and a fresh
//     selection (its refusals are kept in the next RoundInfo).
//  Shards: ShardFor(replica) gives each replica a sticky shard (the
//  least-used one when it first asks), kept in the snapshot.
//
// Not thread-safe: the coordinator calls it under its own lock.
#ifndef NIGHTSHIFT_COORDINATOR_ROUNDS_ROUND_KEEPER_H_
#define NIGHTSHIFT_COORDINATOR_ROUNDS_ROUND_KEEPER_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "coordinator/rounds/aggregation.h"
#include "coordinator/rounds/outer_optimizer.h"
#include "nightshift/v1/coordinator.pb.h"
#include "spec/diloco.h"

namespace nightshift::coordinator::rounds {

// What a round checkpoint holds: enough to go on after a restart.
struct RoundSnapshot {
  int64_t round = 0;  // = version: rounds completed
  std::vector<float> parameters;
  std::vector<float> momentum;
  std::vector<float> last_aggregate;  // centered clipping's centre; may be empty
  std::map<std::string, int> shards;  // replica -> shard
};

class RoundKeeper {
 public:
  // From the job's initial parameters (spec/tensors.h InitialParameters),
  // or from a snapshot; INVALID_ARGUMENT if the sizes disagree.
  static absl::StatusOr<std::unique_ptr<RoundKeeper>> Create(const v1::JobSpec& spec,
                                                             RoundSnapshot start, absl::Time now);

  v1::RoundTicket Join(const std::string& replica, absl::Time now);
  // After the last round: a ticket to fetch the final parameters and
  // evaluate them (RoundTicket.evaluate); the coordinator decides who.
  v1::RoundTicket EvaluationTicket() const;
  absl::StatusOr<v1::FetchParametersResponse> Fetch(const std::string& replica,
                                                    const v1::FetchParametersRequest& request);
  absl::StatusOr<v1::PushUpdateResponse> Push(const std::string& replica,
                                              const v1::PushUpdateRequest& request);
  // A replica gone (lease lost, fenced): its place in the open round is
  // freed unless it pushed already.
  void Forget(const std::string& replica);
  // Whether `replica` holds a place in the open round that it has neither
  // pushed to nor withdrawn from: its round's work is under way.
  bool Training(const std::string& replica) const {
    auto it = places_.find(replica);
    return it != places_.end() && !it->second.pushed && !it->second.withdrawn;
  }
  // The closed round, when one closed.
  std::optional<v1::RoundInfo> MaybeClose(absl::Time now);

  int ShardFor(const std::string& replica);
  bool done() const { return round_ >= settings_.rounds; }
  int64_t round() const { return round_; }
  int64_t total_rounds() const { return settings_.rounds; }
  const DiLoCoSettings& settings() const { return settings_; }
  absl::Span<const float> parameters() const { return parameters_; }
  RoundSnapshot Snapshot() const;

 private:
  struct Place {
    bool withdrawn = false;
    bool pushed = false;  // every byte in and judged
    bool holds = false;   // joined within the join window: the round waits for it
  };
  struct Upload {
    int64_t round = 0, base_version = 0, samples = 0, total_bytes = 0;
    int32_t inner_steps_done = 0;
    std::string bytes;
  };
  RoundKeeper(DiLoCoSettings settings, RoundSnapshot start, absl::Time now);
  void EncodeParameters();
  void OpenRound(absl::Time now);
  // Judges a complete upload: into updates_, or a refusal.
  v1::PushUpdateResponse Judge(const std::string& replica, Upload upload);
  int active_places() const;

  DiLoCoSettings settings_;
  size_t size_;
  int64_t round_;
  std::vector<float> parameters_;
  std::vector<float> last_aggregate_;
  OuterOptimizer outer_;
  AggregationOptions aggregation_;
  std::map<std::string, int> shards_;
  std::vector<int> shard_load_;
  // By replica: the sum of its cosines in the rounds its update was
  // direction-screened in, and their count (aggregation.h's relative
  // screen). In memory: a restart begins the histories again.
  std::map<std::string, std::pair<double, int>> direction_history_;

  std::string encoded_;  // θ at version round_, as fetched
  std::string encoded_sha256_;
  // The open round.
  absl::Time open_time_, deadline_;
  // The open round's first selection: its join window starts there (not
  // at the opening: a job's first round opens before any replica can join).
  absl::Time first_join_ = absl::InfiniteFuture();
  std::vector<std::string> selection_order_;
  std::map<std::string, Place> places_;
  std::map<std::string, Upload> uploads_;  // in flight, by replica
  std::vector<ReplicaUpdate> updates_;
  std::vector<v1::RoundRefusal> refused_;
  int64_t bytes_in_ = 0, bytes_out_ = 0;
};

}  // namespace nightshift::coordinator::rounds

#endif  // NIGHTSHIFT_COORDINATOR_ROUNDS_ROUND_KEEPER_H_
