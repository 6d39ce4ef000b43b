// FileRendezvous: how the ranks of a group started by hand (benchmarks,
// process tests) learn each other's Peer addresses without a coordinator.
// Each rank writes its address to DIR/rank-R (atomically, by rename) and
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

absl::StatusOr<std::vector<std::string>> FileRendezvous(const std::string& dir, int rank,
                                                        int size, const std::string& address,
                                                        absl::Time deadline);

}  // namespace nightshift::collective

#endif  // NIGHTSHIFT_COLLECTIVE_FILE_RENDEZVOUS_H_
