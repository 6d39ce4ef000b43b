// SocketTransport over real loopback TCP connections; the control channel
// is an in-process LocalHub, which is also how a test plays a peer by hand
// (takes its offer, dials with a raw socket).
#include "collective/transport/socket/socket_transport.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <thread>

#include "absl/base/internal/endian.h"
#include "absl/synchronization/notification.h"
#include "collective/transport/local/local_transport.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace nightshift::collective {
namespace {

using ::testing::HasSubstr;

absl::Time Soon() { return absl::Now() + absl::Seconds(20); }

PeerLiveness AlwaysAlive() {
  return [](int) { return absl::OkStatus(); };
}

std::function<absl::Status()> NeverAborted() {
  return [] { return absl::OkStatus(); };
}

std::string TestCert(const std::string& name) {
  return std::string(std::getenv("TEST_SRCDIR")) + "/nightshift/security/testdata/" + name;
}

DataTlsFiles Tls(const std::string& dir = "") {
  return {TestCert(dir + "ca.pem"), TestCert(dir + "node.pem"), TestCert(dir + "node.key")};
}

SocketGroup Group(int rank, int size, std::optional<DataTlsFiles> tls = std::nullopt) {
  SocketGroup g;
  g.tls = std::move(tls);
  g.rank = rank;
  for (int r = 0; r < size; ++r) g.peer_addresses.push_back("127.0.0.1:1");  // port unused
  g.served.assign(size, true);
  g.served[rank] = false;
  return g;
}

std::string Pattern(size_t bytes, int seed) {
  std::string s(bytes, '\0');
  for (size_t i = 0; i < bytes; ++i) s[i] = static_cast<char>((i * 131 + seed) & 0xff);
  return s;
}

// A peer played by hand: its offer taken from the control channel, and a
// raw connection that says hello with `nonce`.
struct Offer {
  uint16_t port;
  std::string nonce;
};

Offer TakeOffer(Transport& control, int from) {
  char offer[18];
  EXPECT_TRUE(
      control.Recv(from, SocketTransport::kOfferTag, absl::MakeSpan(offer, 18), Soon()).ok());
  return {absl::little_endian::Load16(offer), std::string(offer + 2, 16)};
}

int DialWithHello(uint16_t port, uint32_t rank, const std::string& nonce) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  char hello[28];
  std::memcpy(hello, "NSDATA1", 8);
  absl::little_endian::Store32(hello + 8, rank);
  std::memcpy(hello + 12, nonce.data(), 16);
  EXPECT_EQ(write(fd, hello, sizeof(hello)), 28);
  return fd;
}

void WriteMessage(int fd, uint64_t tag, uint64_t length, const std::string& payload) {
  char header[16];
  absl::little_endian::Store64(header, tag);
  absl::little_endian::Store64(header + 8, length);
  ASSERT_EQ(write(fd, header, 16), 16);
  if (!payload.empty()) {
    ASSERT_EQ(write(fd, payload.data(), payload.size()), static_cast<ssize_t>(payload.size()));
  }
}

class BothWays : public ::testing::TestWithParam<bool> {};  // TLS or plaintext

TEST_P(BothWays, TwoRanksSendingToEachOtherAtOnceGetEveryByte) {
  LocalHub hub(2);
  auto c0 = hub.Connect(0), c1 = hub.Connect(1);
  std::optional<DataTlsFiles> tls;
  if (GetParam()) tls = Tls();
  auto t0 = SocketTransport::Create(Group(0, 2, tls), c0.get(), AlwaysAlive(), NeverAborted());
  auto t1 = SocketTransport::Create(Group(1, 2, tls), c1.get(), AlwaysAlive(), NeverAborted());
  ASSERT_TRUE(t0.ok()) << t0.status();
  ASSERT_TRUE(t1.ok()) << t1.status();
  // Both send everything before either receives: 40 MiB each way is more
  // than the kernel's buffers hold, so this only finishes if waiting sends
  // also read.
  const std::vector<size_t> sizes = {0, 1, 4096, 512 << 10, 40 << 20, 3};
  auto run = [&](SocketTransport& t, int peer, absl::Status* result) {
    *result = [&]() -> absl::Status {
      for (size_t i = 0; i < sizes.size(); ++i) {
        const std::string m = Pattern(sizes[i], t.rank() * 7 + static_cast<int>(i));
        // Split across parts at an odd place, as the ring's gathers are.
        const absl::string_view parts[] = {absl::string_view(m).substr(0, m.size() / 3),
                                           absl::string_view(m).substr(m.size() / 3)};
        if (absl::Status s = t.Send(peer, 100 + i, parts, Soon()); !s.ok()) return s;
      }
      for (size_t i = 0; i < sizes.size(); ++i) {
        std::string got(sizes[i], '\0');
        if (absl::Status s = t.Recv(peer, 100 + i, absl::MakeSpan(got), Soon()); !s.ok()) return s;
        if (got != Pattern(sizes[i], peer * 7 + static_cast<int>(i))) {
          return absl::DataLossError(absl::StrCat("message ", i, " differs"));
        }
      }
      return t.Flush(Soon());
    }();
  };
  absl::Status r0, r1;
  std::thread a([&] { run(**t0, 1, &r0); });
  run(**t1, 0, &r1);
  a.join();
  EXPECT_TRUE(r0.ok()) << r0;
  EXPECT_TRUE(r1.ok()) << r1;
}

