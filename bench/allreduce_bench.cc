// All-reduce latency and bandwidth of Nightshift's collectives, one process
// per rank, for 4 KiB .. 64 MiB float32 buffers.
//
//   gRPC ring:   allreduce_bench --transport=grpc --rank=R --size=N --rendezvous=DIR
//                [--tls_dir=DIR]
//                (each rank listens on a free loopback port and writes its
//                address to DIR/rank-R; all read the others' files; with
//                --tls_dir, mutual TLS as workers run it, from DIR/ca.pem,
//                DIR/node.pem and DIR/node.key: deploy/certs.sh)
//   MPI ring:    mpirun -np N allreduce_bench --transport=mpi
//   MPI native:  mpirun -np N allreduce_bench --transport=mpi --native
//                (straight MPI_Allreduce through the pass-through)
//
// Rank 0 prints one line per size:
//   impl=grpc ranks=2 bytes=4096 us=... algbw_gbps=... busbw_gbps=...
// with algbw = bytes / time and busbw = 2(n−1)/n × algbw (NCCL's
// convention: the bandwidth each link would need).
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/allocator.h"
#include "base/host_identity.h"
#include "collective/communicator.h"
#include "collective/file_rendezvous.h"
#include "collective/fusion.h"
#include "collective/transport/grpc/peer_server.h"
#include "collective/transport/mpi/mpi_transport.h"
#include "collective/transport/routing_transport.h"
#include "security/credentials.h"

ABSL_FLAG(std::string, transport, "grpc", "grpc or mpi");
ABSL_FLAG(bool, native, false, "mpi: use MPI_Allreduce instead of the ring");
ABSL_FLAG(int, rank, 0, "grpc: this rank");
ABSL_FLAG(int, size, 2, "grpc: world size");
ABSL_FLAG(std::string, rendezvous, "", "grpc: folder where ranks publish addresses");
ABSL_FLAG(bool, shared_memory, false, "grpc: data through shared memory between local ranks");
ABSL_FLAG(bool, data_sockets, false,
          "grpc: data through TCP connections of its own, gRPC for control only");
ABSL_FLAG(std::string, tls_dir, "", "grpc: mutual TLS with DIR/ca.pem, DIR/node.pem, DIR/node.key");
ABSL_FLAG(std::string, sizes, "4096,65536,1048576,16777216,67108864", "buffer sizes in bytes");
ABSL_FLAG(double, seconds, 1.0, "time to spend per size");
ABSL_FLAG(int, fusion_tensors, 0,
          "if > 0: instead of buffer sizes, all-reduce this many tensors of "
          "--fusion_tensor_bytes each, once per threshold in --fusion_thresholds");
ABSL_FLAG(int64_t, fusion_tensor_bytes, 16384, "bytes per tensor in fusion mode");
ABSL_FLAG(std::string, fusion_thresholds, "0,262144,1048576,4194304,16777216",
          "fusion thresholds to compare, bytes");

