// GroupMemory: the optional capability of a transport whose ranks all share
// this host's memory (their HostIdentity matches): one region per rank
// that every rank maps, and per rank a few 32-bit counters that only the
// owner writes and the others wait on. Bytes and counters only; what the
// bytes mean (a one-sided training step) is collective/shared_step.h's.
//
// The communicator asks for it (dynamic_cast to GroupMemoryTransport);
// MapGroupMemory is collective: every rank calls it, with the same size,
// or none does. A peer that dies or gives up fails Await naming its rank.
#ifndef NIGHTSHIFT_COLLECTIVE_TRANSPORT_GROUP_MEMORY_H_
#define NIGHTSHIFT_COLLECTIVE_TRANSPORT_GROUP_MEMORY_H_

#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace nightshift::collective {

class GroupMemory {
 public:
  static constexpr int kCounters = 2;
  virtual ~GroupMemory() = default;
  virtual size_t bytes_per_rank() const = 0;
  // Rank `rank`'s region, 64-byte aligned, zero-filled when first mapped.
  virtual char* region(int rank) = 0;
  // Sets this rank's `counter` (< kCounters) to `value` (release) and
  // wakes its waiters.
  virtual void Publish(int counter, uint32_t value) = 0;
  // Waits until rank `peer`'s `counter` has reached `value` (a signed
  // 32-bit difference ≥ 0, so counters may wrap); fails naming the rank
  // when the peer is known gone (UNAVAILABLE, or its abort reason) or at
  // the deadline (DEADLINE_EXCEEDED).
  virtual absl::Status Await(int peer, int counter, uint32_t value, absl::Time deadline) = 0;
};

class GroupMemoryTransport {
 public:
  virtual ~GroupMemoryTransport() = default;
  // Whether MapGroupMemory can work here: the same answer on every rank.
  virtual bool CanMapGroupMemory() const = 0;
  // Maps every rank's region of `bytes_per_rank`; the memory lives as long
  // as the transport. Mapping again with the same size returns the same
  // memory.
  virtual absl::StatusOr<GroupMemory*> MapGroupMemory(size_t bytes_per_rank,
                                                      absl::Time deadline) = 0;
};

}  // namespace nightshift::collective

#endif  // NIGHTSHIFT_COLLECTIVE_TRANSPORT_GROUP_MEMORY_H_
