#include "collective/transport/shm/shm_file.h"

#include <fcntl.h>
#include <linux/futex.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/cpu_relax.h"

namespace nightshift::collective {
namespace {

constexpr absl::Duration kPollSlice = absl::Milliseconds(20);
constexpr absl::Duration kSpin = absl::Milliseconds(1);

uint32_t* Raw(std::atomic<uint32_t>* word) { return reinterpret_cast<uint32_t*>(word); }

}  // namespace

absl::StatusOr<ShmMapping> CreateShmFile(const std::string& path, size_t bytes) {
  unlink(path.c_str());  // a leftover of a crashed run of the same group
  const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
  if (fd < 0) return absl::UnavailableError(absl::StrCat(path, ": ", strerror(errno)));
  if (ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
    close(fd);
    unlink(path.c_str());
    return absl::UnavailableError(absl::StrCat(path, ": cannot size: ", strerror(errno)));
  }
  void* map = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (map == MAP_FAILED) {
    unlink(path.c_str());
    return absl::UnavailableError(absl::StrCat(path, ": mmap: ", strerror(errno)));
  }
  return ShmMapping{map, bytes};
}

absl::StatusOr<ShmMapping> OpenShmFile(const std::string& path, size_t min_bytes,
                                       absl::Time deadline, const ShmInterrupted& interrupted,
                                       const std::function<bool(const void*)>& is_ready) {
  while (true) {
    const int fd = open(path.c_str(), O_RDWR);
    if (fd >= 0) {
      struct stat st;
      if (fstat(fd, &st) == 0 && static_cast<size_t>(st.st_size) > min_bytes) {
        void* map = mmap(nullptr, st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        close(fd);
        if (map == MAP_FAILED) return absl::UnavailableError(absl::StrCat(path, ": mmap failed"));
        const ShmMapping mapping{map, static_cast<size_t>(st.st_size)};
        if (is_ready(map)) return mapping;
        UnmapShm(mapping);
      } else {
        close(fd);
      }
    }
    if (absl::Status s = interrupted(); !s.ok()) return s;
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError(absl::StrCat(path, " was never created by its owner"));
    }
    absl::SleepFor(absl::Milliseconds(1));  // bootstrap only: waits for the peer's file
  }
}

void UnmapShm(const ShmMapping& mapping) {
  if (mapping.base != nullptr) munmap(mapping.base, mapping.bytes);
}

absl::Status WaitOnShmWord(const std::function<bool()>& ready, std::atomic<uint32_t>* word,
                           absl::Time deadline, const ShmInterrupted& interrupted,
                           const char* what) {
  const absl::Time spin_until = absl::Now() + kSpin;
  while (absl::Now() < spin_until) {
    for (int i = 0; i < 64; ++i) {
      if (ready()) return absl::OkStatus();
      CpuRelax();
    }
    sched_yield();  // with more ranks than cores, let the peer run
  }
  while (true) {
    const uint32_t seen = word->load(std::memory_order_acquire);
    if (ready()) return absl::OkStatus();
    if (absl::Status s = interrupted(); !s.ok()) return s;
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return absl::DeadlineExceededError(what);
    struct timespec ts = absl::ToTimespec(std::min(left, kPollSlice));
    syscall(SYS_futex, Raw(word), FUTEX_WAIT, seen, &ts, nullptr, 0);
  }
}

void WakeShmWord(std::atomic<uint32_t>* word) {
  syscall(SYS_futex, Raw(word), FUTEX_WAKE, INT32_MAX, nullptr, nullptr, 0);
}

}  // namespace nightshift::collective
