// The gRPC flavour of TestGroup: one PeerServer per rank on a free
// loopback port, all in this process.
#include "collective/group_for_test.h"
#include "collective/transport/grpc/grpc_transport.h"
#include "collective/transport/grpc/peer_server.h"
#include "glog/logging.h"

namespace nightshift::collective {
namespace {

class GrpcGroupForTest final : public TestGroup {
 public:
  GrpcGroupForTest(int size, const CommunicatorOptions& options, const TransportWrapper& wrap,
                   bool shared_memory) {
    std::vector<std::string> addresses;
    for (int r = 0; r < size; ++r) {
      auto server = PeerServer::Start("127.0.0.1:0");
      CHECK(server.ok()) << server.status();
      addresses.push_back((*server)->address());
      servers_.push_back(*std::move(server));
    }
    for (int r = 0; r < size; ++r) {
      auto transport = GrpcTransport::Create(
          servers_[r]->service(),
          {options.job_id, options.generation, r, addresses, shared_memory});
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
    raw_[rank]->Cancel(absl::UnavailableError("killed"));
  }

 private:
  std::vector<std::unique_ptr<PeerServer>> servers_;
  std::vector<GrpcTransport*> raw_;
};

}  // namespace

std::unique_ptr<TestGroup> MakeGrpcTestGroup(int size, CommunicatorOptions options,
                                             TransportWrapper wrap, bool shared_memory) {
  return std::make_unique<GrpcGroupForTest>(size, options, wrap, shared_memory);
}

}  // namespace nightshift::collective
