#include "collective/transport/shm/shm_ring.h"

#include <fcntl.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sched.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace nightshift::collective {
namespace {

constexpr uint64_t kReady = 0x4e53484d52494e47ULL;  // "NSHMRING"
constexpr size_t kFrame = 16;
constexpr absl::Duration kPollSlice = absl::Milliseconds(20);
constexpr absl::Duration kSpin = absl::Milliseconds(1);

size_t Pad16(size_t n) { return (n + 15) & ~size_t{15}; }

void FutexWait(uint32_t* word, uint32_t expected, absl::Duration timeout) {
  struct timespec ts = absl::ToTimespec(timeout);
  syscall(SYS_futex, word, FUTEX_WAIT, expected, &ts, nullptr, 0);
}

void FutexWakeAll(uint32_t* word) { syscall(SYS_futex, word, FUTEX_WAKE, INT32_MAX, nullptr, nullptr, 0); }

}  // namespace

struct ShmRing::Header {
  alignas(64) std::atomic<uint64_t> head;  // bytes published by the producer
  alignas(64) std::atomic<uint64_t> tail;  // bytes freed by the consumer
  alignas(64) std::atomic<uint32_t> data_seq;   // futex: bumped on publish
  alignas(64) std::atomic<uint32_t> space_seq;  // futex: bumped on free
  alignas(64) uint64_t capacity;
  std::atomic<uint64_t> ready;
};

ShmRing::ShmRing(std::string path, bool owner, void* map, size_t map_bytes)
    : path_(std::move(path)),
      owner_(owner),
      map_(map),
      map_bytes_(map_bytes),
      header_(static_cast<Header*>(map)),
      data_(static_cast<char*>(map) + Pad16(sizeof(Header))) {}

ShmRing::~ShmRing() {
  munmap(map_, map_bytes_);
  if (owner_) unlink(path_.c_str());
}

absl::StatusOr<std::unique_ptr<ShmRing>> ShmRing::Create(const std::string& name,
                                                         size_t capacity) {
  const std::string path = absl::StrCat("/dev/shm/", name);
  capacity = Pad16(capacity);
  const size_t bytes = Pad16(sizeof(Header)) + capacity;
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
  std::unique_ptr<ShmRing> ring(new ShmRing(path, true, map, bytes));
  ring->header_->capacity = capacity;  // the file starts zeroed: counters are 0
  ring->header_->ready.store(kReady, std::memory_order_release);
  return ring;
}

absl::StatusOr<std::unique_ptr<ShmRing>> ShmRing::Open(const std::string& name,
                                                       absl::Time deadline,
                                                       const Interrupted& interrupted) {
  const std::string path = absl::StrCat("/dev/shm/", name);
  while (true) {
    const int fd = open(path.c_str(), O_RDWR);
    if (fd >= 0) {
      struct stat st;
      if (fstat(fd, &st) == 0 && static_cast<size_t>(st.st_size) > sizeof(Header)) {
        void* map = mmap(nullptr, st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        close(fd);
        if (map == MAP_FAILED) return absl::UnavailableError(absl::StrCat(path, ": mmap failed"));
        std::unique_ptr<ShmRing> ring(new ShmRing(path, false, map, st.st_size));
        if (ring->header_->ready.load(std::memory_order_acquire) == kReady) {
          // Both ends have it mapped: the name is no longer needed, and
          // without it a crash of either process leaves nothing behind.
          unlink(path.c_str());
          return ring;
        }
      } else {
        close(fd);
      }
    }
    if (absl::Status s = interrupted(); !s.ok()) return s;
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError(absl::StrCat(path, " was never created by its receiver"));
    }
    absl::SleepFor(absl::Milliseconds(1));  // bootstrap only: waits for the peer's file
  }
}

absl::Status ShmRing::WaitFor(const std::function<bool()>& ready, uint32_t* futex_word,
                              absl::Time deadline, const Interrupted& interrupted,
                              const char* what) {
  auto* word = reinterpret_cast<std::atomic<uint32_t>*>(futex_word);
  // Spin first (up to kSpin): the other side usually answers within tens of
  // microseconds, and a futex sleep costs a wake-up of about that much.
  const absl::Time spin_until = absl::Now() + kSpin;
  while (absl::Now() < spin_until) {
    for (int i = 0; i < 64; ++i) {
      if (ready()) return absl::OkStatus();
      __builtin_ia32_pause();
    }
    sched_yield();  // with more ranks than cores, let the peer run
  }
  while (true) {
    const uint32_t seen = word->load(std::memory_order_acquire);
    if (ready()) return absl::OkStatus();
    if (absl::Status s = interrupted(); !s.ok()) return s;
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return absl::DeadlineExceededError(what);
    FutexWait(futex_word, seen, std::min(left, kPollSlice));
  }
}

bool ShmRing::TryWrite(uint64_t tag, absl::Span<const absl::string_view> parts) {
  size_t len = 0;
  for (absl::string_view p : parts) len += p.size();
  const uint64_t head = header_->head.load(std::memory_order_relaxed);
  if (header_->capacity - (head - header_->tail.load(std::memory_order_acquire)) <
      kFrame + Pad16(len)) {
    return false;
  }
  Publish(tag, parts, len);
  return true;
}

