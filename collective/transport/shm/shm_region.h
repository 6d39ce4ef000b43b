// ShmRegion: one rank's region of bytes in a shared-memory file that the
// other ranks on the host map too, with kCounters 32-bit counters — what
// ShmTransport's GroupMemory (collective/transport/group_memory.h) is made
// of.
//
// Layout of /dev/shm/<name>: a header (the counters, written by the owner
// only and used as futex words; the byte count; how many peers will map
// it and how many have; a ready mark), then the bytes, 64-byte aligned.
//
// The owner creates it (Create) expecting `peers` openers; each peer maps
// it (Open, waiting until it exists) and the last one removes its name, so
// that nothing is left in /dev/shm whichever process dies afterwards (an
// owner whose peers never came removes it on destruction).
#ifndef NIGHTSHIFT_COLLECTIVE_TRANSPORT_SHM_SHM_REGION_H_
#define NIGHTSHIFT_COLLECTIVE_TRANSPORT_SHM_SHM_REGION_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "collective/transport/shm/shm_file.h"

namespace nightshift::collective {

class ShmRegion {
 public:
  static constexpr int kCounters = 2;

  static absl::StatusOr<std::unique_ptr<ShmRegion>> Create(const std::string& name, size_t bytes,
                                                           int peers);
  // Fails with INTERNAL if the region holds another number of bytes.
  static absl::StatusOr<std::unique_ptr<ShmRegion>> Open(const std::string& name, size_t bytes,
                                                         absl::Time deadline,
                                                         const ShmInterrupted& interrupted);
  ~ShmRegion();
  ShmRegion(const ShmRegion&) = delete;
  ShmRegion& operator=(const ShmRegion&) = delete;

  char* data() { return data_; }

  // Sets `counter` (< kCounters) to `value` (release) and wakes whoever
  // waits on it.
  void Publish(int counter, uint32_t value);
  // Waits until `counter` has reached `value` (counters wrap: "reached"
  // is a signed 32-bit difference ≥ 0).
  absl::Status AwaitReached(int counter, uint32_t value, absl::Time deadline,
                            const ShmInterrupted& interrupted, const char* what);

 private:
  struct Header;
  ShmRegion(std::string path, bool owner, ShmMapping map);
  std::atomic<uint32_t>& word(int counter);

  std::string path_;
  bool owner_;
  ShmMapping map_;
  Header* header_;
  char* data_;
};

}  // namespace nightshift::collective

#endif  // NIGHTSHIFT_COLLECTIVE_TRANSPORT_SHM_SHM_REGION_H_
