// ShmRing: a single-producer, single-consumer ring of messages in a shared
// memory file, for ranks of one group that run on the same machine — the
// way MPI's shared-memory transport beats TCP on loopback.
//
// Layout of /dev/shm/<name>: a header (head and tail byte counters, two
// futex words, capacity, a ready mark) and `capacity` bytes of data.
// Messages are a 16-byte frame (tag, length) and the payload, padded to 16
// bytes, written at `head` and published by advancing it (release); the
// consumer reads at `tail` and frees by advancing it. A payload may wrap
// the end of the buffer: the consumer then sees it as two parts.
//
// The receiver creates the ring (Create); the sender opens it (Open),
// waiting until the receiver has made it, and then removes its name, so
// that nothing is left in /dev/shm whichever process dies (a receiver
// whose sender never came removes it on destruction). Blocking waits are
// shm_file.h's: spin, then sleep on a futex word, calling `interrupted()`
// between slices so that the caller can give up when the peer is known to
// be gone. Each ring has one producer and one consumer thread.
#ifndef NIGHTSHIFT_COLLECTIVE_TRANSPORT_SHM_SHM_RING_H_
#define NIGHTSHIFT_COLLECTIVE_TRANSPORT_SHM_SHM_RING_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "collective/transport/shm/shm_file.h"

namespace nightshift::collective {

class ShmRing {
 public:
  static constexpr size_t kDefaultCapacity = 8 << 20;
  // Returns a non-OK status to stop a wait early (the peer is gone).
  using Interrupted = ShmInterrupted;

  static absl::StatusOr<std::unique_ptr<ShmRing>> Create(const std::string& name,
                                                         size_t capacity = kDefaultCapacity);
  // Waits until the receiver has created `name`, or the deadline.
  static absl::StatusOr<std::unique_ptr<ShmRing>> Open(const std::string& name, absl::Time deadline,
                                                       const Interrupted& interrupted);
  ~ShmRing();
  ShmRing(const ShmRing&) = delete;
  ShmRing& operator=(const ShmRing&) = delete;

  // Producer: writes one message (the concatenation of `parts`).
  absl::Status Write(uint64_t tag, absl::Span<const absl::string_view> parts, absl::Time deadline,
                     const Interrupted& interrupted);
  // Producer: writes the message only if it fits now; false if not.
  bool TryWrite(uint64_t tag, absl::Span<const absl::string_view> parts);
  // Consumer: waits for the next message, checks tag and size, hands the
  // payload to `consume` in place (one or two parts), then frees it.
  absl::Status Read(uint64_t tag, size_t expected_bytes, absl::Time deadline,
                    const Interrupted& interrupted,
                    const std::function<void(absl::Span<const absl::string_view>)>& consume);

 private:
  struct Header;
  ShmRing(std::string path, bool owner, void* map, size_t map_bytes);
  void Publish(uint64_t tag, absl::Span<const absl::string_view> parts, size_t len);

  std::string path_;
  bool owner_;
  void* map_;
  size_t map_bytes_;
  Header* header_;
  char* data_;
};

// ShmRingWriter: the sending side of a ring that never blocks its caller on
// the receiver. A message goes straight into the ring when nothing is
// queued and it fits; otherwise a copy is queued and a writer thread moves
// it into the ring as the receiver frees space — as gRPC's send queue does.
// (A ring whose sender blocked when full could deadlock the ring
// all-reduce, where every rank sends a whole segment before receiving.)
// Send and Flush from one thread; the writer thread is internal.
class ShmRingWriter {
 public:
  // `interrupted` stops a blocked write when the peer is known gone.
  ShmRingWriter(std::unique_ptr<ShmRing> ring, ShmRing::Interrupted interrupted);
  ~ShmRingWriter();
  ShmRingWriter(const ShmRingWriter&) = delete;
  ShmRingWriter& operator=(const ShmRingWriter&) = delete;

  absl::Status Send(uint64_t tag, absl::Span<const absl::string_view> parts);
  // Waits until every queued message is in the ring.
  absl::Status Flush(absl::Time deadline);

 private:
  struct Queued {
    uint64_t tag;
    std::string bytes;
  };
  void WriterLoop();

  std::unique_ptr<ShmRing> ring_;
  ShmRing::Interrupted interrupted_;
  absl::Mutex mu_;
  std::deque<Queued> queue_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;  // the thread holds a message
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status failed_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace nightshift::collective

#endif  // NIGHTSHIFT_COLLECTIVE_TRANSPORT_SHM_SHM_RING_H_
