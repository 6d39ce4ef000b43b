// RoundClient: the agent's side of the round protocol
// (coordinator/rounds/round_keeper.h has the coordinator's). One call of
// RunOnce is one attempt at one round:
//   1. Join: not selected → kWait with the coordinator's retry_after;
//      job ended → kJobEnded.
//   2. Fetch the ticket's version in chunks, each from the length already
//      held, so a cut link costs only the chunk in flight (a failed call
//      is retried up to `max_attempts` times from where it stopped); the
//      assembled bytes must match the ticket's SHA-256 and size, and
//      decode to the model's parameter count, or the round is abandoned.
//      The stop flag is read before every chunk: preempted mid-fetch, the
//      client withdraws at once (kWithdrew) instead of fetching on.
//   3. RoundCompute::RunRound (a ReplicaTrainer; modelled compute in the
//      fleet simulator) with the stop flag (preemption) — or, with
//      an evaluate ticket (the job's rounds are done), TestAccuracy of the
//      fetched parameters (kEvaluated).
//   4. A full round, or a preempted one with at least
//      min_partial_fraction of the inner steps: the delta is encoded in
//      the job's format with this replica's error feedback and pushed in
//      chunks, resuming at the coordinator's next_offset after a cut. A
//      push refused (or failed) leaves the error feedback's residual as it
//      was before it: that update's compression error never counted.
//      Less than that: a withdrawal (an empty push) frees its place.
// The transport sits behind RoundService, so the same client runs over
// gRPC in the agent and in-process against a RoundKeeper in tests and in
// the fleet simulator.
//
// Not thread-safe; blocking. The stop flag may be set from any thread.
#ifndef NIGHTSHIFT_WORKER_EDGE_ROUND_CLIENT_H_
#define NIGHTSHIFT_WORKER_EDGE_ROUND_CLIENT_H_

#include <atomic>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "collective/delta_codec.h"
#include "nightshift/v1/coordinator.pb.h"
#include "spec/diloco.h"
#include "worker/coordinator_client.h"
#include "worker/edge/replica_trainer.h"

namespace nightshift {

struct RoundClientOptions {
  std::string worker_id;
  std::string job_id;
  int64_t chunk_bytes = 1 << 20;  // per fetch and push call
  int max_attempts = 20;          // per chunk, against a cut or slow link
};

struct RoundOutcome {
  // kEvaluated: the ticket asked to evaluate the final parameters
  // (RoundTicket.evaluate) instead of training; report test_accuracy.
  enum Kind { kPushed, kWithdrew, kWait, kJobEnded, kRefused, kEvaluated };
  Kind kind = kWait;
  int64_t round = -1;
  absl::Duration retry_after;                   // kWait
  std::string reason;                           // kWait, kRefused, kWithdrew
  RoundResult result;                           // kPushed, kWithdrew
  int64_t version = 0;                          // kEvaluated: of the parameters
  float test_accuracy = 0;                      // kEvaluated
  int64_t bytes_fetched = 0, bytes_pushed = 0;  // on the wire, resends included
  int retried = 0;  // fetch and push calls that failed (a cut link) and were sent again
};

class RoundClient {
 public:
  RoundClient(const v1::JobSpec& spec, RoundService* service, RoundCompute* trainer,
              RoundClientOptions options);

  // One attempt at one round (above). Errors: the service failed past
  // max_attempts, or the coordinator's bytes were not what it announced.
  absl::StatusOr<RoundOutcome> RunOnce(const std::atomic<bool>* stop = nullptr);
  // The id the worker holds its lease under changes when it registers
  // again (a restarted coordinator): the rounds after go under the new one.
  void set_worker_id(const std::string& id) { options_.worker_id = id; }

 private:
  // Both add their bytes and retried calls to `outcome`.
  // CANCELLED when `stop` is raised between chunks (preempted).
  absl::StatusOr<std::string> Fetch(const v1::RoundTicket& ticket, const std::atomic<bool>* stop,
                                    RoundOutcome* outcome);
  absl::StatusOr<v1::PushUpdateResponse> Push(const v1::RoundTicket& ticket,
                                              const RoundResult& result, const std::string& bytes,
                                              RoundOutcome* outcome);

  const DiLoCoSettings settings_;
  RoundService* service_;
  RoundCompute* trainer_;
  RoundClientOptions options_;
  collective::DeltaFormat format_;
  collective::ErrorFeedback feedback_;
};

}  // namespace nightshift

#endif  // NIGHTSHIFT_WORKER_EDGE_ROUND_CLIENT_H_
