#include "worker/grpc_coordinator_client.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/grpc_status.h"
#include "base/status_macros.h"
#include "glog/logging.h"
#include "grpcpp/client_context.h"
#include "grpcpp/support/channel_arguments.h"
#include "nightshift/v1/coordinator.grpc.pb.h"
#include "security/channel.h"

namespace nightshift {
namespace {

// Files travel in chunks of this size (the coordinator's own download
// chunk size too).
constexpr size_t kUploadChunkBytes = 1 << 20;

// gRPC backs reconnects off up to 120 s by default. On a vehicle's link,
// cut often, every attempt may be cut mid-handshake for a while, and the
// attempts then thin out to minutes apart: the agent would miss its
// eligibility for that long after the link is good again. The agent
// heartbeats every 10 s anyway; it reconnects at least that often.
grpc::ChannelArguments CoordinatorChannelArguments() {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 10'000);
  return args;
}

// Call the stub first, then this: argument order is unspecified, and the
// response must be moved only after the call has filled it.
template <typename T>
absl::StatusOr<T> Result(const grpc::Status& s, T response) {
  if (!s.ok()) return FromGrpc(s);
  return response;
}

class GrpcCoordinatorClient final : public CoordinatorClient {
 public:
  GrpcCoordinatorClient(const std::string& address, const security::TransportSecurity& security,
                        WorkerIdentity identity)
      : identity_(std::move(identity)),
        token_(std::make_shared<security::TokenSource>()),
        stub_(v1::Coordinator::NewStub(
            security::NewChannel(address, security, token_, CoordinatorChannelArguments()))) {
    std::ifstream in(identity_.credential_file);
    std::string credential;
    in >> credential;
    token_->Set(credential.empty() ? identity_.join_token : credential);
  }

  // Enrollment (coordinator/identity.cc): with the credential file's
  // token, or, when there is none or the coordinator does not know it
  // (its state was reset), with the join token; a new credential in the
  // reply replaces the token and goes to the credential file.
  absl::StatusOr<v1::RegisterResponse> Register(const v1::RegisterRequest& request) override {
    v1::RegisterResponse response;
    grpc::Status s = stub_->Register(Context(kControlCallDeadline).get(), request, &response);
    if (s.error_code() == grpc::StatusCode::UNAUTHENTICATED &&
        token_->Get() != identity_.join_token && !identity_.join_token.empty()) {
      LOG(WARNING) << "worker " << request.name()
                   << ": the coordinator does not know this worker's credential; enrolling "
                      "again with the join token";
      token_->Set(identity_.join_token);
      s = stub_->Register(Context(kControlCallDeadline).get(), request, &response);
    }
    if (s.ok() && !response.worker_credential().empty()) {
      token_->Set(response.worker_credential());
      if (absl::Status saved = SaveCredential(response.worker_credential()); !saved.ok()) {
        LOG(WARNING) << "worker " << request.name() << ": " << saved
                     << " (a restarted daemon cannot register this name again)";
      }
    }
    return Result(s, std::move(response));
  }

  absl::StatusOr<v1::HeartbeatResponse> Heartbeat(const v1::HeartbeatRequest& request) override {
    v1::HeartbeatResponse response;
    const grpc::Status s =
        stub_->Heartbeat(Context(kControlCallDeadline).get(), request, &response);
    return Result(s, std::move(response));
  }

  // Round calls: a fetch or push chunk (1 MiB) over a slow link gets the
  // upload deadline; a cut one fails and the round client resumes it. They
  // wait for the channel to connect again (wait_for_ready) rather than
  // fail at once while a cut link comes back, so a retry is a real one.
  absl::StatusOr<v1::RoundTicket> JoinRound(const v1::JoinRoundRequest& request) override {
    v1::RoundTicket response;
    const grpc::Status s = stub_->JoinRound(
        Context(kControlCallDeadline, /*wait_for_ready=*/true).get(), request, &response);
    return Result(s, std::move(response));
  }
  absl::StatusOr<v1::FetchParametersResponse> FetchParameters(
      const v1::FetchParametersRequest& request) override {
    v1::FetchParametersResponse response;
    const grpc::Status s = stub_->FetchParameters(
        Context(kUploadDeadline, /*wait_for_ready=*/true).get(), request, &response);
    return Result(s, std::move(response));
  }
  absl::StatusOr<v1::FetchModelResponse> FetchModel(const v1::FetchModelRequest& request) override {
    v1::FetchModelResponse response;
    const grpc::Status s = stub_->FetchModel(
        Context(kUploadDeadline, /*wait_for_ready=*/true).get(), request, &response);
    return Result(s, std::move(response));
  }
  absl::StatusOr<v1::PushUpdateResponse> PushUpdate(const v1::PushUpdateRequest& request) override {
    v1::PushUpdateResponse response;
    const grpc::Status s = stub_->PushUpdate(
        Context(kUploadDeadline, /*wait_for_ready=*/true).get(), request, &response);
    return Result(s, std::move(response));
  }

