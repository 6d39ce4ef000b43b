#include "collective/transport/shm/shm_region.h"

#include <unistd.h>

#include "absl/strings/str_cat.h"

namespace nightshift::collective {
namespace {

constexpr uint64_t kReady = 0x4e53535445504d4dULL;  // "NSSTEPMM"

size_t Pad64(size_t n) { return (n + 63) & ~size_t{63}; }

}  // namespace

struct ShmRegion::Header {
  // Written by the owner only.
  alignas(64) std::atomic<uint32_t> counters[kCounters];
  alignas(64) uint64_t bytes;
  int32_t peers;
  std::atomic<int32_t> mapped;
  std::atomic<uint64_t> ready;
};

ShmRegion::ShmRegion(std::string path, bool owner, ShmMapping map)
    : path_(std::move(path)), owner_(owner), map_(map), header_(static_cast<Header*>(map.base)) {
  data_ = static_cast<char*>(map.base) + Pad64(sizeof(Header));
}

ShmRegion::~ShmRegion() {
  UnmapShm(map_);
  if (owner_) unlink(path_.c_str());  // gone already once every peer mapped it
}

absl::StatusOr<std::unique_ptr<ShmRegion>> ShmRegion::Create(const std::string& name, size_t bytes,
                                                             int peers) {
  const std::string path = absl::StrCat("/dev/shm/", name);
  absl::StatusOr<ShmMapping> map = CreateShmFile(path, Pad64(sizeof(Header)) + Pad64(bytes));
  if (!map.ok()) return map.status();
  Header* header = static_cast<Header*>(map->base);  // zeroed: counters are 0
  header->bytes = bytes;
  header->peers = peers;
  header->ready.store(kReady, std::memory_order_release);
  return std::unique_ptr<ShmRegion>(new ShmRegion(path, true, *map));
}

absl::StatusOr<std::unique_ptr<ShmRegion>> ShmRegion::Open(const std::string& name, size_t bytes,
                                                           absl::Time deadline,
                                                           const ShmInterrupted& interrupted) {
  const std::string path = absl::StrCat("/dev/shm/", name);
  absl::StatusOr<ShmMapping> map =
      OpenShmFile(path, sizeof(Header), deadline, interrupted, [](const void* base) {
        return static_cast<const Header*>(base)->ready.load(std::memory_order_acquire) == kReady;
      });
  if (!map.ok()) return map.status();
  Header* header = static_cast<Header*>(map->base);
  if (header->bytes != bytes || map->bytes < Pad64(sizeof(Header)) + Pad64(bytes)) {
    const uint64_t found = header->bytes;
    UnmapShm(*map);
    return absl::InternalError(absl::StrCat(path, " holds ", found, " bytes, expected ", bytes));
  }
  if (header->mapped.fetch_add(1, std::memory_order_acq_rel) + 1 == header->peers) {
    unlink(path.c_str());  // every peer has it: the name is no longer needed
  }
  return std::unique_ptr<ShmRegion>(new ShmRegion(path, false, *map));
}

std::atomic<uint32_t>& ShmRegion::word(int counter) { return header_->counters[counter]; }

void ShmRegion::Publish(int counter, uint32_t value) {
  word(counter).store(value, std::memory_order_release);
  WakeShmWord(&word(counter));
}

absl::Status ShmRegion::AwaitReached(int counter, uint32_t value, absl::Time deadline,
                                     const ShmInterrupted& interrupted, const char* what) {
  std::atomic<uint32_t>& w = word(counter);
  return WaitOnShmWord(
      [&] { return static_cast<int32_t>(w.load(std::memory_order_acquire) - value) >= 0; }, &w,
      deadline, interrupted, what);
}

}  // namespace nightshift::collective
