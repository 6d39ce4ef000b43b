// ShmTransport on its own: ranks as threads of this process, every peer
// served through shared memory.
#include "collective/transport/shm/shm_transport.h"

#include <unistd.h>

#include <atomic>
#include <cstring>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace nightshift::collective {
namespace {

// n ranks of one group, all on this host; `gone[r]` makes rank r's
// liveness fail, as the control channel would once its process died.
struct Group {
  explicit Group(int n, const std::string& job) : gone(n) {
    std::vector<std::string> labels;
    for (int r = 0; r < n; ++r) labels.push_back(absl::StrCat("test-", getpid(), "-", r));
    for (int r = 0; r < n; ++r) {
      std::vector<bool> local(n, true);
      local[r] = false;
      auto t = ShmTransport::Create({job, 1, r, labels, local}, [this](int peer) -> absl::Status {
        return gone[peer] ? absl::UnavailableError("its stream ended") : absl::OkStatus();
      });
      EXPECT_TRUE(t.ok()) << t.status();
      ranks.push_back(*std::move(t));
    }
  }
  std::vector<std::atomic<bool>> gone;
  std::vector<std::unique_ptr<ShmTransport>> ranks;
};

absl::Time Soon() { return absl::Now() + absl::Seconds(10); }

// The ring algorithms' pattern: each rank sends to its successor (whose
// ring from it exists from the start) and receives from its predecessor.
TEST(ShmTransportTest, MessagesAroundTheRingArriveInOrder) {
  constexpr int kRanks = 3;
  Group g(kRanks, "order");
  std::vector<std::thread> threads;
  std::vector<absl::Status> results(kRanks);
  for (int r = 0; r < kRanks; ++r) {
    threads.emplace_back([&, r] {
      ShmTransport& t = *g.ranks[r];
      const int next = (r + 1) % kRanks, prev = (r + kRanks - 1) % kRanks;
      for (uint64_t tag = 1; tag <= 50; ++tag) {
        if (absl::Status s = t.Send(next, tag, absl::StrCat(r, "#", tag, "."), Soon()); !s.ok()) {
          results[r] = s;
          return;
        }
      }
      for (uint64_t tag = 1; tag <= 50; ++tag) {
        const std::string want = absl::StrCat(prev, "#", tag, ".");
        std::string got(want.size(), '\0');
        if (absl::Status s = t.Recv(prev, tag, absl::MakeSpan(got), Soon()); !s.ok()) {
          results[r] = s;
          return;
        }
        if (got != want) results[r] = absl::InternalError(got + " != " + want);
      }
      if (results[r].ok()) results[r] = t.Flush(Soon());
    });
  }
  for (auto& t : threads) t.join();
  for (int r = 0; r < kRanks; ++r)
    EXPECT_TRUE(results[r].ok()) << "rank " << r << ": " << results[r];
}

TEST(ShmTransportTest, ARankNotServedHereIsRefusedNamingIt) {
  std::vector<std::string> labels = {"a", "b"};
  auto t = ShmTransport::Create({"refuse", 1, 0, labels, {false, false}}, nullptr);
  ASSERT_TRUE(t.ok()) << t.status();
  const absl::Status s = (*t)->Send(1, 1, "x", Soon());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("rank 1"), std::string::npos) << s;
  EXPECT_FALSE((*t)->CanMapGroupMemory());
}

TEST(ShmTransportTest, AWaitOnAPeerThatIsGoneFailsNamingItAndTheCensusSeesIt) {
  Group g(2, "gone");
  g.gone[1] = true;
  std::string buffer(8, '\0');
  const absl::Status s =
      g.ranks[0]->Recv(1, 1, absl::MakeSpan(buffer), absl::Now() + absl::Seconds(60));
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_NE(s.message().find("rank 1"), std::string::npos) << s;
  EXPECT_EQ(g.ranks[0]->AwaitAborts(1, Soon()), std::set<int>({1}));
}

TEST(ShmTransportTest, AbortFailsLaterCallsWithItsReason) {
  Group g(2, "abort");
  g.ranks[0]->Abort(absl::AbortedError("rank 0 gave up: test"));
  std::string buffer(8, '\0');
  const absl::Status s = g.ranks[0]->Recv(1, 1, absl::MakeSpan(buffer), Soon());
  EXPECT_EQ(s.code(), absl::StatusCode::kAborted) << s;
  EXPECT_NE(s.message().find("gave up: test"), std::string::npos) << s;
}

TEST(ShmTransportTest, AbortFromAnotherThreadWakesABlockedReceive) {
  Group g(2, "wake");
  absl::Notification receiving;
  absl::Status result;
  std::thread receiver([&] {
    std::string buffer(8, '\0');
    receiving.Notify();
    result = g.ranks[0]->Recv(1, 1, absl::MakeSpan(buffer), absl::Now() + absl::Seconds(60));
  });
  receiving.WaitForNotification();  // (an abort that comes first fails it on entry)
  const absl::Time start = absl::Now();
  g.ranks[0]->Abort(absl::CancelledError("job cancelled"));
  receiver.join();
  EXPECT_EQ(result.code(), absl::StatusCode::kCancelled) << result;
  EXPECT_LT(absl::Now() - start, absl::Seconds(30)) << "the receive waited for its deadline";
}

TEST(ShmTransportTest, GroupMemoryIsSharedAndItsCountersOrderTheWrites) {
  Group g(2, "memory");
  ASSERT_TRUE(g.ranks[0]->CanMapGroupMemory());
  std::vector<GroupMemory*> memory(2);
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&, r] {
      auto m = g.ranks[r]->MapGroupMemory(4096, Soon());
      ASSERT_TRUE(m.ok()) << m.status();
      memory[r] = *m;
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_NE(memory[0], nullptr);
  ASSERT_NE(memory[1], nullptr);
  std::thread writer([&] {
    std::memcpy(memory[1]->region(1), "hello from rank 1", 18);
    memory[1]->Publish(0, 1);
  });
  ASSERT_TRUE(memory[0]->Await(1, 0, 1, Soon()).ok());
  EXPECT_STREQ(memory[0]->region(1), "hello from rank 1");
  writer.join();
  // Mapping again with another size is refused; with the same size it is
  // the same memory.
  EXPECT_EQ(g.ranks[0]->MapGroupMemory(8192, Soon()).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(*g.ranks[0]->MapGroupMemory(4096, Soon()), memory[0]);
  g.gone[1] = true;
  const absl::Status s = memory[0]->Await(1, 1, 1, Soon());
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_NE(s.message().find("rank 1"), std::string::npos) << s;
}

}  // namespace
}  // namespace nightshift::collective
