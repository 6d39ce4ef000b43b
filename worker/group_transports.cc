#include "worker/group_transports.h"

#include <vector>

#include "base/host_identity.h"
#include "base/status_macros.h"
#include "collective/transport/grpc/peer_server.h"
#include "collective/transport/routing_transport.h"

namespace nightshift {
namespace {

class PeerServerTransports final : public GroupTransports {
 public:
  explicit PeerServerTransports(std::unique_ptr<collective::PeerServer> server)
      : server_(std::move(server)), host_id_(HostIdentity()) {}

  std::string peer_address() const override { return server_->address(); }
  std::string host_id() const override { return host_id_; }

  absl::StatusOr<std::unique_ptr<collective::Transport>> Connect(const v1::Assignment& a) override {
    collective::GroupMembership group;
    group.job_id = a.job_id();
    group.generation = a.generation();
    group.rank = a.rank();
    group.peer_addresses.assign(a.peer_addresses().begin(), a.peer_addresses().end());
    group.host_ids.assign(a.peer_host_ids().begin(), a.peer_host_ids().end());
    group.group_key = a.group_key();
    ASSIGN_OR_RETURN(std::unique_ptr<collective::RoutingTransport> t,
                     collective::ConnectGroup(server_->service(), std::move(group)));
    return std::unique_ptr<collective::Transport>(std::move(t));
  }

 private:
  std::unique_ptr<collective::PeerServer> server_;
  const std::string host_id_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<GroupTransports>> StartPeerServer(
    const std::string& listen, const security::TransportSecurity& security) {
  ASSIGN_OR_RETURN(
      std::unique_ptr<collective::PeerServer> server,
      collective::PeerServer::Start(listen, security::ServerCredentials(security, listen),
                                    security::ChannelCredentials(security)));
  return std::unique_ptr<GroupTransports>(new PeerServerTransports(std::move(server)));
}

}  // namespace nightshift
