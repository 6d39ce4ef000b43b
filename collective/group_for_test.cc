#include "collective/group_for_test.h"

#include "collective/transport/local/local_transport.h"
#include "glog/logging.h"

namespace nightshift::collective {
namespace {

class LocalGroup final : public TestGroup {
 public:
  LocalGroup(int size, const CommunicatorOptions& options) : hub_(size) {
    for (int r = 0; r < size; ++r) {
      comms_.push_back(std::make_unique<Communicator>(hub_.Connect(r), options));
    }
  }
  ~LocalGroup() override { comms_.clear(); }

 private:
  LocalHub hub_;
};

}  // namespace

std::unique_ptr<TestGroup> MakeGrpcTestGroup(int size, CommunicatorOptions options);

std::string TransportKindName(TransportKind kind) {
  return kind == TransportKind::kLocal ? "Local" : "Grpc";
}

std::unique_ptr<TestGroup> MakeTestGroup(TransportKind kind, int size,
                                         CommunicatorOptions options) {
  if (options.job_id.empty()) options.job_id = "test-job";
  if (kind == TransportKind::kLocal) return std::make_unique<LocalGroup>(size, options);
  return MakeGrpcTestGroup(size, options);
}

}  // namespace nightshift::collective
