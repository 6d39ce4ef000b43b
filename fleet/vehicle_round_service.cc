#include "fleet/vehicle_round_service.h"

#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/grpc_status.h"

namespace nightshift::fleet {
namespace {

// A cut link is retried by the round client; a call waits this long.
constexpr absl::Duration kDeadline = absl::Seconds(30);

template <typename Response>
absl::StatusOr<Response> Result(const grpc::Status& s, Response response) {
  if (!s.ok()) return FromGrpc(s);
  return response;
}

}  // namespace

#define NIGHTSHIFT_ROUND_CALL(Method, Request, Response)                                 \
  absl::StatusOr<v1::Response> VehicleRoundService::Method(const v1::Request& request) { \
    grpc::ClientContext ctx;                                                             \
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + kDeadline));                       \
    ctx.AddMetadata("authorization", absl::StrCat("Bearer ", credential_));              \
    v1::Response response;                                                               \
    const grpc::Status s = stub_->Method(&ctx, request, &response);                      \
    return Result(s, std::move(response));                                               \
  }

NIGHTSHIFT_ROUND_CALL(JoinRound, JoinRoundRequest, RoundTicket)
NIGHTSHIFT_ROUND_CALL(FetchParameters, FetchParametersRequest, FetchParametersResponse)
NIGHTSHIFT_ROUND_CALL(PushUpdate, PushUpdateRequest, PushUpdateResponse)
#undef NIGHTSHIFT_ROUND_CALL

absl::Status VehicleRoundService::ReportEvaluation(const std::string& worker_id,
                                                   const std::string& job_id, int64_t version,
                                                   float test_accuracy) {
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + kDeadline));
  ctx.AddMetadata("authorization", absl::StrCat("Bearer ", credential_));
  v1::ReportProgressRequest request;
  request.set_worker_id(worker_id);
  request.set_job_id(job_id);
  request.set_evaluated_version(version);
  request.mutable_progress()->set_test_accuracy(test_accuracy);
  v1::ReportProgressResponse response;
  return FromGrpc(stub_->ReportProgress(&ctx, request, &response));
}

}  // namespace nightshift::fleet
