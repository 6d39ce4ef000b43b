// Failure never hangs: a rank that stalls or dies mid-operation makes every
// other rank fail within the timeout (+1 s), with the culprit named, and
// the communicator stays broken; traffic of an old generation is refused.
#include <atomic>

#include "absl/synchronization/notification.h"
#include "collective/group_for_test.h"
#include "collective/transport/forwarding_transport.h"
#include "collective/transport/grpc/grpc_transport.h"
#include "collective/transport/grpc/peer_server.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace nightshift::collective {
namespace {

using testing::AnyOf;
using testing::ContainsRegex;
using testing::HasSubstr;

// Forwards to a real transport until `fail_after_sends` sends, then calls
// `fault` (which may block, to stall) and fails.
class FaultTransport final : public ForwardingTransport {
 public:
  FaultTransport(std::unique_ptr<Transport> inner, int fail_after_sends,
                 std::function<void()> fault)
      : ForwardingTransport(std::move(inner)), left_(fail_after_sends), fault_(std::move(fault)) {}
  using Transport::Send;
  absl::Status Send(int to, uint64_t tag, absl::Span<const absl::string_view> parts,
                    absl::Time d) override {
    if (left_-- == 0) {
      fault_();
      return absl::UnavailableError("injected fault");
    }
    return ForwardingTransport::Send(to, tag, parts, d);
  }

