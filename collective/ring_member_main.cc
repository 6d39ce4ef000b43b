// One rank of a gRPC all-reduce group in its own process, for tests that
// kill processes. Publishes its Peer address in --rendezvous, then runs
// all-reduces of 1 Mi floats (with --one_sided: sharded updates on step
// memory mapped between the ranks) until --ops are done or one fails, printing
// "op N done" after each and, on failure, "rank R failed after M ms (at
// unix ms T): ...".
// Exit status: 0 all ops done, 3 an op failed.
#include <chrono>
#include <cstdio>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "base/allocator.h"
#include "base/host_identity.h"
#include "collective/communicator.h"
#include "collective/file_rendezvous.h"
#include "collective/transport/grpc/peer_server.h"
#include "collective/transport/routing_transport.h"

ABSL_FLAG(int, rank, 0, "this rank");
ABSL_FLAG(int, size, 3, "world size");
ABSL_FLAG(std::string, rendezvous, "", "folder where ranks publish addresses");
ABSL_FLAG(int, ops, 100000, "all-reduces to run");
ABSL_FLAG(int, timeout_ms, 2000, "per-operation timeout");
ABSL_FLAG(bool, shared_memory, false, "data through shared memory between local ranks");
ABSL_FLAG(bool, one_sided, false,
          "with --shared_memory: one-sided sharded updates on shared step memory");

namespace nightshift::collective {
namespace {

int Main(int argc, char** argv) {
  ConfigureAllocatorForLargeMessages();
  absl::ParseCommandLine(argc, argv);
  const int rank = absl::GetFlag(FLAGS_rank), size = absl::GetFlag(FLAGS_size);
  const std::string dir = absl::GetFlag(FLAGS_rendezvous);
  auto server = PeerServer::StartInsecureForTest("127.0.0.1:0");
  if (!server.ok()) return 1;
  auto peers = FileRendezvous(dir, rank, size, (*server)->address(), HostIdentity(),
                              absl::Now() + absl::Seconds(30));
  if (!peers.ok()) {
    std::printf("rank %d: %s\n", rank, peers.status().ToString().c_str());
    return 1;
  }
  auto transport =
      ConnectGroup((*server)->service(), {"kill-test", 0, rank, peers->addresses, peers->host_ids,
                                          absl::GetFlag(FLAGS_shared_memory)});
  if (!transport.ok()) return 1;
  Communicator comm(*std::move(transport),
                    {"kill-test", 0, absl::Milliseconds(absl::GetFlag(FLAGS_timeout_ms)), false});
  std::vector<float> own(1 << 20), own_result(1 << 20);
  absl::Span<float> data = absl::MakeSpan(own), result = absl::MakeSpan(own_result);
  if (absl::GetFlag(FLAGS_one_sided)) {
    auto shared = comm.MapStepBuffers(1 << 20);
    if (!shared.ok()) {
      std::printf("rank %d: %s\n", rank, shared.status().ToString().c_str());
      return 1;
    }
    data = shared->gradients;
    result = shared->parameters;
  }
  // As a trainer's first collectives do, a barrier opens the rings, so
  // that a rank killed later leaves no unopened ring file behind.
  if (absl::Status s = comm.Barrier(); !s.ok()) {
    std::printf("rank %d: %s\n", rank, s.ToString().c_str());
    return 1;
  }
  for (int op = 1; op <= absl::GetFlag(FLAGS_ops); ++op) {
    std::fill(data.begin(), data.end(), 1.f);
    const absl::Time start = absl::Now();
    absl::Status s;
    if (absl::GetFlag(FLAGS_one_sided)) {
      s = comm.AllReduceShardedUpdate(data, result, [&](int64_t begin, int64_t end) {
        std::copy(data.begin() + begin, data.begin() + end, result.begin() + begin);
      });
    } else {
      s = comm.AllReduce(data);
      std::copy(data.begin(), data.end(), result.begin());
    }
    if (!s.ok()) {
      // The wall-clock time lets a test measure from the moment it killed
      // a peer; process exit can lag (gRPC's shutdown after a lost peer).
      std::printf("rank %d failed after %lld ms (at unix ms %lld): %s\n", rank,
                  static_cast<long long>(absl::ToInt64Milliseconds(absl::Now() - start)),
                  static_cast<long long>(absl::ToUnixMillis(absl::Now())), s.ToString().c_str());
      std::fflush(stdout);
      return 3;
    }
    if (result[12345] != size || result[(1 << 20) - 1] != size) {
      std::printf("rank %d: wrong sum %f\n", rank, result[12345]);
      return 1;
    }
    std::printf("op %d done\n", op);
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace
}  // namespace nightshift::collective

int main(int argc, char** argv) { return nightshift::collective::Main(argc, argv); }
