// PeerLiveness: how a backend that cannot see a peer's death itself (shared
// memory) or that cannot hear its abort notice (sockets) asks the control
// channel (the gRPC streams, transport/routing_transport.h) about a peer.
#ifndef NIGHTSHIFT_COLLECTIVE_TRANSPORT_PEER_LIVENESS_H_
#define NIGHTSHIFT_COLLECTIVE_TRANSPORT_PEER_LIVENESS_H_

#include <functional>

#include "absl/status/status.h"

namespace nightshift::collective {

// OK while rank `peer` is alive and has not given up; otherwise why not.
using PeerLiveness = std::function<absl::Status(int peer)>;

}  // namespace nightshift::collective

#endif  // NIGHTSHIFT_COLLECTIVE_TRANSPORT_PEER_LIVENESS_H_
