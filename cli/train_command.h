// `nightshift train`: runs a job spec to the end without a coordinator.
//
//   --local   in this process alone.
//   --mpi     as one of the ranks `mpirun -np N` started: the MPI world is
//             the data-parallel group (the same step loop, batch split,
//             sharded optimizer step, checkpoints and final model as a
//             cluster job; worker/trainer.h). Gradients travel Nightshift's
//             ring over the MPI transport, or MPI_Allreduce itself with
//             --mpi_native_allreduce. Rank 0 prints progress and writes
//             --out; the other ranks print nothing but errors. Each rank
//             loads the data set (and --resume) from its own file system.
//
// Exit codes: 0 success, 1 the job failed, 2 bad usage or input.
#ifndef NIGHTSHIFT_CLI_TRAIN_COMMAND_H_
#define NIGHTSHIFT_CLI_TRAIN_COMMAND_H_

#include <string>
#include <vector>

namespace nightshift {

struct TrainFlags {
  bool local = false;
  bool mpi = false;
  bool mpi_native_allreduce = false;
  std::string out;     // empty: out/<spec file name without extension>
  std::string resume;  // a checkpoint to continue from
  // 0: one per core alone; under --mpi, the cores shared among the ranks
  // on this host (OMPI_COMM_WORLD_LOCAL_SIZE), as torchrun and Horovod
  // avoid oversubscribing a host.
  int threads = 0;
  int progress_every = 20;
};

// `args`: the positional arguments after "train". `argc`/`argv` are
// main's, for MPI_Init_thread.
int RunTrain(const std::vector<std::string>& args, const TrainFlags& flags, int* argc,
             char*** argv);

}  // namespace nightshift

#endif  // NIGHTSHIFT_CLI_TRAIN_COMMAND_H_
