#include "coordinator/coordinator_service.h"

#include <fstream>

#include "absl/strings/str_cat.h"
#include "base/grpc_status.h"
#include "base/status_macros.h"

namespace nightshift::coordinator {

using security::Access;
using security::Principal;

namespace {

// The largest request each method takes, in serialized bytes (the server
// refuses anything over kMaxMessageBytes before it is parsed).
constexpr size_t kMaxSubmitBytes = 1 << 20;
constexpr size_t kMaxSmallRequestBytes = 16 << 10;
constexpr size_t kMaxReportBytes = 256 << 10;
constexpr size_t kMaxPushChunkBytes = 2 << 20;  // the agent sends 1 MiB

absl::Status CheckSize(const google::protobuf::Message& m, size_t limit, const char* method) {
  const size_t size = m.ByteSizeLong();
  if (size <= limit) return absl::OkStatus();
  return absl::ResourceExhaustedError(
      absl::StrCat(method, ": request of ", size, " bytes, over its limit of ", limit));
}

absl::Status Flooding(const char* method, const std::string& worker) {
  return absl::ResourceExhaustedError(
      absl::StrCat(method, ": worker '", worker, "' calls faster than its rate limit; slow down"));
}

const char* AccessName(Access access) {
  switch (access) {
    case Access::kRead:
      return "a viewer or admin";
    case Access::kWork:
      return "a worker";
    case Access::kAdmin:
      return "an admin";
  }
  return "?";
}

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

// The caller of `ctx` (its `authorization: Bearer` token), if that
// token's role allows `access` for `method`.
absl::StatusOr<Principal> Authorize(Coordinator* c, grpc::CallbackServerContext* ctx, Access access,
                                    const char* method) {
  const auto& metadata = ctx->client_metadata();
  auto it = metadata.find("authorization");
  const absl::string_view header = it == metadata.end()
                                       ? absl::string_view()
                                       : absl::string_view(it->second.data(), it->second.size());
  ASSIGN_OR_RETURN(std::string token, security::BearerToken(header));
  ASSIGN_OR_RETURN(Principal caller, c->Authenticate(token));
  if (!security::Allows(caller.role, access)) {
    return absl::PermissionDeniedError(absl::StrCat(method, " needs ", AccessName(access),
                                                    " token; this one is a ",
                                                    security::RoleName(caller.role), " token"));
  }
  return caller;
}

// A viewer's or admin's call, or else a worker's (the reads workers may
// make too: models they follow).
absl::StatusOr<Principal> AuthorizeReadOrWork(Coordinator* c, grpc::CallbackServerContext* ctx,
                                              const char* method) {
  absl::StatusOr<Principal> caller = Authorize(c, ctx, Access::kRead, method);
  if (!caller.ok() && caller.status().code() == absl::StatusCode::kPermissionDenied) {
    caller = Authorize(c, ctx, Access::kWork, method);
  }
  return caller;
}

// Authorize, then bound the request (every unary method's first step).
absl::StatusOr<Principal> Admit(Coordinator* c, grpc::CallbackServerContext* ctx, Access access,
                                const char* method, const google::protobuf::Message& request,
                                size_t limit) {
  absl::StatusOr<Principal> caller = Authorize(c, ctx, access, method);
  if (!caller.ok()) return caller;
  RETURN_IF_ERROR(CheckSize(request, limit, method));
  return caller;
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
  CheckpointReader(Coordinator* c, Principal caller, size_t max_bytes,
                   v1::UploadCheckpointResponse* response)
      : c_(c), caller_(std::move(caller)), max_bytes_(max_bytes), response_(response) {
    StartRead(&request_);
  }
  void OnReadDone(bool ok) override {
    if (!ok) {  // all chunks are in
      absl::StatusOr<v1::CheckpointInfo> info =
          c_->StoreCheckpoint(worker_id_, job_id_, step_, final_, bytes_, caller_);
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
    if (bytes_.size() + request_.chunk().data().size() > max_bytes_) {
      Finish(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                          absl::StrCat("UploadCheckpoint: the file passes ", max_bytes_,
                                       " bytes, the largest upload taken")));
      return;
    }
    bytes_ += request_.chunk().data();
    StartRead(&request_);
  }
  void OnDone() override { delete this; }

 private:
  Coordinator* c_;
  const Principal caller_;
  const size_t max_bytes_;
  v1::UploadCheckpointResponse* response_;
  v1::UploadCheckpointRequest request_;
  std::string worker_id_, job_id_, bytes_;
  int64_t step_ = 0;
  bool final_ = false;
};

}  // namespace

// Every method: authorize, bound the request (Admit), translate.

grpc::ServerUnaryReactor* CoordinatorService::SubmitJob(grpc::CallbackServerContext* ctx,
                                                        const v1::SubmitJobRequest* request,
                                                        v1::JobStatus* response) {
  absl::StatusOr<Principal> caller =
      Admit(c_, ctx, Access::kAdmin, "SubmitJob", *request, kMaxSubmitBytes);
  if (!caller.ok()) return Reply(ctx, caller.status());
  return Reply(ctx, c_->SubmitJob(*request), response);
}

grpc::ServerUnaryReactor* CoordinatorService::GetJob(grpc::CallbackServerContext* ctx,
                                                     const v1::GetJobRequest* request,
                                                     v1::JobStatus* response) {
  absl::StatusOr<Principal> caller =
      Admit(c_, ctx, Access::kRead, "GetJob", *request, kMaxSmallRequestBytes);
  if (!caller.ok()) return Reply(ctx, caller.status());
  return Reply(ctx, c_->GetJob(request->job_id()), response);
}

grpc::ServerUnaryReactor* CoordinatorService::ListJobs(grpc::CallbackServerContext* ctx,
                                                       const grpc::ByteBuffer* request,
                                                       grpc::ByteBuffer* response) {
  // Admit's steps on the raw request: authorize, bound, then parse.
  absl::StatusOr<Principal> caller = Authorize(c_, ctx, Access::kRead, "ListJobs");
  if (!caller.ok()) return Reply(ctx, caller.status());
  if (request->Length() > kMaxSmallRequestBytes) {
    return Reply(ctx, absl::ResourceExhaustedError(
                          absl::StrCat("ListJobs: request of ", request->Length(),
                                       " bytes, over its limit of ", kMaxSmallRequestBytes)));
  }
  std::vector<grpc::Slice> slices;
  std::string bytes;
  if (request->Dump(&slices).ok()) {
    for (const grpc::Slice& piece : slices) {
      bytes.append(reinterpret_cast<const char*>(piece.begin()), piece.size());
    }
  }
  if (v1::ListJobsRequest parsed; !parsed.ParseFromString(bytes)) {
    return Reply(ctx, absl::InvalidArgumentError(
                          absl::StrCat("ListJobs: the request's ", bytes.size(),
                                       " bytes do not parse as a nightshift.v1.ListJobsRequest")));
  }
  // The version before the snapshot: a change between them is rebuilt for
  // on the next call, never hidden.
  auto jobs = std::make_unique<std::shared_ptr<const std::string>>(
      jobs_wire_.Get(c_->jobs_version(), [this] { return c_->JobsSnapshot(); }));
  // The slice borrows the cached bytes and holds them until gRPC has sent them.
  const std::string& wire = **jobs;
  if (wire.empty()) {  // no jobs: an empty reply
    grpc::Slice empty{std::string()};
    *response = grpc::ByteBuffer(&empty, 1);
    return Reply(ctx, absl::OkStatus());
  }
  grpc::Slice slice(
      const_cast<char*>(wire.data()), wire.size(),
      [](void* held) { delete static_cast<std::shared_ptr<const std::string>*>(held); },
      jobs.release());
  *response = grpc::ByteBuffer(&slice, 1);
  return Reply(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* CoordinatorService::CancelJob(grpc::CallbackServerContext* ctx,
                                                        const v1::CancelJobRequest* request,
                                                        v1::JobStatus* response) {
  absl::StatusOr<Principal> caller =
      Admit(c_, ctx, Access::kAdmin, "CancelJob", *request, kMaxSmallRequestBytes);
  if (!caller.ok()) return Reply(ctx, caller.status());
  return Reply(ctx, c_->CancelJob(request->job_id(), request->reason()), response);
}

grpc::ServerUnaryReactor* CoordinatorService::GetJobHistory(grpc::CallbackServerContext* ctx,
                                                            const v1::GetJobHistoryRequest* request,
                                                            v1::GetJobHistoryResponse* response) {
  absl::StatusOr<Principal> caller =
      Admit(c_, ctx, Access::kRead, "GetJobHistory", *request, kMaxSmallRequestBytes);
  if (!caller.ok()) return Reply(ctx, caller.status());
  return Reply(ctx, c_->GetJobHistory(request->job_id()), response);
}

grpc::ServerUnaryReactor* CoordinatorService::ListWorkers(grpc::CallbackServerContext* ctx,
                                                          const v1::ListWorkersRequest* request,
                                                          v1::ListWorkersResponse* response) {
  absl::StatusOr<Principal> caller =
      Admit(c_, ctx, Access::kRead, "ListWorkers", *request, kMaxSmallRequestBytes);
  if (!caller.ok()) return Reply(ctx, caller.status());
  return Reply(ctx, c_->ListWorkers(*request), response);
}

grpc::ServerUnaryReactor* CoordinatorService::DrainWorker(grpc::CallbackServerContext* ctx,
                                                          const v1::DrainWorkerRequest* request,
                                                          v1::WorkerInfo* response) {
  absl::StatusOr<Principal> caller = Authorize(c_, ctx, Access::kAdmin, "DrainWorker");
  if (!caller.ok() && caller.status().code() == absl::StatusCode::kPermissionDenied) {
    caller = Authorize(c_, ctx, Access::kWork, "DrainWorker");  // a worker: itself (SIGTERM)
    if (caller.ok()) {
      if (absl::Status may = c_->MayDrain(*caller, request->worker()); !may.ok()) caller = may;
    }
  }
  if (!caller.ok()) return Reply(ctx, caller.status());
  if (absl::Status s = CheckSize(*request, kMaxSmallRequestBytes, "DrainWorker"); !s.ok()) {
    return Reply(ctx, s);
  }
  return Reply(ctx, c_->DrainWorker(request->worker()), response);
}

grpc::ServerWriteReactor<v1::FileChunk>* CoordinatorService::DownloadModel(
    grpc::CallbackServerContext* ctx, const v1::DownloadModelRequest* request) {
  absl::StatusOr<Principal> caller = AuthorizeReadOrWork(c_, ctx, "DownloadModel");
  if (caller.ok() && caller->role == security::Role::kWorker) {  // a worker: its own job
    if (absl::Status may = c_->MayDownload(*caller, request->job_id()); !may.ok()) caller = may;
  }
  if (!caller.ok()) return new ModelWriter(caller.status());
  return new ModelWriter(request->checkpoint_step() > 0
                             ? c_->CheckpointPath(request->job_id(), request->checkpoint_step())
                             : c_->ModelPath(request->job_id()));
}

grpc::ServerUnaryReactor* CoordinatorService::Register(grpc::CallbackServerContext* ctx,
                                                       const v1::RegisterRequest* request,
                                                       v1::RegisterResponse* response) {
  absl::StatusOr<Principal> caller =
      Admit(c_, ctx, Access::kWork, "Register", *request, kMaxSmallRequestBytes);
  if (!caller.ok()) return Reply(ctx, caller.status());
  if (!registers_.Allow(request->name())) return Reply(ctx, Flooding("Register", request->name()));
  return Reply(ctx, c_->Register(*request, *caller), response);
}

grpc::ServerUnaryReactor* CoordinatorService::Heartbeat(grpc::CallbackServerContext* ctx,
                                                        const v1::HeartbeatRequest* request,
                                                        v1::HeartbeatResponse* response) {
  absl::StatusOr<Principal> caller =
      Admit(c_, ctx, Access::kWork, "Heartbeat", *request, kMaxSmallRequestBytes);
  if (!caller.ok()) return Reply(ctx, caller.status());
  if (!heartbeats_.Allow(caller->subject))
    return Reply(ctx, Flooding("Heartbeat", caller->subject));
  return Reply(ctx, c_->Heartbeat(*request, *caller), response);
}

grpc::ServerUnaryReactor* CoordinatorService::ReportProgress(
    grpc::CallbackServerContext* ctx, const v1::ReportProgressRequest* request,
    v1::ReportProgressResponse*) {
  absl::StatusOr<Principal> caller =
      Admit(c_, ctx, Access::kWork, "ReportProgress", *request, kMaxReportBytes);
  if (!caller.ok()) return Reply(ctx, caller.status());
  if (!reports_.Allow(caller->subject)) {
    return Reply(ctx, Flooding("ReportProgress", caller->subject));
  }
  return Reply(ctx, c_->ReportProgress(*request, *caller));
}

grpc::ServerUnaryReactor* CoordinatorService::JoinRound(grpc::CallbackServerContext* ctx,
                                                        const v1::JoinRoundRequest* request,
                                                        v1::RoundTicket* response) {
  absl::StatusOr<Principal> caller =
      Admit(c_, ctx, Access::kWork, "JoinRound", *request, kMaxSmallRequestBytes);
  if (!caller.ok()) return Reply(ctx, caller.status());
  if (!rounds_.Allow(caller->subject)) return Reply(ctx, Flooding("JoinRound", caller->subject));
  return Reply(ctx, c_->JoinRound(*request, *caller), response);
}

grpc::ServerUnaryReactor* CoordinatorService::FetchParameters(
    grpc::CallbackServerContext* ctx, const v1::FetchParametersRequest* request,
    v1::FetchParametersResponse* response) {
  absl::StatusOr<Principal> caller =
      Admit(c_, ctx, Access::kWork, "FetchParameters", *request, kMaxSmallRequestBytes);
  if (!caller.ok()) return Reply(ctx, caller.status());
  if (!rounds_.Allow(caller->subject)) {
    return Reply(ctx, Flooding("FetchParameters", caller->subject));
  }
  return Reply(ctx, c_->FetchParameters(*request, *caller), response);
}

grpc::ServerUnaryReactor* CoordinatorService::PushUpdate(grpc::CallbackServerContext* ctx,
                                                         const v1::PushUpdateRequest* request,
                                                         v1::PushUpdateResponse* response) {
  // A chunk of at most kMaxPushChunkBytes plus its small header.
  absl::StatusOr<Principal> caller = Admit(c_, ctx, Access::kWork, "PushUpdate", *request,
                                           kMaxPushChunkBytes + kMaxSmallRequestBytes);
  if (!caller.ok()) return Reply(ctx, caller.status());
  if (!rounds_.Allow(caller->subject)) return Reply(ctx, Flooding("PushUpdate", caller->subject));
  return Reply(ctx, c_->PushUpdate(*request, *caller), response);
}

grpc::ServerReadReactor<v1::UploadCheckpointRequest>* CoordinatorService::UploadCheckpoint(
    grpc::CallbackServerContext* ctx, v1::UploadCheckpointResponse* response) {
  absl::StatusOr<Principal> caller = Authorize(c_, ctx, Access::kWork, "UploadCheckpoint");
  if (!caller.ok()) {
    // A reactor that refuses at once.
    class Refuse final : public grpc::ServerReadReactor<v1::UploadCheckpointRequest> {
     public:
      explicit Refuse(const absl::Status& s) { Finish(ToGrpc(s)); }
      void OnDone() override { delete this; }
    };
    return new Refuse(caller.status());
  }
  return new CheckpointReader(c_, *std::move(caller), options_.max_upload_bytes, response);
}

grpc::ServerUnaryReactor* CoordinatorService::PublishModel(grpc::CallbackServerContext* ctx,
                                                           const v1::PublishModelRequest* request,
                                                           v1::ModelVersion* response) {
  absl::StatusOr<Principal> caller =
      Admit(c_, ctx, Access::kAdmin, "PublishModel", *request, kMaxSmallRequestBytes);
  if (!caller.ok()) return Reply(ctx, caller.status());
  return Reply(ctx, c_->PublishModel(*request), response);
}

grpc::ServerUnaryReactor* CoordinatorService::ListModels(grpc::CallbackServerContext* ctx,
                                                         const v1::ListModelsRequest* request,
                                                         v1::ListModelsResponse* response) {
  absl::StatusOr<Principal> caller = AuthorizeReadOrWork(c_, ctx, "ListModels");
  if (!caller.ok()) return Reply(ctx, caller.status());
  if (absl::Status s = CheckSize(*request, kMaxSmallRequestBytes, "ListModels"); !s.ok()) {
    return Reply(ctx, s);
  }
  for (auto& v : c_->ListModels(request->model_name())) *response->add_versions() = std::move(v);
  return Reply(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* CoordinatorService::FetchModel(grpc::CallbackServerContext* ctx,
                                                         const v1::FetchModelRequest* request,
                                                         v1::FetchModelResponse* response) {
  absl::StatusOr<Principal> caller = AuthorizeReadOrWork(c_, ctx, "FetchModel");
  if (!caller.ok()) return Reply(ctx, caller.status());
  if (absl::Status s = CheckSize(*request, kMaxSmallRequestBytes, "FetchModel"); !s.ok()) {
    return Reply(ctx, s);
  }
  // A worker's fetches share its round calls' budget.
  if (caller->role == security::Role::kWorker && !rounds_.Allow(caller->subject)) {
    return Reply(ctx, Flooding("FetchModel", caller->subject));
  }
  return Reply(ctx, c_->FetchModel(*request), response);
}

grpc::ServerUnaryReactor* CoordinatorService::CreateToken(grpc::CallbackServerContext* ctx,
                                                          const v1::CreateTokenRequest* request,
                                                          v1::CreateTokenResponse* response) {
  absl::StatusOr<Principal> caller =
      Admit(c_, ctx, Access::kAdmin, "CreateToken", *request, kMaxSmallRequestBytes);
  if (!caller.ok()) return Reply(ctx, caller.status());
  return Reply(ctx, c_->CreateToken(*request), response);
}

grpc::ServerUnaryReactor* CoordinatorService::ListTokens(grpc::CallbackServerContext* ctx,
                                                         const v1::ListTokensRequest* request,
                                                         v1::ListTokensResponse* response) {
  absl::StatusOr<Principal> caller =
      Admit(c_, ctx, Access::kAdmin, "ListTokens", *request, kMaxSmallRequestBytes);
  if (!caller.ok()) return Reply(ctx, caller.status());
  absl::StatusOr<std::vector<v1::TokenInfo>> tokens = c_->ListTokens();
  if (tokens.ok()) {
    for (auto& t : *tokens) *response->add_tokens() = std::move(t);
  }
  return Reply(ctx, tokens.status());
}

grpc::ServerUnaryReactor* CoordinatorService::RevokeToken(grpc::CallbackServerContext* ctx,
                                                          const v1::RevokeTokenRequest* request,
                                                          v1::RevokeTokenResponse*) {
  absl::StatusOr<Principal> caller =
      Admit(c_, ctx, Access::kAdmin, "RevokeToken", *request, kMaxSmallRequestBytes);
  if (!caller.ok()) return Reply(ctx, caller.status());
  return Reply(ctx, c_->RevokeToken(request->id()));
}

}  // namespace nightshift::coordinator
