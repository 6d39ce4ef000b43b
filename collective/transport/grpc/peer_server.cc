#include "collective/transport/grpc/peer_server.h"

#include "absl/strings/str_cat.h"

namespace nightshift::collective {

absl::StatusOr<std::unique_ptr<PeerServer>> PeerServer::Start(
    const std::string& address, std::shared_ptr<grpc::ServerCredentials> server_credentials,
    std::shared_ptr<grpc::ChannelCredentials> channel_credentials) {
  std::unique_ptr<PeerServer> s(new PeerServer(std::move(channel_credentials)));
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(address, std::move(server_credentials), &port);
  builder.SetMaxReceiveMessageSize(-1);
  builder.SetMaxSendMessageSize(-1);
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
