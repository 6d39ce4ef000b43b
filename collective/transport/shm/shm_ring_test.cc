// ShmRing on its own: wrap-around, a full ring, a writer that is gone, and
// no file left behind.
#include "collective/transport/shm/shm_ring.h"

#include <unistd.h>

#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace nightshift::collective {
namespace {

std::string UniqueName(const char* what) {
  return absl::StrCat("nightshift-test-", what, "-", getpid());
}

absl::Status Alive() { return absl::OkStatus(); }

std::string Pattern(int seed, size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((seed * 131 + i * 7) & 0xff);
  return s;
}

// Reads the next message, joining its parts; `parts` gets their count.
absl::StatusOr<std::string> ReadJoined(ShmRing& ring, uint64_t tag, size_t bytes,
                                       size_t* parts = nullptr,
                                       const ShmInterrupted& interrupted = Alive,
                                       absl::Duration timeout = absl::Seconds(10)) {
  std::string out;
  absl::Status s = ring.Read(tag, bytes, absl::Now() + timeout, interrupted,
                             [&](absl::Span<const absl::string_view> p) {
                               if (parts != nullptr) *parts = p.size();
                               for (absl::string_view x : p) out.append(x.data(), x.size());
                             });
  if (!s.ok()) return s;
  return out;
}

TEST(ShmRingTest, MessagesThatWrapTheEndArriveWholeInTwoParts) {
  auto reader = ShmRing::Create(UniqueName("wrap"), 4096);
  ASSERT_TRUE(reader.ok()) << reader.status();
  auto writer = ShmRing::Open(UniqueName("wrap"), absl::Now() + absl::Seconds(5), Alive);
  ASSERT_TRUE(writer.ok()) << writer.status();
  bool wrapped = false;
  // 1100-byte messages take 1120 bytes with their frame and padding, which
  // does not divide 4096: many of them straddle the end.
  for (int i = 0; i < 40; ++i) {
    const std::string message = Pattern(i, 1100);
    absl::string_view part = message;
    ASSERT_TRUE((*writer)
                    ->Write(i, absl::MakeConstSpan(&part, 1), absl::Now() + absl::Seconds(5), Alive)
                    .ok());
    size_t parts = 0;
    auto got = ReadJoined(**reader, i, message.size(), &parts);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(*got, message) << "message " << i;
    wrapped |= parts == 2;
  }
  EXPECT_TRUE(wrapped) << "no message straddled the end of the ring";
}

TEST(ShmRingTest, AFullRingRefusesTryWriteAndTimesOutWriteUntilTheReaderFreesSpace) {
  auto reader = ShmRing::Create(UniqueName("full"), 4096);
  ASSERT_TRUE(reader.ok()) << reader.status();
  auto writer = ShmRing::Open(UniqueName("full"), absl::Now() + absl::Seconds(5), Alive);
  ASSERT_TRUE(writer.ok()) << writer.status();
  const std::string message = Pattern(1, 2000);
  absl::string_view part = message;
  int written = 0;
  while ((*writer)->TryWrite(written, absl::MakeConstSpan(&part, 1))) ++written;
  EXPECT_EQ(written, 2);  // two of 2016 bytes fit in 4096, a third does not
  const absl::Status blocked = (*writer)->Write(written, absl::MakeConstSpan(&part, 1),
                                                absl::Now() + absl::Milliseconds(50), Alive);
  EXPECT_EQ(blocked.code(), absl::StatusCode::kDeadlineExceeded) << blocked;
  auto first = ReadJoined(**reader, 0, message.size());
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_TRUE((*writer)->TryWrite(2, absl::MakeConstSpan(&part, 1)));
  for (int tag : {1, 2}) {
    auto got = ReadJoined(**reader, tag, message.size());
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(*got, message);
  }
}

TEST(ShmRingTest, AReaderWaitingOnAWriterThatIsGoneFailsWithItsReasonBeforeTheDeadline) {
  auto reader = ShmRing::Create(UniqueName("dead"), 4096);
  ASSERT_TRUE(reader.ok()) << reader.status();
  std::atomic<bool> writer_gone{false};
  auto interrupted = [&]() -> absl::Status {
    return writer_gone ? absl::UnavailableError("writer gone") : absl::OkStatus();
  };
  absl::Status result;
  absl::Duration waited;
  std::thread waiter([&] {
    const absl::Time start = absl::Now();
    result = ReadJoined(**reader, 7, 16, nullptr, interrupted, absl::Seconds(60)).status();
    waited = absl::Now() - start;
  });
  writer_gone = true;  // the writer's process died: its stream ended
  waiter.join();
  EXPECT_EQ(result.code(), absl::StatusCode::kUnavailable) << result;
  EXPECT_EQ(result.message(), "writer gone");
  EXPECT_LT(waited, absl::Seconds(30)) << "the wait ran to its deadline";
}

TEST(ShmRingTest, AWrongTagOrSizeIsAProtocolErrorNotAReorder) {
  auto reader = ShmRing::Create(UniqueName("tag"), 4096);
  ASSERT_TRUE(reader.ok()) << reader.status();
  auto writer = ShmRing::Open(UniqueName("tag"), absl::Now() + absl::Seconds(5), Alive);
  ASSERT_TRUE(writer.ok()) << writer.status();
  absl::string_view part = "0123456789abcdef";
  ASSERT_TRUE((*writer)->TryWrite(5, absl::MakeConstSpan(&part, 1)));
  EXPECT_EQ(ReadJoined(**reader, 6, 16).status().code(), absl::StatusCode::kInternal);
}

TEST(ShmRingTest, OnceBothSidesHaveTheRingItsNameIsGoneFromDevShm) {
  const std::string name = UniqueName("unlink");
  auto reader = ShmRing::Create(name, 4096);
  ASSERT_TRUE(reader.ok()) << reader.status();
  EXPECT_EQ(access(("/dev/shm/" + name).c_str(), F_OK), 0);
  auto writer = ShmRing::Open(name, absl::Now() + absl::Seconds(5), Alive);
  ASSERT_TRUE(writer.ok()) << writer.status();
  EXPECT_NE(access(("/dev/shm/" + name).c_str(), F_OK), 0)
      << "a process dying now would leave the file behind";
}

TEST(ShmRingTest, OpeningARingNobodyMadeWaitsUntilTheDeadline) {
  auto writer = ShmRing::Open(UniqueName("never"), absl::Now() + absl::Milliseconds(30), Alive);
  EXPECT_EQ(writer.status().code(), absl::StatusCode::kDeadlineExceeded) << writer.status();
}

}  // namespace
}  // namespace nightshift::collective