TEST_P(BothWays, SendingToAPeerThatIsGoneFailsNamingItWithoutSigpipe) {
  LocalHub hub(2);
  auto c0 = hub.Connect(0), c1 = hub.Connect(1);
  std::optional<DataTlsFiles> tls;
  if (GetParam()) tls = Tls();
  auto t0 = SocketTransport::Create(Group(0, 2, tls), c0.get(), AlwaysAlive(), NeverAborted());
  auto t1 = SocketTransport::Create(Group(1, 2, tls), c1.get(), AlwaysAlive(), NeverAborted());
  ASSERT_TRUE(t0.ok() && t1.ok());
  std::thread receiver([&] {
    std::string got(1, '\0');
    EXPECT_TRUE((*t1)->Recv(0, 1, absl::MakeSpan(got), Soon()).ok());
  });
  ASSERT_TRUE((*t0)->Send(1, 1, "x", Soon()).ok());
  receiver.join();
  t1->reset();  // its connections close, as a dead process's do
  // The kernel takes the first writes; a later one meets the reset, which
  // would be SIGPIPE (the end of this test binary) without MSG_NOSIGNAL.
  const std::string big(1 << 20, 'y');
  absl::Status s;
  for (int i = 0; i < 64 && s.ok(); ++i) s = (*t0)->Send(1, 2 + i, big, Soon());
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("rank 1"));
}

INSTANTIATE_TEST_SUITE_P(SocketTransport, BothWays, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "Tls" : "Plaintext"; });

TEST(SocketTransport, ACertificateFromAnotherCaOrAPlaintextPeerIsRefusedUnderTls) {
  LocalHub hub(3);
  auto c0 = hub.Connect(0), c1 = hub.Connect(1), c2 = hub.Connect(2);
  auto t0 = SocketTransport::Create(Group(0, 3, Tls()), c0.get(), AlwaysAlive(), NeverAborted());
  ASSERT_TRUE(t0.ok()) << t0.status();
  // Rank 1 holds a certificate of another CA; rank 2 speaks plaintext.
  // Both have the right offers, so only TLS can keep them out.
  auto t1 =
      SocketTransport::Create(Group(1, 3, Tls("other/")), c1.get(), AlwaysAlive(), NeverAborted());
  ASSERT_TRUE(t1.ok()) << t1.status();
  const Offer to2 = TakeOffer(*c2, 0);
  const int plaintext = DialWithHello(to2.port, 2, to2.nonce);
  WriteMessage(plaintext, 5, 4, "evil");

  // The handshake needs rank 0 in a call: rank 1 sends from a thread.
  absl::Status sent;
  std::thread sender([&] { sent = (*t1)->Send(0, 5, "evil", absl::Now() + absl::Seconds(20)); });
  std::string got(4, '\0');
  const absl::Status from1 =
      (*t0)->Recv(1, 5, absl::MakeSpan(got), absl::Now() + absl::Milliseconds(300));
  EXPECT_EQ(from1.code(), absl::StatusCode::kDeadlineExceeded) << from1;
  const absl::Status from2 =
      (*t0)->Recv(2, 5, absl::MakeSpan(got), absl::Now() + absl::Milliseconds(300));
  EXPECT_EQ(from2.code(), absl::StatusCode::kDeadlineExceeded) << from2;
  // And the dialer learns its handshake failed.
  sender.join();
  EXPECT_EQ(sent.code(), absl::StatusCode::kUnavailable) << sent;
  EXPECT_THAT(std::string(sent.message()), HasSubstr("rank 0"));
  close(plaintext);
}

