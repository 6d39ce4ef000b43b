// Inbox: the chunks that arrived for this process's rank of one group
// (job, generation), queued per source rank in arrival order, payloads
// still in the network buffers gRPC read them into.
//
// Peer streams push into it from gRPC threads; the communicator's thread
// pops with a deadline. A source whose stream ended is marked closed:
// queued chunks are still delivered, then pops fail with UNAVAILABLE
// naming it. A peer's abort notice fails pending pops and is remembered
// for the failure census. Thread-safe.
#ifndef NIGHTSHIFT_COLLECTIVE_TRANSPORT_GRPC_INBOX_H_
#define NIGHTSHIFT_COLLECTIVE_TRANSPORT_GRPC_INBOX_H_

#include <deque>
#include <map>
#include <set>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "collective/transport/grpc/peer_chunk_codec.h"
#include "collective/transport/transport.h"

namespace nightshift::collective {

class Inbox {
 public:
  void Push(int source, DecodedPeerChunk chunk);
  void CloseSource(int source, const absl::Status& why);
  // Waits for the next chunk from `source` (tag and size checked) and hands
  // its payload to `consume` on the calling thread, outside the lock.
  absl::Status Pop(int source, uint64_t tag, size_t expected_bytes, absl::Time deadline,
                   const Transport::ConsumeParts& consume);
  void Abort(const absl::Status& reason);
  // OK, or why nothing more will come from `source`: the group was aborted
  // or its stream from `source` ended (for shared-memory peers, whose data
  // does not come through the inbox).
  absl::Status Check(int source);
  // OK, or why the group was aborted (here, or by a peer's notice).
  absl::Status Aborted();
  // `source` gave up on the group: fails pending pops with `reason`.
  void NoteAbort(int source, const absl::Status& reason);
  std::set<int> AwaitAborts(int count, absl::Time deadline);

 private:
  struct Source {
    std::deque<DecodedPeerChunk> queue;
    absl::Status closed;
  };

  absl::Mutex mu_;
  std::map<int, Source> sources_ ABSL_GUARDED_BY(mu_);
  absl::Status aborted_ ABSL_GUARDED_BY(mu_);
  std::set<int> aborted_by_ ABSL_GUARDED_BY(mu_);
};

}  // namespace nightshift::collective

#endif  // NIGHTSHIFT_COLLECTIVE_TRANSPORT_GRPC_INBOX_H_
