// VehicleRoundService: one simulated vehicle's round calls (RoundService,
// worker/coordinator_client.h) over a shared channel, each call carrying
// the vehicle's own credential — what its agent's GrpcCoordinatorClient
// sends, without a connection of its own per vehicle. Blocking; used by
// one round thread at a time (its vehicle's).
#ifndef NIGHTSHIFT_FLEET_VEHICLE_ROUND_SERVICE_H_
#define NIGHTSHIFT_FLEET_VEHICLE_ROUND_SERVICE_H_

#include <string>

#include "nightshift/v1/coordinator.grpc.pb.h"
#include "worker/coordinator_client.h"

namespace nightshift::fleet {

class VehicleRoundService final : public RoundService {
 public:
  // `stub` outlives it.
  VehicleRoundService(v1::Coordinator::Stub* stub, std::string credential)
      : stub_(stub), credential_(std::move(credential)) {}

  absl::StatusOr<v1::RoundTicket> JoinRound(const v1::JoinRoundRequest& request) override;
  absl::StatusOr<v1::FetchParametersResponse> FetchParameters(
      const v1::FetchParametersRequest& request) override;
  absl::StatusOr<v1::PushUpdateResponse> PushUpdate(const v1::PushUpdateRequest& request) override;
  // A replica's report of the final parameters' test accuracy
  // (RoundTicket.evaluate).
  absl::Status ReportEvaluation(const std::string& worker_id, const std::string& job_id,
                                int64_t version, float test_accuracy);

 private:
  v1::Coordinator::Stub* const stub_;
  const std::string credential_;
};

}  // namespace nightshift::fleet

#endif  // NIGHTSHIFT_FLEET_VEHICLE_ROUND_SERVICE_H_
