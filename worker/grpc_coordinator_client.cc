#include "worker/grpc_coordinator_client.h"

#include <cstdio>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/grpc_channel.h"
#include "base/grpc_status.h"
#include "base/status_macros.h"
#include "grpcpp/client_context.h"
#include "nightshift/v1/coordinator.grpc.pb.h"

namespace nightshift {
namespace {

// Files travel in chunks of this size (the coordinator's own download
// chunk size too).
constexpr size_t kUploadChunkBytes = 1 << 20;

// Call the stub first, then this: argument order is unspecified, and the
// response must be moved only after the call has filled it.
template <typename T>
absl::StatusOr<T> Result(const grpc::Status& s, T response) {
  if (!s.ok()) return FromGrpc(s);
  return response;
}

class GrpcCoordinatorClient final : public CoordinatorClient {
 public:
  explicit GrpcCoordinatorClient(const std::string& address)
      : stub_(v1::Coordinator::NewStub(NewChannel(address))) {}

  absl::StatusOr<v1::RegisterResponse> Register(const v1::RegisterRequest& request) override {
    v1::RegisterResponse response;
    const grpc::Status s = stub_->Register(Context(kControlCallDeadline).get(), request, &response);
    return Result(s, std::move(response));
  }

  absl::StatusOr<v1::HeartbeatResponse> Heartbeat(const v1::HeartbeatRequest& request) override {
    v1::HeartbeatResponse response;
    const grpc::Status s =
        stub_->Heartbeat(Context(kControlCallDeadline).get(), request, &response);
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
  static std::unique_ptr<grpc::ClientContext> Context(absl::Duration deadline) {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(absl::ToChronoTime(absl::Now() + deadline));
    return ctx;
  }

  std::unique_ptr<v1::Coordinator::Stub> stub_;
};

}  // namespace

std::unique_ptr<CoordinatorClient> NewGrpcCoordinatorClient(const std::string& address) {
  return std::make_unique<GrpcCoordinatorClient>(address);
}

}  // namespace nightshift
