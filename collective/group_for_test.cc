#include "collective/group_for_test.h"

#include "collective/transport/local/local_transport.h"
#include "glog/logging.h"

namespace nightshift::collective {
namespace {

class LocalGroup final : public TestGroup {
 public:
  LocalGroup(int size, const CommunicatorOptions& options, const TransportWrapper& wrap)
      : hub_(size) {
    for (int r = 0; r < size; ++r) {
      std::unique_ptr<Transport> t = hub_.Connect(r);
      if (wrap) t = wrap(r, std::move(t));
      comms_.push_back(std::make_unique<Communicator>(std::move(t), options));
    }
  }
  ~LocalGroup() override { comms_.clear(); }
  void Kill(int rank) override { hub_.Kill(rank); }

 private:
  LocalHub hub_;
};

}  // namespace

std::unique_ptr<TestGroup> MakeGrpcTestGroup(int size, CommunicatorOptions options,
                                             TransportWrapper wrap, bool shared_memory,
                                             bool data_sockets);

std::string TransportKindName(TransportKind kind) {
  switch (kind) {
    case TransportKind::kLocal:
      return "Local";
    case TransportKind::kGrpc:
      return "Grpc";
    case TransportKind::kGrpcShm:
      return "GrpcShm";
    case TransportKind::kSocket:
      return "Socket";
  }
  return "?";
}

std::unique_ptr<TestGroup> MakeTestGroup(TransportKind kind, int size, CommunicatorOptions options,
                                         TransportWrapper wrap) {
  if (options.job_id.empty()) options.job_id = "test-job";
  if (kind == TransportKind::kLocal) return std::make_unique<LocalGroup>(size, options, wrap);
  return MakeGrpcTestGroup(size, options, wrap, kind == TransportKind::kGrpcShm,
                           kind == TransportKind::kSocket);
}

}  // namespace nightshift::collective