  absl::Status ReportProgress(const v1::ReportProgressRequest& request) override {
    v1::ReportProgressResponse response;
    return FromGrpc(stub_->ReportProgress(Context(kReportDeadline).get(), request, &response));
  }

  absl::Status DownloadCheckpoint(const std::string& job_id, int64_t step,
                                  const std::string& path) override {
    v1::DownloadModelRequest request;
    request.set_job_id(job_id);
    request.set_checkpoint_step(step);
    auto ctx = Context(kUploadDeadline);
    auto reader = stub_->DownloadModel(ctx.get(), request);
    std::ofstream out(path + ".part", std::ios::binary | std::ios::trunc);
    v1::FileChunk chunk;
    while (reader->Read(&chunk)) out.write(chunk.data().data(), chunk.data().size());
    RETURN_IF_ERROR(FromGrpc(reader->Finish()));
    out.close();
    if (!out || std::rename((path + ".part").c_str(), path.c_str()) != 0) {
      return absl::DataLossError(absl::StrCat(path, ": cannot write"));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<v1::WorkerInfo> DrainWorker(const std::string& worker_id) override {
    v1::DrainWorkerRequest request;
    request.set_worker(worker_id);
    v1::WorkerInfo response;
    const grpc::Status s =
        stub_->DrainWorker(Context(kControlCallDeadline).get(), request, &response);
    return Result(s, std::move(response));
  }

  absl::Status UploadCheckpoint(const std::string& worker_id, const std::string& job_id,
                                int64_t step, bool final, const std::string& path) override {
    std::ifstream in(path, std::ios::binary);
    if (!in) return absl::DataLossError(absl::StrCat(path, ": cannot read"));
    auto ctx = Context(kUploadDeadline);
    v1::UploadCheckpointResponse response;
    auto writer = stub_->UploadCheckpoint(ctx.get(), &response);
    std::string buffer(kUploadChunkBytes, '\0');
    int64_t offset = 0;
    bool first = true;
    do {
      in.read(buffer.data(), buffer.size());
      v1::UploadCheckpointRequest chunk;
      if (first) {
        chunk.set_worker_id(worker_id);
        chunk.set_job_id(job_id);
        chunk.set_step(step);
        chunk.set_final(final);
        first = false;
      }
      chunk.mutable_chunk()->set_offset(offset);
      chunk.mutable_chunk()->set_data(buffer.data(), in.gcount());
      offset += in.gcount();
      if (!writer->Write(chunk)) break;  // the server ended the call: Finish says why
    } while (in.gcount() > 0 && in);
    writer->WritesDone();
    return FromGrpc(writer->Finish());
  }

 private:
  absl::Status SaveCredential(const std::string& credential) {
    if (identity_.credential_file.empty()) return absl::OkStatus();
    const std::string tmp = identity_.credential_file + ".tmp";
    const int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) return absl::FailedPreconditionError(absl::StrCat(tmp, ": cannot write"));
    const std::string line = credential + "\n";
    const bool written = write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
    close(fd);
    if (!written || std::rename(tmp.c_str(), identity_.credential_file.c_str()) != 0) {
      return absl::DataLossError(absl::StrCat(identity_.credential_file, ": write failed"));
    }
    return absl::OkStatus();
  }

  static std::unique_ptr<grpc::ClientContext> Context(absl::Duration deadline,
                                                      bool wait_for_ready = false) {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(absl::ToChronoTime(absl::Now() + deadline));
    ctx->set_wait_for_ready(wait_for_ready);
    return ctx;
  }

  const WorkerIdentity identity_;
  std::shared_ptr<security::TokenSource> token_;
  std::unique_ptr<v1::Coordinator::Stub> stub_;
};

}  // namespace

std::unique_ptr<CoordinatorClient> NewGrpcCoordinatorClient(
    const std::string& address, const security::TransportSecurity& security,
    WorkerIdentity identity) {
  return std::make_unique<GrpcCoordinatorClient>(address, security, std::move(identity));
}

}  // namespace nightshift
