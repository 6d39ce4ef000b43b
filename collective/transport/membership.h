// GroupMembership: who is in one generation of a job's group, as
// rendezvous tells it — the coordinator's assignment, or FileRendezvous for
// groups started by hand. Bootstrap is its own axis: backends take this
// and never find peers themselves.
#ifndef NIGHTSHIFT_COLLECTIVE_TRANSPORT_MEMBERSHIP_H_
#define NIGHTSHIFT_COLLECTIVE_TRANSPORT_MEMBERSHIP_H_

#include <cstdint>
#include <string>
#include <vector>

namespace nightshift::collective {

struct GroupMembership {
  std::string job_id;
  int64_t generation = 0;
  int rank = 0;
  std::vector<std::string> peer_addresses;  // Peer service of each rank
  // HostIdentity (base/host_identity.h) of each rank; empty: unknown.
  std::vector<std::string> host_ids;
  // Whether ranks with equal host identities exchange data through shared
  // memory (the routing transport); gRPC alone ignores it.
  bool shared_memory = true;
  // The generation's secret (Assignment.group_key): the Peer service
  // admits only streams that present it. Empty in groups started by hand.
  std::string group_key;
};

}  // namespace nightshift::collective

#endif  // NIGHTSHIFT_COLLECTIVE_TRANSPORT_MEMBERSHIP_H_
