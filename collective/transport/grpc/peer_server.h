// PeerServer: a gRPC server hosting this process's PeerService, as every
// data-center worker runs one on its --listen address. Its credentials
// come from security/credentials.h (mutual TLS between workers, or
// --insecure): the server's, and the channels' its transports dial
// peers with.
#ifndef NIGHTSHIFT_COLLECTIVE_TRANSPORT_GRPC_PEER_SERVER_H_
#define NIGHTSHIFT_COLLECTIVE_TRANSPORT_GRPC_PEER_SERVER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "collective/transport/grpc/peer_service.h"
#include "grpcpp/grpcpp.h"

namespace nightshift::collective {

class PeerServer {
 public:
  // `address` like "127.0.0.1:0" (port 0: the OS picks a free one).
  static absl::StatusOr<std::unique_ptr<PeerServer>> Start(
      const std::string& address, std::shared_ptr<grpc::ServerCredentials> server_credentials,
      std::shared_ptr<grpc::ChannelCredentials> channel_credentials);
  // Plaintext on loopback, for tests and benchmarks of the data path.
  static absl::StatusOr<std::unique_ptr<PeerServer>> StartInsecureForTest(
      const std::string& address);
  ~PeerServer() { Shutdown(); }

  PeerService* service() { return &service_; }
  // "host:port" with the bound port.
  const std::string& address() const { return address_; }
  // Stops at once: open streams are cancelled, as if the process died.
  void Shutdown();

 private:
  explicit PeerServer(std::shared_ptr<grpc::ChannelCredentials> channel_credentials)
      : service_(std::move(channel_credentials)) {}
  PeerService service_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
};

}  // namespace nightshift::collective

#endif  // NIGHTSHIFT_COLLECTIVE_TRANSPORT_GRPC_PEER_SERVER_H_