 private:
  int left_;
  std::function<void()> fault_;
};

// Every rank but rank 1 (the victim) failed as UNAVAILABLE or
// DEADLINE_EXCEEDED, named rank 1, and gave up within timeout + 1 s.
void ExpectSurvivorsNameRank1(const std::vector<absl::Status>& statuses,
                              const std::vector<absl::Duration>& elapsed, absl::Duration timeout) {
  for (size_t r = 0; r < statuses.size(); ++r) {
    if (r == 1) continue;
    EXPECT_THAT(statuses[r].code(),
                AnyOf(absl::StatusCode::kUnavailable, absl::StatusCode::kDeadlineExceeded))
        << r << ": " << statuses[r];
    EXPECT_THAT(std::string(statuses[r].message()), ContainsRegex("rank 1([^0-9]|$)"))
        << "rank " << r << " does not name the victim: " << statuses[r];
    EXPECT_LE(elapsed[r], timeout + absl::Seconds(1)) << "rank " << r;
  }
}

enum class Fault { kStall, kKill };

class FailureTest : public testing::TestWithParam<std::tuple<TransportKind, int, Fault>> {};

TEST_P(FailureTest, EverySurvivorFailsWithinTheTimeoutNamingTheRank) {
  const auto [kind, n, fault] = GetParam();
  const int victim = 1;
  const absl::Duration timeout = absl::Milliseconds(800);
  CommunicatorOptions options;
  options.timeout = timeout;
  absl::Notification survivors_done;
  std::atomic<int> survivors_left{n - 1};
  TestGroup* group_ptr = nullptr;
  auto group = MakeTestGroup(kind, n, options, [&](int rank, std::unique_ptr<Transport> t) {
    if (rank != victim) return t;
    return std::unique_ptr<Transport>(new FaultTransport(std::move(t), 5, [&, fault] {
      if (fault == Fault::kKill) {
        group_ptr->Kill(victim);
      } else {
        survivors_done.WaitForNotification();  // hung until the others gave up
      }
    }));
  });
  group_ptr = group.get();
  std::vector<absl::Duration> elapsed(n);
  std::vector<float> data_template(1 << 20, 1.f);
  auto statuses = group->Run([&](Communicator& comm) {
    std::vector<float> data = data_template;
    const absl::Time start = absl::Now();
    absl::Status s = comm.AllReduce(absl::MakeSpan(data));
    elapsed[comm.rank()] = absl::Now() - start;
    if (comm.rank() != victim && --survivors_left == 0) survivors_done.Notify();
    return s;
  });
  ExpectSurvivorsNameRank1(statuses, elapsed, timeout);
  for (int r = 0; r < n; ++r) {
    if (r == victim) continue;
    auto& comm = *group->communicators()[r];
    // What a survivor tells the coordinator: who is gone.
    EXPECT_THAT(comm.lost_ranks(), testing::Contains(victim)) << "rank " << r;
    EXPECT_THAT(comm.lost_ranks(), testing::Not(testing::Contains(r))) << "rank " << r;
    // Broken for good: the next call refuses at once.
    std::vector<float> more(8, 1.f);
    absl::Status again = comm.AllReduce(absl::MakeSpan(more));
    EXPECT_EQ(again.code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(std::string(again.message()), HasSubstr("new generation"));
  }
}

INSTANTIATE_TEST_SUITE_P(
    TransportSizeFault, FailureTest,
    testing::Combine(testing::Values(TransportKind::kLocal, TransportKind::kGrpc,
                                     TransportKind::kGrpcShm, TransportKind::kSocket),
                     testing::Values(3, 4), testing::Values(Fault::kStall, Fault::kKill)),
    [](const auto& info) {
      return TransportKindName(std::get<0>(info.param)) + "_" +
             std::to_string(std::get<1>(info.param)) + "ranks_" +
             (std::get<2>(info.param) == Fault::kStall ? "stall" : "kill");
    });

// The one-sided step on shared memory fails the same way: a rank that
// stalls or dies before its step is named by every survivor in time.
class SharedStepFailureTest : public testing::TestWithParam<std::tuple<int, Fault>> {};

TEST_P(SharedStepFailureTest, EverySurvivorFailsWithinTheTimeoutNamingTheRank) {
  const auto [n, fault] = GetParam();
  const int victim = 1;
  const absl::Duration timeout = absl::Milliseconds(800);
  CommunicatorOptions options;
  options.timeout = timeout;
  auto group = MakeTestGroup(TransportKind::kGrpcShm, n, options);
  absl::Notification survivors_done;
  std::atomic<int> survivors_left{n - 1};
  std::vector<absl::Duration> elapsed(n);
  auto statuses = group->Run([&](Communicator& comm) -> absl::Status {
    absl::StatusOr<Communicator::StepBuffers> buffers = comm.MapStepBuffers(100000);
    if (!buffers.ok()) return buffers.status();
    if (comm.rank() == victim) {
      if (fault == Fault::kKill) {
        group->Kill(victim);
      } else {
        survivors_done.WaitForNotification();  // hung until the others gave up
      }
      return absl::OkStatus();
    }
    const absl::Time start = absl::Now();
    absl::Status s = comm.AllReduceShardedUpdate(buffers->gradients, buffers->parameters,
                                                 [](int64_t, int64_t) {});
    elapsed[comm.rank()] = absl::Now() - start;
    if (--survivors_left == 0) survivors_done.Notify();
    return s;
  });
  ExpectSurvivorsNameRank1(statuses, elapsed, timeout);
}

INSTANTIATE_TEST_SUITE_P(SizeFault, SharedStepFailureTest,
                         testing::Combine(testing::Values(2, 3),
                                          testing::Values(Fault::kStall, Fault::kKill)),
                         [](const auto& info) {
                           return std::to_string(std::get<0>(info.param)) + "ranks_" +
                                  (std::get<1>(info.param) == Fault::kStall ? "stall" : "kill");
                         });

TEST(GenerationTest, OldGenerationTrafficIsRefused) {
  auto receiver = PeerServer::StartInsecureForTest("127.0.0.1:0");
  auto sender_server = PeerServer::StartInsecureForTest("127.0.0.1:0");
  ASSERT_TRUE(receiver.ok() && sender_server.ok());
  const std::vector<std::string> addresses = {(*sender_server)->address(), (*receiver)->address()};
  // The receiver's rank 1 is in generation 2 ...
  auto current = GrpcTransport::Create((*receiver)->service(), {"job", 2, 1, addresses});
  ASSERT_TRUE(current.ok()) << current.status();
  // ... and cannot go back.
  EXPECT_EQ((*receiver)->service()->OpenGroup("job", 1, "").status().code(),
            absl::StatusCode::kFailedPrecondition);
  // A rank 0 still in generation 1 sends to it.
  auto stale = GrpcTransport::Create((*sender_server)->service(), {"job", 1, 0, addresses});
  ASSERT_TRUE(stale.ok()) << stale.status();
  const absl::Time give_up = absl::Now() + absl::Seconds(5);
  absl::Status s;
  for (uint64_t tag = 0; s.ok() && absl::Now() < give_up; ++tag) {
    s = (*stale)->Send(1, tag, "abcd", give_up);
  }
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("stale generation"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("rank 1"));
  // Nothing of it reached generation 2.
  char buf[4];
  absl::Status r =
      (*current)->Recv(0, 0, absl::MakeSpan(buf, 4), absl::Now() + absl::Milliseconds(200));
  EXPECT_EQ(r.code(), absl::StatusCode::kDeadlineExceeded) << r;
}

TEST(GenerationTest, NewGenerationWorksAfterABrokenOne) {
  CommunicatorOptions options;
  options.timeout = absl::Milliseconds(300);
  options.generation = 1;
  auto broken = MakeTestGroup(TransportKind::kGrpc, 3, options);
  // Rank 2 never shows up: generation 1 breaks.
  auto statuses = broken->Run([](Communicator& c) -> absl::Status {
    if (c.rank() == 2) return absl::OkStatus();
    std::vector<float> v(10, 1.f);
    return c.AllReduce(absl::MakeSpan(v));
  });
  EXPECT_FALSE(statuses[0].ok());
  options.generation = 2;
  auto rebuilt = MakeTestGroup(TransportKind::kGrpc, 3, options);
  statuses = rebuilt->Run([](Communicator& c) {
    std::vector<float> v(10, 1.f);
    return c.AllReduce(absl::MakeSpan(v));
  });
  for (const auto& s : statuses) EXPECT_TRUE(s.ok()) << s;
}

}  // namespace
}  // namespace nightshift::collective
