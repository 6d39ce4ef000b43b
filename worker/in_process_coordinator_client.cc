#include "worker/in_process_coordinator_client.h"

#include <fstream>
#include <iterator>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"

namespace nightshift {

absl::StatusOr<coordinator::Coordinator*> InProcessCoordinatorClient::Reachable() {
  if (coordinator_ == nullptr) return absl::UnavailableError("coordinator unreachable");
  return coordinator_;
}

absl::StatusOr<v1::RegisterResponse> InProcessCoordinatorClient::Register(
    const v1::RegisterRequest& request) {
  absl::ReaderMutexLock lock(&mu_);
  ASSIGN_OR_RETURN(coordinator::Coordinator * c, Reachable());
  return c->Register(request);
}

absl::StatusOr<v1::HeartbeatResponse> InProcessCoordinatorClient::Heartbeat(
    const v1::HeartbeatRequest& request) {
  absl::ReaderMutexLock lock(&mu_);
  ASSIGN_OR_RETURN(coordinator::Coordinator * c, Reachable());
  return c->Heartbeat(request);
}

absl::Status InProcessCoordinatorClient::ReportProgress(const v1::ReportProgressRequest& request) {
  absl::ReaderMutexLock lock(&mu_);
  ASSIGN_OR_RETURN(coordinator::Coordinator * c, Reachable());
  return c->ReportProgress(request);
}

absl::Status InProcessCoordinatorClient::DownloadCheckpoint(const std::string& job_id, int64_t step,
                                                            const std::string& path) {
  std::string from;
  {
    absl::ReaderMutexLock lock(&mu_);
    ASSIGN_OR_RETURN(coordinator::Coordinator * c, Reachable());
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
  return c->StoreCheckpoint(worker_id, job_id, step, final, bytes).status();
}

}  // namespace nightshift
