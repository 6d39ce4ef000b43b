// The gRPC flavour of TestGroup: one PeerServer per rank on a free
// loopback port, all in this process, each rank's transport a
// RoutingTransport as worker daemons run it (with shared memory: every
// rank gives this process's host identity; or with data sockets).
#include "base/host_identity.h"
#include "collective/group_for_test.h"
#include "collective/transport/grpc/peer_server.h"
#include "collective/transport/routing_transport.h"
#include "glog/logging.h"

namespace nightshift::collective {
namespace {

class GrpcGroupForTest final : public TestGroup {
 public:
  GrpcGroupForTest(int size, const CommunicatorOptions& options, const TransportWrapper& wrap,
                   bool shared_memory, bool data_sockets) {
    std::vector<std::string> addresses;
    for (int r = 0; r < size; ++r) {
      auto server = PeerServer::StartInsecureForTest("127.0.0.1:0");
      CHECK(server.ok()) << server.status();
      addresses.push_back((*server)->address());
      servers_.push_back(*std::move(server));
    }
    const std::vector<std::string> host_ids(size, HostIdentity());
    for (int r = 0; r < size; ++r) {
      GroupMembership group{options.job_id, options.generation, r,
                            addresses,      host_ids,           shared_memory};
      group.data_sockets = data_sockets;
      auto transport = ConnectGroup(servers_[r]->service(), std::move(group));
      CHECK(transport.ok()) << transport.status();
      raw_.push_back(transport->get());
      std::unique_ptr<Transport> t = *std::move(transport);
      if (wrap) t = wrap(r, std::move(t));
      comms_.push_back(std::make_unique<Communicator>(std::move(t), options));
    }
  }
  ~GrpcGroupForTest() override {
    comms_.clear();
    servers_.clear();
  }

  void Kill(int rank) override {
    servers_[rank]->Shutdown();
    raw_[rank]->TEST_DropConnections(absl::UnavailableError("killed"));
  }

 private:
  std::vector<std::unique_ptr<PeerServer>> servers_;
  std::vector<RoutingTransport*> raw_;
};

}  // namespace

std::unique_ptr<TestGroup> MakeGrpcTestGroup(int size, CommunicatorOptions options,
                                             TransportWrapper wrap, bool shared_memory,
                                             bool data_sockets) {
  return std::make_unique<GrpcGroupForTest>(size, options, wrap, shared_memory, data_sockets);
}

}  // namespace nightshift::collective
