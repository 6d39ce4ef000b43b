// RoutingTransport: one group's Transport composed per peer from backends —
// shared memory (transport/shm) for peers that share this host's memory,
// data sockets (transport/socket) or gRPC (transport/grpc) for the rest —
// what worker daemons, benchmarks and process tests run.
//
// Routing is decided once, at ConnectGroup, from the host identities the
// ranks exchanged at rendezvous (base/host_identity.h; the coordinator
// hands them out with the peer addresses): a peer goes through shared
// memory when `shared_memory` is on and its identity equals this rank's
// (an empty identity equals none); any other peer goes through data sockets
// when `data_sockets` is on, else through gRPC. Every rank computes the
// same routes from the same list.
//
// The gRPC streams are every peer's control channel, whichever way its data
// goes: Abort tells every peer through them, AwaitAborts counts what came
// back through them, and a shared-memory wait asks them whether the peer
// is still there (its stream ends when its process dies); the socket
// backend's offers travel on them too. Before the first
// shared-memory send to a peer, or mapping group memory, this rank opens
// its stream to that peer (Connect), so that its own death shows there.
//
// GroupMemory is offered when every rank shares this host (the one-sided
// step, collective/shared_step.h).
//
// Threads: as Transport; TEST_DropConnections may come from any thread.
// Destruction stops the shared-memory writers before the streams they
// watch.
#ifndef NIGHTSHIFT_COLLECTIVE_TRANSPORT_ROUTING_TRANSPORT_H_
#define NIGHTSHIFT_COLLECTIVE_TRANSPORT_ROUTING_TRANSPORT_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "collective/transport/group_memory.h"
#include "collective/transport/grpc/grpc_transport.h"
#include "collective/transport/grpc/peer_service.h"
#include "collective/transport/membership.h"
#include "collective/transport/shm/shm_transport.h"
#include "collective/transport/socket/socket_transport.h"
#include "collective/transport/transport.h"

namespace nightshift::collective {

class RoutingTransport final : public Transport, public GroupMemoryTransport {
 public:
  using Transport::Send;
  int rank() const override { return grpc_->rank(); }
  int size() const override { return grpc_->size(); }
  absl::Status Send(int to, uint64_t tag, absl::Span<const absl::string_view> parts,
                    absl::Time deadline) override;
  absl::Status RecvWith(int from, uint64_t tag, size_t expected_bytes, absl::Time deadline,
                        const ConsumeParts& consume) override;
  absl::Status RecvInto(int from, uint64_t tag, absl::Span<const absl::Span<char>> into,
                        absl::Time deadline) override;
  absl::Status Flush(absl::Time deadline) override;
  void Abort(const absl::Status& reason) override;
  std::set<int> AwaitAborts(int count, absl::Time deadline) override {
    return grpc_->AwaitAborts(count, deadline);
  }
  bool CanMapGroupMemory() const override { return shm_ != nullptr && shm_->CanMapGroupMemory(); }
  absl::StatusOr<GroupMemory*> MapGroupMemory(size_t bytes_per_rank, absl::Time deadline) override;

  // Tests only: drops every connection without a word, as a crashed
  // process would.
  void TEST_DropConnections(const absl::Status& reason);
  enum class Route { kGrpc, kSharedMemory, kSocket };
  Route RouteTo(int peer) const { return routes_[peer]; }
  bool SocketsUseTls() const { return socket_ != nullptr && socket_->uses_tls(); }
  // Whether data to or from `peer` goes through shared memory.
  bool SharesMemoryWith(int peer) const { return routes_[peer] == Route::kSharedMemory; }

 private:
  friend absl::StatusOr<std::unique_ptr<RoutingTransport>> ConnectGroup(PeerService*,
                                                                        GroupMembership);
  RoutingTransport(std::unique_ptr<GrpcTransport> grpc, std::vector<Route> routes)
      : grpc_(std::move(grpc)), routes_(std::move(routes)), connected_(routes_.size(), false) {}
  absl::Status EnsureConnected(int peer, absl::Time deadline);

  std::unique_ptr<GrpcTransport> grpc_;      // every peer's control channel
  std::unique_ptr<ShmTransport> shm_;        // peers on this host; null if none
  std::unique_ptr<SocketTransport> socket_;  // peers over data sockets; null if none
  std::vector<Route> routes_;                // by rank
  std::vector<bool> connected_;              // our stream to the peer is open
};

// Opens this rank's side of the group on `service` (which must outlive the
// transport) and chooses each peer's route.
absl::StatusOr<std::unique_ptr<RoutingTransport>> ConnectGroup(PeerService* service,
                                                               GroupMembership group);

}  // namespace nightshift::collective

#endif  // NIGHTSHIFT_COLLECTIVE_TRANSPORT_ROUTING_TRANSPORT_H_
