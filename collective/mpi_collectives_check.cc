// Checks the collectives over the MPI transport: run under mpirun, every
// rank computes the expected results itself and exits non-zero on any
// mismatch, printing what differed. Both the ring and the native
// MPI_Allreduce path are checked.
#include <cstdio>
#include <vector>

#include "absl/strings/str_cat.h"
#include "collective/communicator.h"
#include "collective/ring.h"
#include "collective/transport/mpi/mpi_transport.h"

namespace nightshift::collective {
namespace {

float Value(int rank, int64_t i) { return static_cast<float>((i * 7 + rank * 13) % 17) - 8; }

int failures = 0;

void Check(bool ok, const std::string& what) {
  if (!ok) {
    ++failures;
    std::fprintf(stderr, "FAIL: %s\n", what.c_str());
  }
}

void CheckAllReduce(Communicator& comm, const char* mode) {
  const int n = comm.size();
  for (int64_t len : {0, 1, 7, 13, 2, 40009, 1000000}) {
    for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kAverage, ReduceOp::kMin, ReduceOp::kMax}) {
      std::vector<float> data(len);
      for (int64_t i = 0; i < len; ++i) data[i] = Value(comm.rank(), i);
      AllReduceOptions options;
      options.op = op;
      absl::Status s = comm.AllReduce(absl::MakeSpan(data), options);
      const std::string what =
          absl::StrCat(mode, " ", ReduceOpName(op), " length ", len, " on rank ", comm.rank());
      Check(s.ok(), absl::StrCat(what, ": ", s.ToString()));
      for (int64_t i = 0; i < len; ++i) {
        float acc = Value(0, i);
        for (int r = 1; r < n; ++r) {
          const float v = Value(r, i);
          acc = op == ReduceOp::kMin   ? std::min(acc, v)
                : op == ReduceOp::kMax ? std::max(acc, v)
                                       : acc + v;
        }
        if (op == ReduceOp::kAverage) acc *= 1.f / n;
        if (data[i] != acc) {
          Check(false, absl::StrCat(what, ": element ", i, " is ", data[i], ", expected ", acc));
          break;
        }
      }
    }
  }
}

// The sharded update: each element's sum reaches one updater (every rank
// in native mode), and every rank ends with the same updated values.
void CheckShardedUpdate(Communicator& comm, const char* mode) {
  const int64_t len = 300000;
  std::vector<float> data(len), target(len, -1.f);
  for (int64_t i = 0; i < len; ++i) data[i] = Value(comm.rank(), i);
  int64_t updated = 0;
  absl::Status s = comm.AllReduceShardedUpdate(absl::MakeSpan(data), absl::MakeSpan(target),
                                               [&](int64_t begin, int64_t end) {
                                                 for (int64_t i = begin; i < end; ++i)
                                                   target[i] = 2 * data[i];
                                                 updated += end - begin;
                                               });
  const std::string what = absl::StrCat(mode, " sharded update on rank ", comm.rank());
  Check(s.ok(), absl::StrCat(what, ": ", s.ToString()));
  Check(updated > 0 && updated <= len, absl::StrCat(what, ": updated ", updated));
  for (int64_t i = 0; i < len; ++i) {
    float sum = 0;
    for (int r = 0; r < comm.size(); ++r) sum += Value(r, i);
    if (target[i] != 2 * sum) {
      Check(false, absl::StrCat(what, ": element ", i, " is ", target[i], ", expected ", 2 * sum));
      break;
    }
  }
}

int Main(int argc, char** argv) {
  auto scope = MpiScope::Init(&argc, &argv);
  if (!scope.ok()) {
    std::fprintf(stderr, "%s\n", scope.status().ToString().c_str());
    return 1;
  }
  {
    Communicator ring(MakeMpiTransport(**scope), {"mpi-check", 0, absl::Seconds(60), false});
    CheckAllReduce(ring, "ring");
    CheckShardedUpdate(ring, "ring");
    // Broadcast and all-gather over the ring.
    std::vector<float> b(50000);
    for (int64_t i = 0; i < 50000; ++i) b[i] = Value(ring.rank(), i);
    absl::Status s = ring.Broadcast(absl::MakeSpan(b), 1);
    Check(s.ok(), s.ToString());
    for (int64_t i = 0; i < 50000; ++i) {
      if (b[i] != Value(1, i)) {
        Check(false, absl::StrCat("broadcast element ", i));
        break;
      }
    }
    std::vector<float> in(33, ring.rank()), out(33 * ring.size());
    s = ring.AllGather(in, absl::MakeSpan(out));
    Check(s.ok(), s.ToString());
    for (int r = 0; r < ring.size(); ++r) Check(out[r * 33 + 32] == r, "all-gather block");
    // A compressed wire agrees on every rank (the bound is tested elsewhere).
    std::vector<float> c(70000, 0.1f * (ring.rank() + 1));
    AllReduceOptions bf16;
    bf16.wire = WireDtype::kBFloat16;
    s = ring.AllReduce(absl::MakeSpan(c), bf16);
    Check(s.ok(), s.ToString());
    std::vector<float> all(c.size() * ring.size());
    s = ring.AllGather(c, absl::MakeSpan(all));
    for (int r = 1; r < ring.size(); ++r) {
      Check(std::equal(c.begin(), c.end(), all.begin() + r * c.size()), "bf16 ranks disagree");
    }
  }
  {
    Communicator native(MakeMpiTransport(**scope), {"mpi-check", 0, absl::Seconds(60), true});
    CheckAllReduce(native, "native");
    CheckShardedUpdate(native, "native");
  }
  std::printf("rank %d of %d: %s\n", (*scope)->world_rank(), (*scope)->world_size(),
              failures == 0 ? "all checks passed" : "FAILED");
  return failures == 0 ? 0 : 1;
}

}  // namespace
}  // namespace nightshift::collective

int main(int argc, char** argv) { return nightshift::collective::Main(argc, argv); }
