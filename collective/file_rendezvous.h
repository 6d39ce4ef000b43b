// FileRendezvous: how the ranks of a group started by hand (benchmarks,
// process tests) learn each other's Peer addresses and host identities
// (base/host_identity.h) without a coordinator. Each rank writes its
// address and identity, one per line, to DIR/rank-R (atomically, by
// rename) and
// reads every other rank's file, polling the folder every few milliseconds
// until all are there or the deadline passes (DEADLINE_EXCEEDED naming the
// first missing rank). Production workers get addresses from the
// coordinator instead.
#ifndef NIGHTSHIFT_COLLECTIVE_FILE_RENDEZVOUS_H_
#define NIGHTSHIFT_COLLECTIVE_FILE_RENDEZVOUS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace nightshift::collective {

struct RendezvousPeers {
  std::vector<std::string> addresses;  // by rank
  std::vector<std::string> host_ids;   // by rank
};

absl::StatusOr<RendezvousPeers> FileRendezvous(const std::string& dir, int rank, int size,
                                               const std::string& address,
                                               const std::string& host_id, absl::Time deadline);

}  // namespace nightshift::collective

#endif  // NIGHTSHIFT_COLLECTIVE_FILE_RENDEZVOUS_H_
