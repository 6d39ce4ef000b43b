#include "worker/group_transports.h"

#include <optional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/host_identity.h"
#include "base/status_macros.h"
#include "collective/transport/grpc/peer_server.h"
#include "collective/transport/routing_transport.h"
#include "glog/logging.h"

namespace nightshift {
namespace {

// "1 shared memory, 2 TLS socket, ...": how this rank reaches each peer.
std::string Routes(const collective::RoutingTransport& t) {
  using Route = collective::RoutingTransport::Route;
  std::vector<std::string> out;
  for (int r = 0; r < t.size(); ++r) {
    if (r == t.rank()) continue;
    const Route route = t.RouteTo(r);
    out.push_back(absl::StrCat(r, " ",
                               route == Route::kSharedMemory ? "shared memory"
                               : route == Route::kGrpc       ? "gRPC"
                               : t.SocketsUseTls()           ? "TLS socket"
                                                             : "plaintext socket"));
  }
  return absl::StrJoin(out, ", ");
}

class PeerServerTransports final : public GroupTransports {
 public:
  PeerServerTransports(std::unique_ptr<collective::PeerServer> server,
                       const security::TransportSecurity& security, bool share_memory)
      : server_(std::move(server)), host_id_(share_memory ? HostIdentity() : "") {
    if (!security.insecure) {
      data_tls_ = collective::DataTlsFiles{security.tls.ca, security.tls.cert, security.tls.key};
    }
  }

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
    // Data between hosts on TCP connections of its own, TLS as the Peer
    // service's (bench/README.md, issue 12); gRPC carries control.
    group.data_sockets = true;
    group.data_tls = data_tls_;
    ASSIGN_OR_RETURN(std::unique_ptr<collective::RoutingTransport> t,
                     collective::ConnectGroup(server_->service(), std::move(group)));
    LOG(INFO) << "job " << a.job_id() << " generation " << a.generation() << " rank " << a.rank()
              << ": data to peers " << Routes(*t);
    return std::unique_ptr<collective::Transport>(std::move(t));
  }

 private:
  std::unique_ptr<collective::PeerServer> server_;
  const std::string host_id_;
  std::optional<collective::DataTlsFiles> data_tls_;  // none: --insecure
};

}  // namespace

absl::StatusOr<std::unique_ptr<GroupTransports>> StartPeerServer(
    const std::string& listen, const security::TransportSecurity& security, bool share_memory) {
  ASSIGN_OR_RETURN(
      std::unique_ptr<collective::PeerServer> server,
      collective::PeerServer::Start(listen, security::ServerCredentials(security, listen),
                                    security::ChannelCredentials(security)));
  return std::unique_ptr<GroupTransports>(
      new PeerServerTransports(std::move(server), security, share_memory));
}

}  // namespace nightshift
