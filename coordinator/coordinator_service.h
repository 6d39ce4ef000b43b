// CoordinatorService: the `nightshift.v1.Coordinator` gRPC service on the
// callback API — a thin translation to Coordinator (coordinator.h): unary
// handlers finish at once; DownloadModel streams the model file in 1 MiB
// chunks; UploadCheckpoint collects chunks, then stores the file.
// absl::Status codes map one to one onto gRPC codes.
#ifndef NIGHTSHIFT_COORDINATOR_COORDINATOR_SERVICE_H_
#define NIGHTSHIFT_COORDINATOR_COORDINATOR_SERVICE_H_

#include "coordinator/coordinator.h"
#include "nightshift/v1/coordinator.grpc.pb.h"

namespace nightshift::coordinator {

class CoordinatorService final : public v1::Coordinator::CallbackService {
 public:
  explicit CoordinatorService(Coordinator* coordinator) : c_(coordinator) {}

  grpc::ServerUnaryReactor* SubmitJob(grpc::CallbackServerContext* ctx,
                                      const v1::SubmitJobRequest* request,
                                      v1::JobStatus* response) override;
  grpc::ServerUnaryReactor* GetJob(grpc::CallbackServerContext* ctx,
                                   const v1::GetJobRequest* request,
                                   v1::JobStatus* response) override;
  grpc::ServerUnaryReactor* ListJobs(grpc::CallbackServerContext* ctx,
                                     const v1::ListJobsRequest* request,
                                     v1::ListJobsResponse* response) override;
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
  grpc::ServerReadReactor<v1::UploadCheckpointRequest>* UploadCheckpoint(
      grpc::CallbackServerContext* ctx, v1::UploadCheckpointResponse* response) override;

 private:
  Coordinator* c_;
};

}  // namespace nightshift::coordinator

#endif  // NIGHTSHIFT_COORDINATOR_COORDINATOR_SERVICE_H_
