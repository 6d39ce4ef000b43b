// Shared-memory files under /dev/shm and futex waits on 32-bit words inside
// them: what ShmRing (message rings) and ShmRegion (one-sided step memory)
// both stand on.
//
// A waiter spins (yielding the core) for up to 1 ms — the other side
// usually answers within tens of microseconds, and a futex sleep costs a
// wake-up of about that much — then sleeps on the word in slices of at
// most 20 ms, calling `interrupted()` between slices so that it gives up
// once the peer is known to be gone.
#ifndef NIGHTSHIFT_COLLECTIVE_TRANSPORT_SHM_SHM_FILE_H_
#define NIGHTSHIFT_COLLECTIVE_TRANSPORT_SHM_SHM_FILE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace nightshift::collective {

// Returns a non-OK status to stop a wait early (the peer is gone).
using ShmInterrupted = std::function<absl::Status()>;

// A mapped file; the holder unmaps it (UnmapShm).
struct ShmMapping {
  void* base = nullptr;
  size_t bytes = 0;
};

// Creates `path` (a /dev/shm file) with `bytes` zero bytes — replacing a
// leftover of a crashed run of the same group — and maps it.
absl::StatusOr<ShmMapping> CreateShmFile(const std::string& path, size_t bytes);
// Maps `path` once it exists, is longer than `min_bytes` and
// is_ready(base) holds, polling every millisecond (bootstrap only) until
// the deadline or until `interrupted` fails.
absl::StatusOr<ShmMapping> OpenShmFile(const std::string& path, size_t min_bytes,
                                       absl::Time deadline, const ShmInterrupted& interrupted,
                                       const std::function<bool(const void*)>& is_ready);
void UnmapShm(const ShmMapping& mapping);

// Waits until ready(), as described above; whoever makes it true changes
// `word` and calls WakeShmWord. DEADLINE_EXCEEDED carries `what`.
absl::Status WaitOnShmWord(const std::function<bool()>& ready, std::atomic<uint32_t>* word,
                           absl::Time deadline, const ShmInterrupted& interrupted,
                           const char* what);
void WakeShmWord(std::atomic<uint32_t>* word);

}  // namespace nightshift::collective

#endif  // NIGHTSHIFT_COLLECTIVE_TRANSPORT_SHM_SHM_FILE_H_