namespace nightshift::collective {
namespace {

using Clock = std::chrono::steady_clock;

// Seconds per call of `op` (an all-reduce every rank runs alike): after
// warm-up, rank 0 picks the iteration count from one probe and tells
// everyone, so all ranks time the same number of calls.
template <typename Op>
double SecondsPerCall(Communicator& comm, Op op) {
  for (int i = 0; i < 3; ++i) op();
  auto start = Clock::now();
  op();
  float iters = std::max(
      5.0, std::min(2000.0, absl::GetFlag(FLAGS_seconds) /
                                std::chrono::duration<double>(Clock::now() - start).count()));
  if (!comm.Broadcast(absl::MakeSpan(&iters, 1), 0).ok() || !comm.Barrier().ok()) std::exit(1);
  start = Clock::now();
  for (int i = 0; i < static_cast<int>(iters); ++i) op();
  return std::chrono::duration<double>(Clock::now() - start).count() / static_cast<int>(iters);
}

int RunFusion(Communicator& comm, const std::string& impl) {
  const int count = absl::GetFlag(FLAGS_fusion_tensors);
  const int64_t bytes = absl::GetFlag(FLAGS_fusion_tensor_bytes);
  std::vector<std::vector<float>> tensors(count, std::vector<float>(bytes / 4, 1.f));
  std::vector<absl::Span<float>> spans;
  for (auto& t : tensors) spans.push_back(absl::MakeSpan(t));
  for (absl::string_view text : absl::StrSplit(absl::GetFlag(FLAGS_fusion_thresholds), ',')) {
    const int64_t threshold = std::stoll(std::string(text));
    TensorFusion fusion(threshold);
    const double seconds = SecondsPerCall(comm, [&] {
      if (!fusion.AllReduce(comm, spans).ok()) std::exit(1);
    });
    if (comm.rank() == 0) {
      std::printf(
          "impl=%s ranks=%d tensors=%d tensor_bytes=%lld fusion_threshold=%lld "
          "operations=%lld us=%.1f\n",
          impl.c_str(), comm.size(), count, static_cast<long long>(bytes),
          static_cast<long long>(threshold), static_cast<long long>(fusion.last_operation_count()),
          seconds * 1e6);
      std::fflush(stdout);
    }
  }
  return 0;
}

int Run(Communicator& comm, const std::string& impl) {
  if (absl::GetFlag(FLAGS_fusion_tensors) > 0) return RunFusion(comm, impl);
  for (absl::string_view size_text : absl::StrSplit(absl::GetFlag(FLAGS_sizes), ',')) {
    const int64_t bytes = std::stoll(std::string(size_text));
    std::vector<float> data(bytes / 4, 1.f);
    const double seconds = SecondsPerCall(comm, [&] {
      absl::Status s = comm.AllReduce(absl::MakeSpan(data));
      if (!s.ok()) {
        std::fprintf(stderr, "%s\n", s.ToString().c_str());
        std::exit(1);
      }
    });
    if (comm.rank() == 0) {
      const int n = comm.size();
      const double algbw = bytes / seconds / 1e9;
      std::printf("impl=%s ranks=%d bytes=%lld us=%.1f algbw_gbps=%.3f busbw_gbps=%.3f\n",
                  impl.c_str(), n, static_cast<long long>(bytes), seconds * 1e6, algbw,
                  algbw * 2.0 * (n - 1) / n);
      std::fflush(stdout);
    }
  }
  return 0;
}

int Main(int argc, char** argv) {
  ConfigureAllocatorForLargeMessages();  // as the worker does
  absl::ParseCommandLine(argc, argv);
  if (absl::GetFlag(FLAGS_transport) == "mpi") {
    auto scope = MpiScope::Init(&argc, &argv);
    if (!scope.ok()) return 1;
    CommunicatorOptions options{"bench", 0, absl::Seconds(120), absl::GetFlag(FLAGS_native)};
    Communicator comm(MakeMpiTransport(**scope), options);
    return Run(comm, absl::GetFlag(FLAGS_native) ? "mpi_allreduce" : "nightshift_mpi_ring");
  }
  const std::string tls = absl::GetFlag(FLAGS_tls_dir);
  security::TransportSecurity sec;
  sec.insecure = tls.empty();
  if (!tls.empty()) sec.tls = {tls + "/ca.pem", tls + "/node.pem", tls + "/node.key"};
  auto server = PeerServer::Start("127.0.0.1:0", security::ServerCredentials(sec, "127.0.0.1:0"),
                                  security::ChannelCredentials(sec));
  if (!server.ok()) return 1;
  const int rank = absl::GetFlag(FLAGS_rank), size = absl::GetFlag(FLAGS_size);
  auto peers = FileRendezvous(absl::GetFlag(FLAGS_rendezvous), rank, size, (*server)->address(),
                              HostIdentity(), absl::Now() + absl::Seconds(30));
  if (!peers.ok()) {
    std::fprintf(stderr, "%s\n", peers.status().ToString().c_str());
    return 1;
  }
  const bool shm = absl::GetFlag(FLAGS_shared_memory);
  const bool sockets = absl::GetFlag(FLAGS_data_sockets);
  GroupMembership group{"bench", 0, rank, peers->addresses, peers->host_ids, shm};
  group.data_sockets = sockets;
  if (!tls.empty()) group.data_tls = DataTlsFiles{sec.tls.ca, sec.tls.cert, sec.tls.key};
  auto transport = ConnectGroup((*server)->service(), std::move(group));
  if (!transport.ok()) return 1;
  Communicator comm(*std::move(transport), {"bench", 0, absl::Seconds(120), false});
  std::string impl = shm       ? "nightshift_shm_ring"
                     : sockets ? "nightshift_socket_ring"
                               : "nightshift_grpc_ring";
  if (!tls.empty()) impl += "_tls";
  const int rc = Run(comm, impl);
  // Everyone finishes before anyone's server goes away.
  comm.Barrier().IgnoreError();
  return rc;
}

}  // namespace
}  // namespace nightshift::collective

int main(int argc, char** argv) { return nightshift::collective::Main(argc, argv); }
