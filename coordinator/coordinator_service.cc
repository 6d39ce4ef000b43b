#include "coordinator/coordinator_service.h"

#include <fstream>

#include "absl/strings/str_cat.h"
#include "base/grpc_status.h"

namespace nightshift::coordinator {

namespace {

// Finishes a unary call with `result`'s status, copying its value out.
template <typename T>
grpc::ServerUnaryReactor* Reply(grpc::CallbackServerContext* ctx, absl::StatusOr<T> result,
                                T* response) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  if (result.ok()) *response = *std::move(result);
  reactor->Finish(ToGrpc(result.status()));
  return reactor;
}

grpc::ServerUnaryReactor* Reply(grpc::CallbackServerContext* ctx, const absl::Status& s) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(ToGrpc(s));
  return reactor;
}

class ModelWriter final : public grpc::ServerWriteReactor<v1::FileChunk> {
 public:
  explicit ModelWriter(absl::StatusOr<std::string> path) {
    if (!path.ok()) {
      Finish(ToGrpc(path.status()));
      return;
    }
    in_.open(*path, std::ios::binary);
    if (!in_) {
      Finish(grpc::Status(grpc::StatusCode::DATA_LOSS, absl::StrCat(*path, ": cannot open")));
      return;
    }
    Next();
  }
  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "client went away"));
      return;
    }
    Next();
  }
  void OnDone() override { delete this; }

 private:
  void Next() {
    std::string buffer(1 << 20, '\0');
    in_.read(buffer.data(), buffer.size());
    buffer.resize(in_.gcount());
    if (buffer.empty()) {
      Finish(grpc::Status::OK);
      return;
    }
    chunk_.set_offset(offset_);
    offset_ += static_cast<int64_t>(buffer.size());
    chunk_.set_data(std::move(buffer));
    StartWrite(&chunk_);
  }

  std::ifstream in_;
  v1::FileChunk chunk_;
  int64_t offset_ = 0;
};

class CheckpointReader final : public grpc::ServerReadReactor<v1::UploadCheckpointRequest> {
 public:
  CheckpointReader(Coordinator* c, v1::UploadCheckpointResponse* response)
      : c_(c), response_(response) {
    StartRead(&request_);
  }
  void OnReadDone(bool ok) override {
    if (!ok) {  // all chunks are in
      absl::StatusOr<v1::CheckpointInfo> info =
          c_->StoreCheckpoint(worker_id_, job_id_, step_, final_, bytes_);
      if (info.ok()) *response_->mutable_checkpoint() = *info;
      Finish(ToGrpc(info.status()));
      return;
    }
    if (!request_.worker_id().empty()) worker_id_ = request_.worker_id();
    if (!request_.job_id().empty()) job_id_ = request_.job_id();
    if (request_.step() != 0) step_ = request_.step();
    final_ = final_ || request_.final();
    if (request_.chunk().offset() != static_cast<int64_t>(bytes_.size())) {
      Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          absl::StrCat("chunk.offset ", request_.chunk().offset(),
                                       " does not follow byte ", bytes_.size())));
      return;
    }
    bytes_ += request_.chunk().data();
    StartRead(&request_);
  }
  void OnDone() override { delete this; }

 private:
  Coordinator* c_;
  v1::UploadCheckpointResponse* response_;
  v1::UploadCheckpointRequest request_;
  std::string worker_id_, job_id_, bytes_;
  int64_t step_ = 0;
  bool final_ = false;
};

}  // namespace

grpc::ServerUnaryReactor* CoordinatorService::SubmitJob(grpc::CallbackServerContext* ctx,
                                                        const v1::SubmitJobRequest* request,
                                                        v1::JobStatus* response) {
  return Reply(ctx, c_->SubmitJob(*request), response);
}

grpc::ServerUnaryReactor* CoordinatorService::GetJob(grpc::CallbackServerContext* ctx,
                                                     const v1::GetJobRequest* request,
                                                     v1::JobStatus* response) {
  return Reply(ctx, c_->GetJob(request->job_id()), response);
}

grpc::ServerUnaryReactor* CoordinatorService::ListJobs(grpc::CallbackServerContext* ctx,
                                                       const v1::ListJobsRequest*,
                                                       v1::ListJobsResponse* response) {
  absl::StatusOr<std::vector<v1::JobStatus>> jobs = c_->ListJobs();
  if (jobs.ok()) {
    for (auto& j : *jobs) *response->add_jobs() = std::move(j);
  }
  return Reply(ctx, jobs.status());
}

grpc::ServerUnaryReactor* CoordinatorService::CancelJob(grpc::CallbackServerContext* ctx,
                                                        const v1::CancelJobRequest* request,
                                                        v1::JobStatus* response) {
  return Reply(ctx, c_->CancelJob(request->job_id(), request->reason()), response);
}

grpc::ServerUnaryReactor* CoordinatorService::GetJobHistory(grpc::CallbackServerContext* ctx,
                                                            const v1::GetJobHistoryRequest* request,
                                                            v1::GetJobHistoryResponse* response) {
  return Reply(ctx, c_->GetJobHistory(request->job_id()), response);
}

grpc::ServerUnaryReactor* CoordinatorService::ListWorkers(grpc::CallbackServerContext* ctx,
                                                          const v1::ListWorkersRequest*,
                                                          v1::ListWorkersResponse* response) {
  for (auto& w : c_->ListWorkers()) *response->add_workers() = std::move(w);
  return Reply(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* CoordinatorService::DrainWorker(grpc::CallbackServerContext* ctx,
                                                          const v1::DrainWorkerRequest* request,
                                                          v1::WorkerInfo* response) {
  return Reply(ctx, c_->DrainWorker(request->worker()), response);
}

grpc::ServerWriteReactor<v1::FileChunk>* CoordinatorService::DownloadModel(
    grpc::CallbackServerContext*, const v1::DownloadModelRequest* request) {
  return new ModelWriter(request->checkpoint_step() > 0
                             ? c_->CheckpointPath(request->job_id(), request->checkpoint_step())
                             : c_->ModelPath(request->job_id()));
}

grpc::ServerUnaryReactor* CoordinatorService::Register(grpc::CallbackServerContext* ctx,
                                                       const v1::RegisterRequest* request,
                                                       v1::RegisterResponse* response) {
  return Reply(ctx, c_->Register(*request), response);
}

grpc::ServerUnaryReactor* CoordinatorService::Heartbeat(grpc::CallbackServerContext* ctx,
                                                        const v1::HeartbeatRequest* request,
                                                        v1::HeartbeatResponse* response) {
  return Reply(ctx, c_->Heartbeat(*request), response);
}

grpc::ServerUnaryReactor* CoordinatorService::ReportProgress(
    grpc::CallbackServerContext* ctx, const v1::ReportProgressRequest* request,
    v1::ReportProgressResponse*) {
  return Reply(ctx, c_->ReportProgress(*request));
}

grpc::ServerReadReactor<v1::UploadCheckpointRequest>* CoordinatorService::UploadCheckpoint(
    grpc::CallbackServerContext*, v1::UploadCheckpointResponse* response) {
  return new CheckpointReader(c_, response);
}

}  // namespace nightshift::coordinator
