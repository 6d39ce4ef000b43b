// BufferPool: recycled byte buffers, so that messages of the same sizes do
// not make the allocator map and fault in fresh pages on every operation
// (glibc serves large blocks with mmap; at 16 MiB per all-reduce that cost
// half the bandwidth). Shared by the backends that copy messages into
// buffers of their own (gRPC, MPI). Thread-safe; keeps at most kMaxKept
// buffers.
#ifndef NIGHTSHIFT_COLLECTIVE_TRANSPORT_BUFFER_POOL_H_
#define NIGHTSHIFT_COLLECTIVE_TRANSPORT_BUFFER_POOL_H_

#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"

namespace nightshift::collective {

class BufferPool {
 public:
  static constexpr size_t kMaxKept = 256;

  // A buffer with whatever capacity it had (empty contents not promised).
  std::string Get() {
    absl::MutexLock lock(&mu_);
    if (free_.empty()) return std::string();
    std::string s = std::move(free_.back());
    free_.pop_back();
    return s;
  }

  void Put(std::string s) {
    absl::MutexLock lock(&mu_);
    if (free_.size() < kMaxKept) free_.push_back(std::move(s));
  }

 private:
  absl::Mutex mu_;
  std::vector<std::string> free_ ABSL_GUARDED_BY(mu_);
};

}  // namespace nightshift::collective

#endif  // NIGHTSHIFT_COLLECTIVE_TRANSPORT_BUFFER_POOL_H_
