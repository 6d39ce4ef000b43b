// InProcessCoordinatorClient: CoordinatorClient that calls a
// coordinator::Coordinator in this process — no sockets, no threads of its
// own — so that worker_daemon_test drives the real coordinator logic with
// a fake clock. Test-only (BUILD marks it so).
//
// A test can take the coordinator away (SetCoordinator(nullptr): every call
// returns UNAVAILABLE, as an unreachable one would) and bring back the same
// or another instance (a restarted coordinator over the same store).
// Calls authenticate as the gRPC service's do: a join token made at
// construction, then for each worker the credential its Register
// returned (kept by worker name, so daemons of a test may share one
// client).
// Thread-safe.
#ifndef NIGHTSHIFT_WORKER_IN_PROCESS_COORDINATOR_CLIENT_H_
#define NIGHTSHIFT_WORKER_IN_PROCESS_COORDINATOR_CLIENT_H_

#include <map>
#include <string>

#include "absl/synchronization/mutex.h"
#include "coordinator/coordinator.h"
#include "worker/coordinator_client.h"

namespace nightshift {

class InProcessCoordinatorClient final : public CoordinatorClient {
 public:
  explicit InProcessCoordinatorClient(coordinator::Coordinator* coordinator);

  // nullptr: unreachable from now on.
  void SetCoordinator(coordinator::Coordinator* coordinator) {
    absl::MutexLock lock(&mu_);
    coordinator_ = coordinator;
  }

  absl::StatusOr<v1::RegisterResponse> Register(const v1::RegisterRequest& request) override;
  absl::StatusOr<v1::HeartbeatResponse> Heartbeat(const v1::HeartbeatRequest& request) override;
  absl::Status ReportProgress(const v1::ReportProgressRequest& request) override;
  absl::StatusOr<v1::RoundTicket> JoinRound(const v1::JoinRoundRequest& request) override;
  absl::StatusOr<v1::FetchParametersResponse> FetchParameters(
      const v1::FetchParametersRequest& request) override;
  absl::StatusOr<v1::PushUpdateResponse> PushUpdate(const v1::PushUpdateRequest& request) override;
  absl::StatusOr<v1::FetchModelResponse> FetchModel(const v1::FetchModelRequest& request) override;
  absl::Status UploadCheckpoint(const std::string& worker_id, const std::string& job_id,
                                int64_t step, bool final, const std::string& path) override;
  absl::StatusOr<v1::WorkerInfo> DrainWorker(const std::string& worker_id) override;
  absl::Status DownloadCheckpoint(const std::string& job_id, int64_t step,
                                  const std::string& path) override;

 private:
  // Who worker `name` (or the one with `worker_id`) is to `c`: its
  // credential's principal, or the join token's before it has one.
  absl::StatusOr<security::Principal> CallerNamed(coordinator::Coordinator* c,
                                                  const std::string& name);
  absl::StatusOr<security::Principal> Caller(coordinator::Coordinator* c,
                                             const std::string& worker_id);
  absl::Mutex token_mu_;
  std::string join_token_;
  std::map<std::string, std::string> credential_by_name_ ABSL_GUARDED_BY(token_mu_);
  std::map<std::string, std::string> name_by_id_ ABSL_GUARDED_BY(token_mu_);
  // The coordinator, or UNAVAILABLE. Calls run under a reader lock, so a
  // coordinator is never swapped out in the middle of one.
  absl::StatusOr<coordinator::Coordinator*> Reachable() ABSL_SHARED_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  coordinator::Coordinator* coordinator_ ABSL_GUARDED_BY(mu_);
};

}  // namespace nightshift

#endif  // NIGHTSHIFT_WORKER_IN_PROCESS_COORDINATOR_CLIENT_H_
