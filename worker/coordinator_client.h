// CoordinatorClient: what a worker daemon asks of its coordinator, with no
// RPC types in it (TensorFlow's worker_interface.h is the model). Two
// implementations: GrpcCoordinatorClient (grpc_coordinator_client.h), what
// `nightshift-worker` dials, and InProcessCoordinatorClient
// (in_process_coordinator_client.h), which calls a coordinator::Coordinator
// in the same process, so the daemon is tested without sockets.
//
// Errors are the coordinator's absl::Status codes: NOT_FOUND from
// Heartbeat means "register again"; UNAVAILABLE and DEADLINE_EXCEEDED mean
// the coordinator could not be reached (try again later); anything else
// is a refusal. Every method is thread-safe: the daemon's heartbeat,
// reporter and job threads call it concurrently.
#ifndef NIGHTSHIFT_WORKER_COORDINATOR_CLIENT_H_
#define NIGHTSHIFT_WORKER_COORDINATOR_CLIENT_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nightshift/v1/coordinator.pb.h"

namespace nightshift {

// The three round calls, over whatever carries them. worker_id and
// job_id are filled in by the client.
class RoundService {
 public:
  virtual ~RoundService() = default;
  virtual absl::StatusOr<v1::RoundTicket> JoinRound(const v1::JoinRoundRequest& request) = 0;
  virtual absl::StatusOr<v1::FetchParametersResponse> FetchParameters(
      const v1::FetchParametersRequest& request) = 0;
  virtual absl::StatusOr<v1::PushUpdateResponse> PushUpdate(
      const v1::PushUpdateRequest& request) = 0;
};

// Pieces of published model versions, over whatever carries them
// (worker/edge/model_follower.h fetches with it).
class ModelSource {
 public:
  virtual ~ModelSource() = default;
  virtual absl::StatusOr<v1::FetchModelResponse> FetchModel(
      const v1::FetchModelRequest& request) = 0;
};

// The coordinator's round calls (RoundService) are part of it: an edge
// agent's RoundClient (worker/edge/round_client.h) runs over its daemon's
// client, and so does its ModelFollower.
class CoordinatorClient : public RoundService, public ModelSource {
 public:
  virtual ~CoordinatorClient() = default;

  virtual absl::StatusOr<v1::RegisterResponse> Register(const v1::RegisterRequest& request) = 0;
  virtual absl::StatusOr<v1::HeartbeatResponse> Heartbeat(const v1::HeartbeatRequest& request) = 0;
  virtual absl::Status ReportProgress(const v1::ReportProgressRequest& request) = 0;
  // Sends the file at `path` as job `job_id`'s checkpoint before `step`
  // (or, with `final`, its exported model), on behalf of `worker_id`.
  virtual absl::Status UploadCheckpoint(const std::string& worker_id, const std::string& job_id,
                                        int64_t step, bool final, const std::string& path) = 0;
  // Writes job `job_id`'s uploaded checkpoint before `step` to `path`.
  virtual absl::Status DownloadCheckpoint(const std::string& job_id, int64_t step,
                                          const std::string& path) = 0;
  // Asks the coordinator to drain worker `worker_id` (the daemon's own, on
  // SIGTERM): it leaves its job at the next commit point.
  virtual absl::StatusOr<v1::WorkerInfo> DrainWorker(const std::string& worker_id) = 0;
};

// Whether `s` says the coordinator could not be reached, as opposed to a
// refusal: such calls are retried.
inline bool IsUnreachable(const absl::Status& s) {
  return s.code() == absl::StatusCode::kUnavailable ||
         s.code() == absl::StatusCode::kDeadlineExceeded;
}

}  // namespace nightshift

#endif  // NIGHTSHIFT_WORKER_COORDINATOR_CLIENT_H_
