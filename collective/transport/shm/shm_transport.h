// ShmTransport: the Transport between ranks of one group that share this
// host's memory — messages through ShmRings (shm_ring.h), one per ordered
// pair of ranks, and the GroupMemory capability through ShmRegions
// (shm_region.h), one per rank.
//
// Which peers: `ShmGroup::local[r]` marks the ranks this transport serves
// (a routing transport sends to the others another way); Send or RecvWith
// with any other rank is INVALID_ARGUMENT. Ranks keep the group's
// numbering.
//
// Rings and regions: a rank makes the rings it reads from — from its ring
// predecessor at Create (the only sender of the ring algorithms, so that
// its first send never waits), from any other peer on the first receive —
// and opens the rings it writes to on the first send, waiting until the
// receiver has made them. Files are named by job, generation, ranks and the
// receiving rank's label (unique on the host: its Peer address), so two
// groups with one job id never meet; each file's name is removed as soon
// as both sides have it, so nothing is left in /dev/shm when a process
// dies.
//
// Liveness: shared memory cannot tell a dead peer from a slow one, so every
// wait asks `liveness(peer)` between sleeps (the routing transport passes
// its gRPC control channel's view: OK while the peer's stream stands and it
// has not given up). Without one, waits end only at their deadline.
//
// Abort fails this rank's pending and later calls with the reason; it tells
// no peer (there is no channel for it here: the control channel does that).
// AwaitAborts reports the served peers whose liveness has failed.
//
// Threads: one thread at a time calls the Transport methods; Abort may
// also come from any thread. Once a ring is open, sends never wait on the
// receiver (ShmRingWriter queues); the first send to a peer waits until
// that peer has made the ring.
#ifndef NIGHTSHIFT_COLLECTIVE_TRANSPORT_SHM_SHM_TRANSPORT_H_
#define NIGHTSHIFT_COLLECTIVE_TRANSPORT_SHM_SHM_TRANSPORT_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "collective/transport/group_memory.h"
#include "collective/transport/peer_liveness.h"
#include "collective/transport/transport.h"

namespace nightshift::collective {

class ShmRing;        // internal: shm_ring.h
class ShmRingWriter;  // internal: shm_ring.h

struct ShmGroup {
  std::string job_id;
  int64_t generation = 0;
  int rank = 0;
  // Per rank: a label unique among the groups on this host (the Peer
  // address); it names the files that rank reads.
  std::vector<std::string> labels;
  std::vector<bool> local;  // per rank: served here (never this rank itself)
};

class ShmTransport final : public Transport, public GroupMemoryTransport {
 public:
  static absl::StatusOr<std::unique_ptr<ShmTransport>> Create(ShmGroup group,
                                                              PeerLiveness liveness);
  ~ShmTransport() override;

  using Transport::Send;
  int rank() const override { return group_.rank; }
  int size() const override { return static_cast<int>(group_.labels.size()); }
  absl::Status Send(int to, uint64_t tag, absl::Span<const absl::string_view> parts,
                    absl::Time deadline) override;
  absl::Status RecvWith(int from, uint64_t tag, size_t expected_bytes, absl::Time deadline,
                        const ConsumeParts& consume) override;
  // Waits until every queued message is in its ring.
  absl::Status Flush(absl::Time deadline) override;
  void Abort(const absl::Status& reason) override;
  std::set<int> AwaitAborts(int count, absl::Time deadline) override;

  // Every other rank is served here.
  bool CanMapGroupMemory() const override;
  absl::StatusOr<GroupMemory*> MapGroupMemory(size_t bytes_per_rank, absl::Time deadline) override;

 private:
  class Regions;
  ShmTransport(ShmGroup group, PeerLiveness liveness);
  std::string RingName(int from, int to) const;
  std::string RegionName(int owner) const;
  absl::Status Served(int peer) const;
  // OK while `peer` is alive and this rank has not given up.
  absl::Status Interrupted(int peer);
  // Prefixes `s` with the peer's rank, as the gRPC path's errors are.
  static absl::Status Named(int peer, const absl::Status& s);

  const ShmGroup group_;
  const PeerLiveness liveness_;
  std::vector<std::unique_ptr<ShmRing>> in_;         // by peer rank
  std::vector<std::unique_ptr<ShmRingWriter>> out_;  // by peer rank
  std::unique_ptr<Regions> regions_;
  absl::Mutex mu_;
  absl::Status aborted_ ABSL_GUARDED_BY(mu_);
};

}  // namespace nightshift::collective

#endif  // NIGHTSHIFT_COLLECTIVE_TRANSPORT_SHM_SHM_TRANSPORT_H_
