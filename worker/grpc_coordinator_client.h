// GrpcCoordinatorClient: CoordinatorClient over the nightshift.v1.Coordinator
// gRPC service — one channel, dialled lazily by gRPC and re-dialled after a
// coordinator restart, secured by security/ (mutual TLS, or --insecure).
// Each call has its own deadline (below); statuses cross through
// base/grpc_status.h unchanged. Thread-safe.
//
// Identity: calls carry the worker's own credential once it has one (from
// its credential file, or from enrollment: Register with the join token
// returns it, and it is saved to the file, mode 0600).
#ifndef NIGHTSHIFT_WORKER_GRPC_COORDINATOR_CLIENT_H_
#define NIGHTSHIFT_WORKER_GRPC_COORDINATOR_CLIENT_H_

#include <memory>
#include <string>

#include "security/credentials.h"
#include "worker/coordinator_client.h"

namespace nightshift {

// Deadlines: a register or heartbeat that takes this long means the
// coordinator is unreachable; reports and uploads carry more data.
inline constexpr absl::Duration kControlCallDeadline = absl::Seconds(5);
inline constexpr absl::Duration kReportDeadline = absl::Seconds(10);
inline constexpr absl::Duration kUploadDeadline = absl::Seconds(60);

struct WorkerIdentity {
  std::string join_token;       // a worker-role token without subject
  std::string credential_file;  // where this worker's credential is kept
};

std::unique_ptr<CoordinatorClient> NewGrpcCoordinatorClient(
    const std::string& address, const security::TransportSecurity& security,
    WorkerIdentity identity);

}  // namespace nightshift

#endif  // NIGHTSHIFT_WORKER_GRPC_COORDINATOR_CLIENT_H_
