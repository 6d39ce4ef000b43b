// Test support: builds a group of n communicators over one transport kind
// and runs a function on every rank, each in its own thread.
#ifndef NIGHTSHIFT_COLLECTIVE_GROUP_FOR_TEST_H_
#define NIGHTSHIFT_COLLECTIVE_GROUP_FOR_TEST_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "collective/communicator.h"

namespace nightshift::collective {

// Owns whatever the transports need (a hub, servers) for the group's life.
class TestGroup {
 public:
  virtual ~TestGroup() = default;
  // Simulates the death of `rank`: its server (if any) stops at once and
  // its connections drop.
  virtual void Kill(int rank) = 0;
  std::vector<std::unique_ptr<Communicator>>& communicators() { return comms_; }

  // Runs fn(communicator) on every rank concurrently; returns each status.
  std::vector<absl::Status> Run(const std::function<absl::Status(Communicator&)>& fn) {
    std::vector<absl::Status> results(comms_.size());
    std::vector<std::thread> threads;
    for (size_t r = 0; r < comms_.size(); ++r) {
      threads.emplace_back([&, r] { results[r] = fn(*comms_[r]); });
    }
    for (auto& t : threads) t.join();
    return results;
  }

 protected:
  std::vector<std::unique_ptr<Communicator>> comms_;
};

// kGrpcShm: the gRPC transport with shared memory between its (all
// loopback) peers, as workers on one machine run it; kSocket: data over
// plaintext data sockets, gRPC for control, as workers on different
// machines run it (under --insecure).
enum class TransportKind { kLocal, kGrpc, kGrpcShm, kSocket };
std::string TransportKindName(TransportKind kind);

// Lets a test wrap a rank's transport (to inject a stall or a crash).
using TransportWrapper =
    std::function<std::unique_ptr<Transport>(int rank, std::unique_ptr<Transport>)>;

std::unique_ptr<TestGroup> MakeTestGroup(TransportKind kind, int size,
                                         CommunicatorOptions options = {},
                                         TransportWrapper wrap = nullptr);

}  // namespace nightshift::collective

#endif  // NIGHTSHIFT_COLLECTIVE_GROUP_FOR_TEST_H_