absl::Status ShmRing::Write(uint64_t tag, absl::Span<const absl::string_view> parts,
                            absl::Time deadline, const Interrupted& interrupted) {
  size_t len = 0;
  for (absl::string_view p : parts) len += p.size();
  const uint64_t cap = header_->capacity;
  const uint64_t total = kFrame + Pad16(len);
  if (total > cap) {
    return absl::InvalidArgumentError(absl::StrCat("message of ", len, " bytes exceeds the ring"));
  }
  const uint64_t head = header_->head.load(std::memory_order_relaxed);
  absl::Status s = WaitFor(
      [&] { return cap - (head - header_->tail.load(std::memory_order_acquire)) >= total; },
      reinterpret_cast<uint32_t*>(&header_->space_seq), deadline, interrupted,
      "the receiver did not take data before the deadline");
  if (!s.ok()) return s;
  Publish(tag, parts, len);
  return absl::OkStatus();
}

void ShmRing::Publish(uint64_t tag, absl::Span<const absl::string_view> parts, size_t len) {
  const uint64_t cap = header_->capacity;
  const uint64_t head = header_->head.load(std::memory_order_relaxed);
  const uint64_t total = kFrame + Pad16(len);
  uint64_t pos = head % cap;
  const uint64_t frame[2] = {tag, len};
  std::memcpy(data_ + pos, frame, kFrame);  // never wraps: positions are 16-aligned
  pos = (pos + kFrame) % cap;
  for (absl::string_view p : parts) {
    const size_t first = std::min<size_t>(p.size(), cap - pos);
    std::memcpy(data_ + pos, p.data(), first);
    std::memcpy(data_, p.data() + first, p.size() - first);
    pos = (pos + p.size()) % cap;
  }
  header_->head.store(head + total, std::memory_order_release);
  header_->data_seq.fetch_add(1, std::memory_order_release);
  FutexWakeAll(reinterpret_cast<uint32_t*>(&header_->data_seq));
}

absl::Status ShmRing::Read(uint64_t tag, size_t expected_bytes, absl::Time deadline,
                           const Interrupted& interrupted,
                           const std::function<void(absl::Span<const absl::string_view>)>& consume) {
  const uint64_t cap = header_->capacity;
  const uint64_t tail = header_->tail.load(std::memory_order_relaxed);
  absl::Status s = WaitFor(
      [&] { return header_->head.load(std::memory_order_acquire) != tail; },
      reinterpret_cast<uint32_t*>(&header_->data_seq), deadline, interrupted,
      "did not answer before the deadline");
  if (!s.ok()) return s;
  uint64_t frame[2];
  std::memcpy(frame, data_ + tail % cap, kFrame);
  if (frame[0] != tag) {
    return absl::InternalError(absl::StrCat("protocol error: tag ", frame[0], ", expected ", tag));
  }
  if (frame[1] != expected_bytes) {
    return absl::InternalError(
        absl::StrCat("protocol error: ", frame[1], " bytes, expected ", expected_bytes));
  }
  const uint64_t pos = (tail + kFrame) % cap;
  const size_t first = std::min<size_t>(expected_bytes, cap - pos);
  absl::string_view parts[2] = {absl::string_view(data_ + pos, first),
                                absl::string_view(data_, expected_bytes - first)};
  consume(absl::MakeConstSpan(parts, expected_bytes > first ? 2 : 1));
  header_->tail.store(tail + kFrame + Pad16(expected_bytes), std::memory_order_release);
  header_->space_seq.fetch_add(1, std::memory_order_release);
  FutexWakeAll(reinterpret_cast<uint32_t*>(&header_->space_seq));
  return absl::OkStatus();
}

ShmRingWriter::ShmRingWriter(std::unique_ptr<ShmRing> ring, ShmRing::Interrupted interrupted)
    : ring_(std::move(ring)), interrupted_(std::move(interrupted)) {
  thread_ = std::thread([this] { WriterLoop(); });
}

ShmRingWriter::~ShmRingWriter() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  thread_.join();
}

absl::Status ShmRingWriter::Send(uint64_t tag, absl::Span<const absl::string_view> parts) {
  absl::MutexLock lock(&mu_);
  if (!failed_.ok()) return failed_;
  // In order: straight into the ring only when nothing waits before it.
  if (queue_.empty() && !writing_ && ring_->TryWrite(tag, parts)) return absl::OkStatus();
  Queued q{tag, std::string()};
  for (absl::string_view p : parts) q.bytes.append(p.data(), p.size());
  queue_.push_back(std::move(q));
  return absl::OkStatus();
}

absl::Status ShmRingWriter::Flush(absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  auto drained = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return (queue_.empty() && !writing_) || !failed_.ok();
  };
  if (!mu_.AwaitWithDeadline(absl::Condition(&drained), deadline)) {
    return absl::DeadlineExceededError("the receiver did not take data before the deadline");
  }
  return failed_;
}

void ShmRingWriter::WriterLoop() {
  while (true) {
    Queued q;
    {
      absl::MutexLock lock(&mu_);
      auto work = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !queue_.empty() || stop_; };
      mu_.Await(absl::Condition(&work));
      if (stop_) return;
      q = std::move(queue_.front());
      queue_.pop_front();
      writing_ = true;
    }
    const absl::string_view part = q.bytes;
    absl::Status s = ring_->Write(q.tag, absl::MakeConstSpan(&part, 1), absl::InfiniteFuture(),
                                  [this]() -> absl::Status {
                                    {
                                      absl::MutexLock lock(&mu_);
                                      if (stop_) return absl::CancelledError("closing");
                                    }
                                    return interrupted_();
                                  });
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!s.ok() && failed_.ok()) {
      failed_ = s;
      queue_.clear();
    }
  }
}

}  // namespace nightshift::collective