TEST(SocketTransport, OnlyTheNonceOfferedToARankOpensItsConnection) {
  LocalHub hub(3);
  auto c0 = hub.Connect(0), c1 = hub.Connect(1), c2 = hub.Connect(2);
  auto t0 = SocketTransport::Create(Group(0, 3), c0.get(), AlwaysAlive(), NeverAborted());
  ASSERT_TRUE(t0.ok()) << t0.status();
  const Offer to1 = TakeOffer(*c1, 0);
  const Offer to2 = TakeOffer(*c2, 0);
  EXPECT_NE(to1.nonce, to2.nonce);

  // A stranger guessing, and rank 2 presenting the nonce offered to rank 1.
  const int stranger = DialWithHello(to1.port, 1, std::string(16, 'x'));
  const int impostor = DialWithHello(to1.port, 1, to2.nonce);
  WriteMessage(stranger, 5, 4, "evil");
  WriteMessage(impostor, 5, 4, "evil");
  const int real = DialWithHello(to1.port, 1, to1.nonce);
  WriteMessage(real, 5, 4, "good");
  std::string got(4, '\0');
  ASSERT_TRUE((*t0)->Recv(1, 5, absl::MakeSpan(got), Soon()).ok());
  EXPECT_EQ(got, "good");
  // The refused connections were closed unread.
  char c;
  EXPECT_LE(read(stranger, &c, 1), 0);
  EXPECT_LE(read(impostor, &c, 1), 0);
  close(stranger);
  close(impostor);
  close(real);
}

// Rank 0's transport over real sockets, with rank 1 played by hand on
// the other end of the control hub (it takes the offer, dials raw).
class RankZeroWithAPeerByHand : public ::testing::Test {
 protected:
  void SetUp() override {
    auto t0 = SocketTransport::Create(Group(0, 2), c0_.get(), AlwaysAlive(), NeverAborted());
    ASSERT_TRUE(t0.ok()) << t0.status();
    t0_ = *std::move(t0);
  }
  // Rank 1's data connection to rank 0, its hello sent.
  int DialAsRank1() {
    const Offer offer = TakeOffer(*c1_, 0);
    return DialWithHello(offer.port, 1, offer.nonce);
  }

  LocalHub hub_{2};
  std::unique_ptr<Transport> c0_ = hub_.Connect(0), c1_ = hub_.Connect(1);
  std::unique_ptr<SocketTransport> t0_;  // goes before the control channels
};

TEST_F(RankZeroWithAPeerByHand, AClosedConnectionFailsNamingThePeerAfterWhatCameBefore) {
  const int fd = DialAsRank1();
  WriteMessage(fd, 9, 3, "abc");
  close(fd);  // as a killed process's kernel does
  std::string got(3, '\0');
  ASSERT_TRUE(t0_->Recv(1, 9, absl::MakeSpan(got), Soon()).ok());
  EXPECT_EQ(got, "abc");
  const absl::Status s = t0_->Recv(1, 10, absl::MakeSpan(got), Soon());
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("rank 1"));
}

TEST_F(RankZeroWithAPeerByHand, AMessageCutOffInsideTheReceiversPiecesFailsNamingThePeer) {
  const int fd = DialAsRank1();
  std::string a(6, '\0'), b(4, '\0');
  const absl::Span<char> pieces[] = {absl::MakeSpan(a), absl::MakeSpan(b)};
  std::thread peer([&] {
    WriteMessage(fd, 3, 10, "0123456789");  // whole: lands across both pieces
    WriteMessage(fd, 4, 10, "01234");       // then the peer dies mid-body
    close(fd);
  });
  ASSERT_TRUE(t0_->RecvInto(1, 3, pieces, Soon()).ok());
  EXPECT_EQ(a + b, "0123456789");
  const absl::Status s = t0_->RecvInto(1, 4, pieces, Soon());
  peer.join();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("rank 1"));
}

TEST_F(RankZeroWithAPeerByHand, AWrongTagOrSizeIsAProtocolErrorAndAHugeHeaderIsRefused) {
  const int fd = DialAsRank1();
  WriteMessage(fd, 7, 3, "abc");
  WriteMessage(fd, 8, uint64_t{1} << 40, "");
  std::string got(3, '\0');
  absl::Status s = t0_->Recv(1, 6, absl::MakeSpan(got), Soon());
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("tag 7"));
  s = t0_->Recv(1, 8, absl::MakeSpan(got), Soon());
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("rank 1: announced a message of 1099511627776"));
  close(fd);
}

