// CoordinatorService: the `nightshift.v1.Coordinator` gRPC service on the
// callback API — a thin translation to Coordinator (coordinator.h): unary
// handlers finish at once; DownloadModel streams the model file in 1 MiB
// chunks; UploadCheckpoint collects chunks, then stores the file.
// absl::Status codes map one to one onto gRPC codes.
//
// Every call is authorized first: its `authorization: Bearer` token must
// belong to a role that may make it (security/tokens.h; UNAUTHENTICATED
// without a known token, PERMISSION_DENIED with the wrong role), and the
// worker calls pass the caller on for the identity check. Requests are
// bounded per method (RESOURCE_EXHAUSTED, naming the limit) inside the
// server-wide kMaxMessageBytes, and each worker's calls are rate-limited
// (security/rate_limiter.h) before they reach the coordinator's lock.
#ifndef NIGHTSHIFT_COORDINATOR_COORDINATOR_SERVICE_H_
#define NIGHTSHIFT_COORDINATOR_COORDINATOR_SERVICE_H_

#include "base/clock.h"
#include "coordinator/coordinator.h"
#include "coordinator/jobs_wire_cache.h"
#include "nightshift/v1/coordinator.grpc.pb.h"
#include "security/rate_limiter.h"

namespace nightshift::coordinator {

// The largest message the server reads (ServerBuilder::SetMaxReceiveMessageSize).
inline constexpr int kMaxMessageBytes = 4 << 20;

struct CoordinatorServiceOptions {
  // The largest checkpoint or model file UploadCheckpoint takes (each job
  // bounds its own further: coordinator/upload_check.h).
  size_t max_upload_bytes = size_t{1} << 30;
  // Each worker's Register, Heartbeat, ReportProgress and round calls
  // (separately):
  // this many at once, then this many per second; more are
  // RESOURCE_EXHAUSTED (a daemon makes about one heartbeat and two
  // reports a second).
  double worker_call_burst = 100;
  double worker_calls_per_second = 50;
};

// ListJobs is served raw: its reply is bytes kept between calls
// (jobs_wire_cache.h), not a message built and serialized per call.
class CoordinatorService final
    : public v1::Coordinator::WithRawCallbackMethod_ListJobs<v1::Coordinator::CallbackService> {
 public:
  CoordinatorService(Coordinator* coordinator, Clock* clock, CoordinatorServiceOptions options = {})
      : c_(coordinator),
        options_(options),
        registers_(options.worker_calls_per_second, options.worker_call_burst, clock),
        heartbeats_(options.worker_calls_per_second, options.worker_call_burst, clock),
        reports_(options.worker_calls_per_second, options.worker_call_burst, clock),
        rounds_(options.worker_calls_per_second, options.worker_call_burst, clock) {}

  grpc::ServerUnaryReactor* SubmitJob(grpc::CallbackServerContext* ctx,
                                      const v1::SubmitJobRequest* request,
                                      v1::JobStatus* response) override;
  grpc::ServerUnaryReactor* GetJob(grpc::CallbackServerContext* ctx,
                                   const v1::GetJobRequest* request,
                                   v1::JobStatus* response) override;
  grpc::ServerUnaryReactor* ListJobs(grpc::CallbackServerContext* ctx,
                                     const grpc::ByteBuffer* request,
                                     grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* CancelJob(grpc::CallbackServerContext* ctx,
                                      const v1::CancelJobRequest* request,
                                      v1::JobStatus* response) override;
  grpc::ServerUnaryReactor* GetJobHistory(grpc::CallbackServerContext* ctx,
                                          const v1::GetJobHistoryRequest* request,
                                          v1::GetJobHistoryResponse* response) override;
  grpc::ServerUnaryReactor* ListWorkers(grpc::CallbackServerContext* ctx,
                                        const v1::ListWorkersRequest* request,
                                        v1::ListWorkersResponse* response) override;
  grpc::ServerUnaryReactor* DrainWorker(grpc::CallbackServerContext* ctx,
                                        const v1::DrainWorkerRequest* request,
                                        v1::WorkerInfo* response) override;
  grpc::ServerWriteReactor<v1::FileChunk>* DownloadModel(
      grpc::CallbackServerContext* ctx, const v1::DownloadModelRequest* request) override;
  grpc::ServerUnaryReactor* Register(grpc::CallbackServerContext* ctx,
                                     const v1::RegisterRequest* request,
                                     v1::RegisterResponse* response) override;
  grpc::ServerUnaryReactor* Heartbeat(grpc::CallbackServerContext* ctx,
                                      const v1::HeartbeatRequest* request,
                                      v1::HeartbeatResponse* response) override;
  grpc::ServerUnaryReactor* ReportProgress(grpc::CallbackServerContext* ctx,
                                           const v1::ReportProgressRequest* request,
                                           v1::ReportProgressResponse* response) override;
  grpc::ServerUnaryReactor* JoinRound(grpc::CallbackServerContext* ctx,
                                      const v1::JoinRoundRequest* request,
                                      v1::RoundTicket* response) override;
  grpc::ServerUnaryReactor* FetchParameters(grpc::CallbackServerContext* ctx,
                                            const v1::FetchParametersRequest* request,
                                            v1::FetchParametersResponse* response) override;
  grpc::ServerUnaryReactor* PushUpdate(grpc::CallbackServerContext* ctx,
                                       const v1::PushUpdateRequest* request,
                                       v1::PushUpdateResponse* response) override;
  grpc::ServerReadReactor<v1::UploadCheckpointRequest>* UploadCheckpoint(
      grpc::CallbackServerContext* ctx, v1::UploadCheckpointResponse* response) override;
  grpc::ServerUnaryReactor* PublishModel(grpc::CallbackServerContext* ctx,
                                         const v1::PublishModelRequest* request,
                                         v1::ModelVersion* response) override;
  grpc::ServerUnaryReactor* ListModels(grpc::CallbackServerContext* ctx,
                                       const v1::ListModelsRequest* request,
                                       v1::ListModelsResponse* response) override;
  grpc::ServerUnaryReactor* FetchModel(grpc::CallbackServerContext* ctx,
                                       const v1::FetchModelRequest* request,
                                       v1::FetchModelResponse* response) override;
  grpc::ServerUnaryReactor* CreateToken(grpc::CallbackServerContext* ctx,
                                        const v1::CreateTokenRequest* request,
                                        v1::CreateTokenResponse* response) override;
  grpc::ServerUnaryReactor* ListTokens(grpc::CallbackServerContext* ctx,
                                       const v1::ListTokensRequest* request,
                                       v1::ListTokensResponse* response) override;
  grpc::ServerUnaryReactor* RevokeToken(grpc::CallbackServerContext* ctx,
                                        const v1::RevokeTokenRequest* request,
                                        v1::RevokeTokenResponse* response) override;

 private:
  Coordinator* c_;
  const CoordinatorServiceOptions options_;
  // JoinRound, FetchParameters and PushUpdate share one budget per worker.
  security::RateLimiter registers_, heartbeats_, reports_, rounds_;
  JobsWireCache jobs_wire_;
};

}  // namespace nightshift::coordinator

#endif  // NIGHTSHIFT_COORDINATOR_COORDINATOR_SERVICE_H_
