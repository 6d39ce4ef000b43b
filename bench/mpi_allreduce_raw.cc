// Peer for allreduce_bench: plain MPI_Allreduce with nothing of Nightshift
// around it, timed the same way, so the pass-through's overhead can be
// read off side by side. (A benchmark peer, like the PyTorch scripts; the
// project's own code includes <mpi.h> only in collective/transport/mpi.)
//
// usage: mpirun -np N mpi_allreduce_raw [sizes in bytes, comma-separated]
#include <mpi.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, n = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  std::string sizes = argc > 1 ? argv[1] : "4096,65536,1048576,16777216,67108864";
  const double budget = argc > 2 ? std::atof(argv[2]) : 1.0;
  size_t pos = 0;
  while (pos < sizes.size()) {
    size_t comma = sizes.find(',', pos);
    if (comma == std::string::npos) comma = sizes.size();
    const long long bytes = std::stoll(sizes.substr(pos, comma - pos));
    pos = comma + 1;
    std::vector<float> data(bytes / 4, 1.f);
    auto op = [&] {
      MPI_Allreduce(MPI_IN_PLACE, data.data(), static_cast<int>(data.size()), MPI_FLOAT, MPI_SUM,
                    MPI_COMM_WORLD);
    };
    for (int i = 0; i < 3; ++i) op();
    double t = MPI_Wtime();
    op();
    double iters = std::max(5.0, std::min(2000.0, budget / (MPI_Wtime() - t)));
    MPI_Bcast(&iters, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    MPI_Barrier(MPI_COMM_WORLD);
    t = MPI_Wtime();
    for (int i = 0; i < static_cast<int>(iters); ++i) op();
    const double sec = (MPI_Wtime() - t) / static_cast<int>(iters);
    if (rank == 0) {
      const double algbw = bytes / sec / 1e9;
      std::printf("impl=mpi_raw ranks=%d bytes=%lld us=%.1f algbw_gbps=%.3f busbw_gbps=%.3f\n", n,
                  bytes, sec * 1e6, algbw, algbw * 2.0 * (n - 1) / n);
      std::fflush(stdout);
    }
  }
  MPI_Finalize();
  return 0;
}
