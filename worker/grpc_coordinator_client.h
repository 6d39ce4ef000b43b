// GrpcCoordinatorClient: CoordinatorClient over the nightshift.v1.Coordinator
// gRPC service — one channel, dialled lazily by gRPC and re-dialled after a
// coordinator restart. Each call has its own deadline (below); statuses
// cross through base/grpc_status.h unchanged. Thread-safe.
#ifndef NIGHTSHIFT_WORKER_GRPC_COORDINATOR_CLIENT_H_
#define NIGHTSHIFT_WORKER_GRPC_COORDINATOR_CLIENT_H_

#include <memory>
#include <string>

#include "worker/coordinator_client.h"

namespace nightshift {

// Deadlines: a register or heartbeat that takes this long means the
// coordinator is unreachable; reports and uploads carry more data.
inline constexpr absl::Duration kControlCallDeadline = absl::Seconds(5);
inline constexpr absl::Duration kReportDeadline = absl::Seconds(10);
inline constexpr absl::Duration kUploadDeadline = absl::Seconds(60);

std::unique_ptr<CoordinatorClient> NewGrpcCoordinatorClient(const std::string& address);

}  // namespace nightshift

#endif  // NIGHTSHIFT_WORKER_GRPC_COORDINATOR_CLIENT_H_
