// GroupMembership: who is in one generation of a job's group, as
// rendezvous tells it — the coordinator's assignment, or FileRendezvous for
// groups started by hand. Bootstrap is its own axis: backends take this
// and never find peers themselves.
#ifndef NIGHTSHIFT_COLLECTIVE_TRANSPORT_MEMBERSHIP_H_
#define NIGHTSHIFT_COLLECTIVE_TRANSPORT_MEMBERSHIP_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace nightshift::collective {

// PEM files for mutual TLS on data connections: the CA that signs every
// worker, this worker's certificate chain and its private key (the files
// its Peer service uses).
struct DataTlsFiles {
  std::string ca;
  std::string cert;
  std::string key;
};

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
  // Whether the data to ranks not reached through shared memory goes
  // through TCP connections of its own (transport/socket) instead of the
  // gRPC streams, which then carry only control traffic.
  bool data_sockets = false;
  // Mutual TLS on those connections; none: plaintext (--insecure workers).
  std::optional<DataTlsFiles> data_tls;
  // The generation's secret (Assignment.group_key): the Peer service
  // admits only streams that present it. Empty in groups started by hand.
  std::string group_key;
};

}  // namespace nightshift::collective

#endif  // NIGHTSHIFT_COLLECTIVE_TRANSPORT_MEMBERSHIP_H_
