#include "collective/transport/grpc/peer_server.h"

#include "absl/strings/str_cat.h"

namespace nightshift::collective {
namespace {
constexpr int kMaxFrameBytes = 1 << 20;       // HTTP/2 allows up to 16 MiB - 1
constexpr int kStreamWindowBytes = 16 << 20;  // 2x GrpcTransport::kMaxQueuedBytes
}  // namespace

absl::StatusOr<std::unique_ptr<PeerServer>> PeerServer::Start(
    const std::string& address, std::shared_ptr<grpc::ServerCredentials> server_credentials,
    std::shared_ptr<grpc::ChannelCredentials> channel_credentials) {
  std::unique_ptr<PeerServer> s(new PeerServer(std::move(channel_credentials)));
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(address, std::move(server_credentials), &port);
  builder.SetMaxReceiveMessageSize(-1);
  builder.SetMaxSendMessageSize(-1);
  // The receiving side of the ring's streams sets HTTP/2's flow control:
  // big frames and a window that holds the sender's whole queue, so a
  // sender is never stalled waiting for a WINDOW_UPDATE.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_FRAME_SIZE, kMaxFrameBytes);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, kStreamWindowBytes);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  builder.RegisterService(&s->service_);
  s->server_ = builder.BuildAndStart();
  if (s->server_ == nullptr || port == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", address));
  }
  s->address_ = absl::StrCat(address.substr(0, address.rfind(':')), ":", port);
  return s;
}

absl::StatusOr<std::unique_ptr<PeerServer>> PeerServer::StartInsecureForTest(
    const std::string& address) {
  return Start(address, grpc::InsecureServerCredentials(), grpc::InsecureChannelCredentials());
}

void PeerServer::Shutdown() {
  if (server_ != nullptr) {
    server_->Shutdown(std::chrono::system_clock::now());
    server_.reset();
  }
}

}  // namespace nightshift::collective