TEST(SocketTransport, AWaitEndsAtTheDeadlineAndAtAnAbortNoticeNamingThePeer) {
  LocalHub hub(2);
  auto c0 = hub.Connect(0), c1 = hub.Connect(1);
  absl::Mutex mu;
  absl::Status group_state;  // what the control channel says of the group
  auto t0 = SocketTransport::Create(Group(0, 2), c0.get(), AlwaysAlive(), [&] {
    absl::MutexLock lock(&mu);
    return group_state;
  });
  ASSERT_TRUE(t0.ok());
  const Offer offer = TakeOffer(*c1, 0);
  const int fd = DialWithHello(offer.port, 1, offer.nonce);
  std::string got(3, '\0');

  absl::Status s = (*t0)->Recv(1, 1, absl::MakeSpan(got), absl::Now() + absl::Milliseconds(50));
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("rank 1"));

  {
    absl::MutexLock lock(&mu);
    group_state = absl::AbortedError("rank 1 gave up: out of memory");
  }
  s = (*t0)->Recv(1, 1, absl::MakeSpan(got), Soon());
  EXPECT_EQ(s.code(), absl::StatusCode::kAborted) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("out of memory"));
  close(fd);
}

TEST(SocketTransport, APeerWhoseControlStreamEndedStillDeliversWhatItSent) {
  // A peer that finished and left: its gRPC stream may end before its last
  // message has arrived on the data connection. Only the connection's own
  // end counts then.
  LocalHub hub(2);
  auto c0 = hub.Connect(0), c1 = hub.Connect(1);
  absl::Notification asked;  // the wait has gone on for a liveness check
  auto t0 = SocketTransport::Create(
      Group(0, 2), c0.get(), [](int) { return absl::UnavailableError("rank 1 ended the stream"); },
      [&] {
        if (!asked.HasBeenNotified()) asked.Notify();
        return absl::OkStatus();
      });
  ASSERT_TRUE(t0.ok());
  const Offer offer = TakeOffer(*c1, 0);
  const int fd = DialWithHello(offer.port, 1, offer.nonce);
  std::thread peer([&] {
    asked.WaitForNotification();
    WriteMessage(fd, 1, 3, "end");
    close(fd);
  });
  std::string got(3, '\0');
  const absl::Status s = (*t0)->Recv(1, 1, absl::MakeSpan(got), Soon());
  peer.join();
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(got, "end");
  EXPECT_EQ((*t0)->Recv(1, 2, absl::MakeSpan(got), Soon()).code(), absl::StatusCode::kUnavailable);
}

TEST(SocketTransport, BeforeAnyConnectionTheControlStreamsEndEndsTheWait) {
  LocalHub hub(2);
  auto c0 = hub.Connect(0);
  auto t0 = SocketTransport::Create(
      Group(0, 2), c0.get(), [](int) { return absl::UnavailableError("rank 1 ended the stream"); },
      NeverAborted());
  ASSERT_TRUE(t0.ok());
  std::string got(3, '\0');
  const absl::Status s = (*t0)->Recv(1, 1, absl::MakeSpan(got), Soon());
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("rank 1 ended the stream"));
}

TEST_F(RankZeroWithAPeerByHand, IdleStrangersCannotKeepAPeerOut) {
  const Offer offer = TakeOffer(*c1_, 0);
  // More connections that never say hello than the transport keeps
  // waiting, in batches that fit the listen backlog, each taken in while a
  // short wait of the transport's accepts.
  std::vector<int> idle;
  std::string got(4, '\0');
  for (int batch = 0; batch < 5; ++batch) {
    for (int i = 0; i < 16; ++i) {
      const int fd = socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = htons(offer.port);
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
      idle.push_back(fd);
    }
    EXPECT_EQ(t0_->Recv(1, 5, absl::MakeSpan(got), absl::Now() + absl::Milliseconds(20)).code(),
              absl::StatusCode::kDeadlineExceeded);
  }
  ASSERT_GT(idle.size(), SocketTransport::kMaxAccepting);
  const int real = DialWithHello(offer.port, 1, offer.nonce);
  WriteMessage(real, 5, 4, "good");
  ASSERT_TRUE(t0_->Recv(1, 5, absl::MakeSpan(got), Soon()).ok());
  EXPECT_EQ(got, "good");
  for (int fd : idle) close(fd);
  close(real);
}

TEST_F(RankZeroWithAPeerByHand, AbortFromAnotherThreadWakesABlockedReceive) {
  std::thread aborter([&] {
    // The receive below blocks for its whole deadline unless woken; the
    // abort may come before or during it, and must end it either way.
    t0_->Abort(absl::CancelledError("job cancelled"));
  });
  std::string got(3, '\0');
  const absl::Status s = t0_->Recv(1, 1, absl::MakeSpan(got), absl::Now() + absl::Hours(1));
  aborter.join();
  EXPECT_EQ(s.code(), absl::StatusCode::kCancelled) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("job cancelled"));
}

}  // namespace
}  // namespace nightshift::collective
