// ShmRegion: one rank's flat parameters and gradients in a shared-memory
// file that the other ranks on the machine map too, with two step counters
// — the memory of the one-sided sharded step (collective/shared_step.h).
//
// Layout of /dev/shm/<name>: a header (two 32-bit counters, written by the
// owner only and used as futex words; the float count; how many peers
// will map it and how many have; a ready mark), then `floats` parameters
// and `floats` gradients, each 64-byte aligned.
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
  enum Counter { kGradientsReady = 0, kParametersReady = 1 };

  static absl::StatusOr<std::unique_ptr<ShmRegion>> Create(const std::string& name,
                                                           int64_t floats, int peers);
  // Fails with INTERNAL if the region holds another number of floats.
  static absl::StatusOr<std::unique_ptr<ShmRegion>> Open(const std::string& name,
                                                         int64_t floats, absl::Time deadline,
                                                         const ShmInterrupted& interrupted);
  ~ShmRegion();
  ShmRegion(const ShmRegion&) = delete;
  ShmRegion& operator=(const ShmRegion&) = delete;

  float* parameters() { return parameters_; }
  float* gradients() { return gradients_; }

  // Sets `counter` to `value` (release) and wakes whoever waits on it.
  void Publish(Counter counter, uint32_t value);
  // Waits until `counter` has reached `value` (counters wrap: "reached"
  // is a signed 32-bit difference ≥ 0).
  absl::Status AwaitReached(Counter counter, uint32_t value, absl::Time deadline,
                            const ShmInterrupted& interrupted, const char* what);

 private:
  struct Header;
  ShmRegion(std::string path, bool owner, ShmMapping map);
  std::atomic<uint32_t>& word(Counter counter);

  std::string path_;
  bool owner_;
  ShmMapping map_;
  Header* header_;
  float* parameters_;
  float* gradients_;
};

}  // namespace nightshift::collective

#endif  // NIGHTSHIFT_COLLECTIVE_TRANSPORT_SHM_SHM_REGION_H_
