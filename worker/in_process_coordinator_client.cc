#include "worker/in_process_coordinator_client.h"

#include <fstream>
#include <iterator>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "glog/logging.h"

namespace nightshift {

InProcessCoordinatorClient::InProcessCoordinatorClient(coordinator::Coordinator* coordinator)
    : coordinator_(coordinator) {
  v1::CreateTokenRequest join;
  join.set_role("worker");
  join.set_label("in-process client");
  absl::StatusOr<v1::CreateTokenResponse> made = coordinator->CreateToken(join);
  CHECK(made.ok()) << made.status();
  join_token_ = made->token();
}

absl::StatusOr<security::Principal> InProcessCoordinatorClient::CallerNamed(
    coordinator::Coordinator* c, const std::string& name) {
  std::string token = join_token_;
  {
    absl::MutexLock lock(&token_mu_);
    auto it = credential_by_name_.find(name);
    if (it != credential_by_name_.end()) token = it->second;
  }
  return c->Authenticate(token);
}

absl::StatusOr<security::Principal> InProcessCoordinatorClient::Caller(
    coordinator::Coordinator* c, const std::string& worker_id) {
  std::string name;
  {
    absl::MutexLock lock(&token_mu_);
    auto it = name_by_id_.find(worker_id);
    if (it != name_by_id_.end()) name = it->second;
  }
  return CallerNamed(c, name);
}

absl::StatusOr<coordinator::Coordinator*> InProcessCoordinatorClient::Reachable() {
  if (coordinator_ == nullptr) return absl::UnavailableError("coordinator unreachable");
  return coordinator_;
}

absl::StatusOr<v1::RegisterResponse> InProcessCoordinatorClient::Register(
    const v1::RegisterRequest& request) {
  absl::ReaderMutexLock lock(&mu_);
  ASSIGN_OR_RETURN(coordinator::Coordinator * c, Reachable());
  ASSIGN_OR_RETURN(security::Principal caller, CallerNamed(c, request.name()));
  absl::StatusOr<v1::RegisterResponse> response = c->Register(request, caller);
  if (response.ok()) {
    absl::MutexLock lock(&token_mu_);
    name_by_id_[response->worker_id()] = request.name();
    if (!response->worker_credential().empty()) {
      credential_by_name_[request.name()] = response->worker_credential();
    }
  }
  return response;
}

absl::StatusOr<v1::HeartbeatResponse> InProcessCoordinatorClient::Heartbeat(
    const v1::HeartbeatRequest& request) {
  absl::ReaderMutexLock lock(&mu_);
  ASSIGN_OR_RETURN(coordinator::Coordinator * c, Reachable());
  ASSIGN_OR_RETURN(security::Principal caller, Caller(c, request.worker_id()));
  return c->Heartbeat(request, caller);
}

absl::Status InProcessCoordinatorClient::ReportProgress(const v1::ReportProgressRequest& request) {
  absl::ReaderMutexLock lock(&mu_);
  ASSIGN_OR_RETURN(coordinator::Coordinator * c, Reachable());
  ASSIGN_OR_RETURN(security::Principal caller, Caller(c, request.worker_id()));
  return c->ReportProgress(request, caller);
}

absl::StatusOr<v1::RoundTicket> InProcessCoordinatorClient::JoinRound(
    const v1::JoinRoundRequest& request) {
  absl::ReaderMutexLock lock(&mu_);
  ASSIGN_OR_RETURN(coordinator::Coordinator * c, Reachable());
  ASSIGN_OR_RETURN(security::Principal caller, Caller(c, request.worker_id()));
  return c->JoinRound(request, caller);
}

absl::StatusOr<v1::FetchParametersResponse> InProcessCoordinatorClient::FetchParameters(
    const v1::FetchParametersRequest& request) {
  absl::ReaderMutexLock lock(&mu_);
  ASSIGN_OR_RETURN(coordinator::Coordinator * c, Reachable());
  ASSIGN_OR_RETURN(security::Principal caller, Caller(c, request.worker_id()));
  return c->FetchParameters(request, caller);
}

absl::StatusOr<v1::FetchModelResponse> InProcessCoordinatorClient::FetchModel(
    const v1::FetchModelRequest& request) {
  absl::ReaderMutexLock lock(&mu_);
  ASSIGN_OR_RETURN(coordinator::Coordinator * c, Reachable());
  return c->FetchModel(request);
}

absl::StatusOr<v1::PushUpdateResponse> InProcessCoordinatorClient::PushUpdate(
    const v1::PushUpdateRequest& request) {
  absl::ReaderMutexLock lock(&mu_);
  ASSIGN_OR_RETURN(coordinator::Coordinator * c, Reachable());
  ASSIGN_OR_RETURN(security::Principal caller, Caller(c, request.worker_id()));
  return c->PushUpdate(request, caller);
}

absl::Status InProcessCoordinatorClient::DownloadCheckpoint(const std::string& job_id, int64_t step,
                                                            const std::string& path) {
  std::string from;
  {
    absl::ReaderMutexLock lock(&mu_);
    ASSIGN_OR_RETURN(coordinator::Coordinator * c, Reachable());
    // (Any worker of this client that runs the job may.)
    absl::Status may = absl::PermissionDeniedError("no worker of this client runs " + job_id);
    std::vector<std::string> names;
    {
      absl::MutexLock lock(&token_mu_);
      for (const auto& [name, credential] : credential_by_name_) names.push_back(name);
    }
    for (const std::string& name : names) {
      ASSIGN_OR_RETURN(security::Principal caller, CallerNamed(c, name));
      if (c->MayDownload(caller, job_id).ok()) may = absl::OkStatus();
    }
    RETURN_IF_ERROR(may);
    ASSIGN_OR_RETURN(from, c->CheckpointPath(job_id, step));
  }
  std::ifstream in(from, std::ios::binary);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << in.rdbuf();
  if (!in || !out) return absl::DataLossError(absl::StrCat(from, " -> ", path, ": copy failed"));
  return absl::OkStatus();
}

absl::StatusOr<v1::WorkerInfo> InProcessCoordinatorClient::DrainWorker(
    const std::string& worker_id) {
  absl::ReaderMutexLock lock(&mu_);
  ASSIGN_OR_RETURN(coordinator::Coordinator * c, Reachable());
  ASSIGN_OR_RETURN(security::Principal caller, Caller(c, worker_id));
  RETURN_IF_ERROR(c->MayDrain(caller, worker_id));
  return c->DrainWorker(worker_id);
}

absl::Status InProcessCoordinatorClient::UploadCheckpoint(const std::string& worker_id,
                                                          const std::string& job_id, int64_t step,
                                                          bool final, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::DataLossError(absl::StrCat(path, ": cannot read"));
  const std::string bytes((std::istreambuf_iterator<char>(in)), {});
  absl::ReaderMutexLock lock(&mu_);
  ASSIGN_OR_RETURN(coordinator::Coordinator * c, Reachable());
  ASSIGN_OR_RETURN(security::Principal caller, Caller(c, worker_id));
  return c->StoreCheckpoint(worker_id, job_id, step, final, bytes, caller).status();
}

}  // namespace nightshift
