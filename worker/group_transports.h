// GroupTransports: where a worker daemon gets the transport of each job it
// is assigned — the daemon's one seam to the data plane, so that tests run
// jobs over in-process transports and the daemon itself never names gRPC.
//
// PeerServerTransports (StartPeerServer) is what data-center workers run:
// a PeerServer on --listen, and for each assignment a RoutingTransport
// (collective/transport/routing_transport.h) over the peers' addresses and
// host identities: shared memory with peers on this host, data sockets
// (mutual TLS with this worker's files, plaintext under --insecure) with
// the rest. Edge workers have none: they never join a ring.
// Connect is called from job threads; implementations are thread-safe.
#ifndef NIGHTSHIFT_WORKER_GROUP_TRANSPORTS_H_
#define NIGHTSHIFT_WORKER_GROUP_TRANSPORTS_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "collective/transport/transport.h"
#include "nightshift/v1/coordinator.pb.h"
#include "security/credentials.h"

namespace nightshift {

class GroupTransports {
 public:
  virtual ~GroupTransports() = default;
  // Where ring neighbours reach this worker (RegisterRequest.peer_address).
  virtual std::string peer_address() const = 0;
  // Who shares memory with it (RegisterRequest.host_id).
  virtual std::string host_id() const = 0;
  // This worker's transport in `assignment`'s group.
  virtual absl::StatusOr<std::unique_ptr<collective::Transport>> Connect(
      const v1::Assignment& assignment) = 0;
};

// A PeerServer on `listen` ("HOST:PORT", port 0: any free one), secured
// like every link of this process (mutual TLS between workers); each
// group's streams present the assignment's group key.
// `share_memory` false: this worker reports no host identity, so it shares
// memory with no one and its data goes over data sockets even to workers
// on this host, exactly as between machines.
absl::StatusOr<std::unique_ptr<GroupTransports>> StartPeerServer(
    const std::string& listen, const security::TransportSecurity& security,
    bool share_memory = true);

}  // namespace nightshift

#endif  // NIGHTSHIFT_WORKER_GROUP_TRANSPORTS_H_
