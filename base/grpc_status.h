// absl::Status <-> grpc::Status: the one place where the two error models
// meet. The canonical codes are the same numbers in both, so a status
// crosses the RPC boundary with its code and message unchanged; every
// server handler and every client stub call converts here.
#ifndef NIGHTSHIFT_BASE_GRPC_STATUS_H_
#define NIGHTSHIFT_BASE_GRPC_STATUS_H_

#include <string>

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace nightshift {

inline absl::Status FromGrpc(const grpc::Status& s) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

inline grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

}  // namespace nightshift

#endif  // NIGHTSHIFT_BASE_GRPC_STATUS_H_
