#include "collective/transport/shm/shm_ring.h"

#include <unistd.h>

#include <atomic>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "collective/transport/shm/shm_file.h"

namespace nightshift::collective {
namespace {

constexpr uint64_t kReady = 0x4e53484d52494e47ULL;  // "NSHMRING"
constexpr size_t kFrame = 16;

size_t Pad16(size_t n) { return (n + 15) & ~size_t{15}; }

}  // namespace

struct ShmRing::Header {
  alignas(64) std::atomic<uint64_t> head;       // bytes published by the producer
  alignas(64) std::atomic<uint64_t> tail;       // bytes freed by the consumer
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
  UnmapShm({map_, map_bytes_});
  if (owner_) unlink(path_.c_str());
}

absl::StatusOr<std::unique_ptr<ShmRing>> ShmRing::Create(const std::string& name, size_t capacity) {
  const std::string path = absl::StrCat("/dev/shm/", name);
  capacity = Pad16(capacity);
  absl::StatusOr<ShmMapping> map = CreateShmFile(path, Pad16(sizeof(Header)) + capacity);
  if (!map.ok()) return map.status();
  std::unique_ptr<ShmRing> ring(new ShmRing(path, true, map->base, map->bytes));
  ring->header_->capacity = capacity;  // the file starts zeroed: counters are 0
  ring->header_->ready.store(kReady, std::memory_order_release);
  return ring;
}

absl::StatusOr<std::unique_ptr<ShmRing>> ShmRing::Open(const std::string& name, absl::Time deadline,
                                                       const Interrupted& interrupted) {
  const std::string path = absl::StrCat("/dev/shm/", name);
  absl::StatusOr<ShmMapping> map =
      OpenShmFile(path, sizeof(Header), deadline, interrupted, [](const void* base) {
        return static_cast<const Header*>(base)->ready.load(std::memory_order_acquire) == kReady;
      });
  if (!map.ok()) return map.status();
  // Both ends have it mapped: the name is no longer needed, and without it
  // a crash of either process leaves nothing behind.
  unlink(path.c_str());
  return std::unique_ptr<ShmRing>(new ShmRing(path, false, map->base, map->bytes));
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
  absl::Status s = WaitOnShmWord(
      [&] { return cap - (head - header_->tail.load(std::memory_order_acquire)) >= total; },
      &header_->space_seq, deadline, interrupted,
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
  WakeShmWord(&header_->data_seq);
}

absl::Status ShmRing::Read(
    uint64_t tag, size_t expected_bytes, absl::Time deadline, const Interrupted& interrupted,
    const std::function<void(absl::Span<const absl::string_view>)>& consume) {
  const uint64_t cap = header_->capacity;
  const uint64_t tail = header_->tail.load(std::memory_order_relaxed);
  absl::Status s = WaitOnShmWord(
      [&] { return header_->head.load(std::memory_order_acquire) != tail; }, &header_->data_seq,
      deadline, interrupted, "did not answer before the deadline");
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
  WakeShmWord(&header_->space_seq);
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
