// In-process transport: the ranks of a group are threads of one process
// that share a LocalHub. For unit tests of the algorithms and the
// communicator, and for running several ranks side by side.
//
// Send copies the bytes into the receiver's queue at once (Flush is a
// no-op). Kill(rank) simulates a crash: receives from that rank fail with
// UNAVAILABLE as soon as its queue is empty. A rank that simply stops
// calling (a stall) makes its peers' receives time out.
// The hub is thread-safe; each transport is used by one thread.
#ifndef NIGHTSHIFT_COLLECTIVE_TRANSPORT_LOCAL_LOCAL_TRANSPORT_H_
#define NIGHTSHIFT_COLLECTIVE_TRANSPORT_LOCAL_LOCAL_TRANSPORT_H_

#include <deque>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "collective/transport/transport.h"

namespace nightshift::collective {

class LocalHub {
 public:
  explicit LocalHub(int size);
  LocalHub(const LocalHub&) = delete;
  LocalHub& operator=(const LocalHub&) = delete;

  // The transport of `rank`; the hub must outlive it.
  std::unique_ptr<Transport> Connect(int rank);
  void Kill(int rank);
  int size() const { return size_; }

 private:
  friend class LocalTransport;
  struct Message {
    uint64_t tag;
    std::string bytes;
  };

  std::deque<Message>& Queue(int from, int to) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return queues_[from * size_ + to];
  }

  const int size_;
  absl::Mutex mu_;
  std::vector<std::deque<Message>> queues_ ABSL_GUARDED_BY(mu_);
  std::vector<bool> dead_ ABSL_GUARDED_BY(mu_);
  std::vector<absl::Status> aborted_ ABSL_GUARDED_BY(mu_);
  std::vector<std::set<int>> aborted_by_ ABSL_GUARDED_BY(mu_);  // per receiver
};

}  // namespace nightshift::collective

#endif  // NIGHTSHIFT_COLLECTIVE_TRANSPORT_LOCAL_LOCAL_TRANSPORT_H_
