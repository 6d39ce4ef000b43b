// Inbox: the messages that arrived for this process's rank of one group
// (job, generation), queued per source rank in arrival order.
//
// Peer streams push into it from gRPC threads; the communicator's thread
// pops with a deadline. A source whose stream ended is marked closed:
// queued messages are still delivered, then pops fail with UNAVAILABLE
// naming it. Thread-safe.
#ifndef NIGHTSHIFT_COLLECTIVE_TRANSPORT_GRPC_INBOX_H_
#define NIGHTSHIFT_COLLECTIVE_TRANSPORT_GRPC_INBOX_H_

#include <deque>
#include <functional>
#include <map>
#include <set>
#include <string>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "collective/transport/grpc/buffer_pool.h"

namespace nightshift::collective {

class Inbox {
 public:
  void Push(int source, uint64_t tag, std::string bytes);
  void CloseSource(int source, const absl::Status& why);
  // Waits for the next message from `source` (tag and size checked) and
  // hands it to `consume` on the calling thread, outside the lock.
  absl::Status Pop(int source, uint64_t tag, size_t expected_bytes,
                   absl::Time deadline,
                   const std::function<void(absl::string_view)>& consume);
  void Abort(const absl::Status& reason);
  // `source` gave up on the group: fails pending pops with `reason`.
  void NoteAbort(int source, const absl::Status& reason);
  std::set<int> AwaitAborts(int count, absl::Time deadline);
  // A recycled buffer for the next payload to be parsed into; Pop returns
  // payloads here once consumed.
  std::string TakeBuffer() { return buffers_.Get(); }

 private:
  struct Message {
    uint64_t tag;
    std::string bytes;
  };
  struct Source {
    std::deque<Message> queue;
    absl::Status closed;
  };

  BufferPool buffers_;
  absl::Mutex mu_;
  std::map<int, Source> sources_ ABSL_GUARDED_BY(mu_);
  absl::Status aborted_ ABSL_GUARDED_BY(mu_);
  std::set<int> aborted_by_ ABSL_GUARDED_BY(mu_);
};

}  // namespace nightshift::collective

#endif  // NIGHTSHIFT_COLLECTIVE_TRANSPORT_GRPC_INBOX_H_
