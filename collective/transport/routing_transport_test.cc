// RoutingTransport: the route to each peer follows the host identities
// exchanged at rendezvous, never the text of its address, and data
// arrives whichever route it takes.
#include "collective/transport/routing_transport.h"

#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "collective/transport/grpc/peer_server.h"
#include "gtest/gtest.h"

namespace nightshift::collective {
namespace {

struct Servers {
  explicit Servers(int n) {
    for (int r = 0; r < n; ++r) {
      auto s = PeerServer::StartInsecureForTest("127.0.0.1:0");
      EXPECT_TRUE(s.ok()) << s.status();
      addresses.push_back((*s)->address());
      servers.push_back(*std::move(s));
    }
  }
  std::vector<std::string> addresses;
  std::vector<std::unique_ptr<PeerServer>> servers;
};

std::vector<std::unique_ptr<RoutingTransport>> Connect(Servers& s, const std::string& job,
                                                       std::vector<std::string> host_ids) {
  std::vector<std::unique_ptr<RoutingTransport>> ranks;
  for (int r = 0; r < static_cast<int>(s.addresses.size()); ++r) {
    auto t = ConnectGroup(s.servers[r]->service(), {job, 1, r, s.addresses, host_ids, true});
    EXPECT_TRUE(t.ok()) << t.status();
    ranks.push_back(*std::move(t));
  }
  return ranks;
}

// Rank 0 sends `message` to rank 1, which receives it.
absl::Status Exchange(std::vector<std::unique_ptr<RoutingTransport>>& ranks,
                      const std::string& message) {
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  absl::Status sent;
  std::thread sender([&] {
    sent = ranks[0]->Send(1, 7, message, deadline);
    if (sent.ok()) sent = ranks[0]->Flush(deadline);
  });
  std::string got(message.size(), '\0');
  absl::Status received = ranks[1]->Recv(0, 7, absl::MakeSpan(got), deadline);
  sender.join();
  if (!sent.ok()) return sent;
  if (!received.ok()) return received;
  return got == message ? absl::OkStatus() : absl::InternalError("the bytes differ");
}

TEST(RoutingTransportTest, EqualHostIdentitiesShareMemoryAndCanMapIt) {
  Servers s(2);
  auto ranks = Connect(s, "same-host", {"host-a", "host-a"});
  EXPECT_TRUE(ranks[0]->SharesMemoryWith(1));
  EXPECT_TRUE(ranks[1]->SharesMemoryWith(0));
  EXPECT_TRUE(ranks[0]->CanMapGroupMemory());
  EXPECT_TRUE(Exchange(ranks, std::string(100000, 'x')).ok());
}

TEST(RoutingTransportTest, LoopbackAddressesOnDifferentHostsGoThroughGrpc) {
  // Both addresses are 127.0.0.1: only the identities tell them apart.
  Servers s(2);
  auto ranks = Connect(s, "two-hosts", {"host-a", "host-b"});
  EXPECT_FALSE(ranks[0]->SharesMemoryWith(1));
  EXPECT_FALSE(ranks[0]->CanMapGroupMemory());
  EXPECT_TRUE(Exchange(ranks, std::string(100000, 'y')).ok());
}

TEST(RoutingTransportTest, AnUnknownIdentitySharesWithNoOne) {
  Servers s(3);
  auto ranks = Connect(s, "unknown", {"", "", "host-a"});
  EXPECT_FALSE(ranks[0]->SharesMemoryWith(1));  // two empty identities are not a match
  EXPECT_FALSE(ranks[2]->SharesMemoryWith(0));
}

TEST(RoutingTransportTest, MixedRoutesInOneGroupAllDeliver) {
  // Ranks 0 and 1 share a host, rank 2 is elsewhere: a ring over all three
  // uses both backends.
  Servers s(3);
  auto ranks = Connect(s, "mixed", {"host-a", "host-a", "host-b"});
  EXPECT_TRUE(ranks[0]->SharesMemoryWith(1));
  EXPECT_FALSE(ranks[1]->SharesMemoryWith(2));
  EXPECT_FALSE(ranks[0]->CanMapGroupMemory());
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  std::vector<absl::Status> results(3);
  std::vector<std::thread> threads;
  for (int r = 0; r < 3; ++r) {
    threads.emplace_back([&, r] {
      const int next = (r + 1) % 3, prev = (r + 2) % 3;
      results[r] = ranks[r]->Send(next, 1, absl::StrCat("from ", r), deadline);
      std::string got(6, '\0');
      if (results[r].ok()) results[r] = ranks[r]->Recv(prev, 1, absl::MakeSpan(got), deadline);
      if (results[r].ok() && got != absl::StrCat("from ", prev)) {
        results[r] = absl::InternalError(got);
      }
      if (results[r].ok()) results[r] = ranks[r]->Flush(deadline);
    });
  }
  for (auto& t : threads) t.join();
  for (int r = 0; r < 3; ++r) EXPECT_TRUE(results[r].ok()) << "rank " << r << ": " << results[r];
}

// A rank waiting for a peer that never sends, on either route, stops at
// once when another thread aborts its transport (how a worker cancels a
// job whose peer never started).
TEST(RoutingTransportTest, AbortFromAnotherThreadWakesABlockedReceiveOnEitherRoute) {
  for (const char* second_host : {"host-a", "host-b"}) {
    Servers s(2);
    auto ranks = Connect(s, absl::StrCat("wake-", second_host), {"host-a", second_host});
    absl::Notification receiving;
    absl::Status result;
    std::thread receiver([&] {
      std::string buffer(8, '\0');
      receiving.Notify();
      result = ranks[0]->Recv(1, 1, absl::MakeSpan(buffer), absl::Now() + absl::Seconds(60));
    });
    receiving.WaitForNotification();  // (an abort that comes first fails it on entry)
    const absl::Time start = absl::Now();
    ranks[0]->Abort(absl::CancelledError("job cancelled"));
    receiver.join();
    EXPECT_EQ(result.code(), absl::StatusCode::kCancelled) << second_host << ": " << result;
    EXPECT_LT(absl::Now() - start, absl::Seconds(30)) << second_host;
  }
}

TEST(RoutingTransportTest, MismatchedIdentityListIsRefused) {
  Servers s(2);
  auto t = ConnectGroup(s.servers[0]->service(), {"bad", 1, 0, s.addresses, {"only-one"}, true});
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument) << t.status();
}

}  // namespace
}  // namespace nightshift::collective
