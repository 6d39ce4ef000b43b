#include "cli/train_command.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "cli/progress_line.h"
#include "collective/communicator.h"
#include "collective/transport/mpi/mpi_scope.h"
#include "collective/transport/mpi/mpi_transport.h"
#include "kernels/threads.h"
#include "spec/job_spec.h"
#include "worker/trainer.h"

namespace nightshift {
namespace {

// How long one collective may wait for the other ranks: MPI itself never
// gives up (mpirun ends the job when a rank dies), but a rank that stops
// answering is named after this.
constexpr absl::Duration kMpiOperationTimeout = absl::Seconds(120);

std::string DefaultOutDir(const std::string& spec_path) {
  std::string base = spec_path.substr(spec_path.find_last_of('/') + 1);
  base = base.substr(0, base.find('.'));
  return absl::StrCat("out/", base);
}

// The compute threads for one of `local_ranks` ranks on this host.
int ThreadsPerRank(int requested, int local_ranks) {
  if (requested > 0) return requested;
  const int cores = static_cast<int>(std::thread::hardware_concurrency());
  return std::max(1, cores / std::max(1, local_ranks));
}

// Open MPI's count of the ranks on this host; 1 when it does not say.
int LocalRanks() {
  const char* v = std::getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
  int n = 1;
  if (v == nullptr || !absl::SimpleAtoi(v, &n) || n < 1) return 1;
  return n;
}

// True on every rank when every rank's `ok` is true; a collective.
absl::StatusOr<bool> AllRanksOk(collective::Communicator& comm, bool ok) {
  std::vector<float> failed{ok ? 0.f : 1.f};
  if (absl::Status s = comm.AllReduce(absl::MakeSpan(failed)); !s.ok()) return s;
  return failed[0] == 0;
}

}  // namespace

int RunTrain(const std::vector<std::string>& args, const TrainFlags& flags, int* argc,
             char*** argv) {
  if (flags.local == flags.mpi) {
    std::cerr << "nightshift train: give exactly one of --local (this process) and --mpi (one "
                 "rank under mpirun); to train on a cluster, `nightshift submit JOB_SPEC`\n";
    return 2;
  }
  if (args.size() != 1) {
    std::cerr << "usage: nightshift train --local|--mpi JOB_SPEC [--out=DIR]\n";
    return 2;
  }
  std::unique_ptr<collective::MpiScope> mpi;
  std::unique_ptr<collective::Communicator> comm;
  int rank = 0;
  if (flags.mpi) {
    absl::StatusOr<std::unique_ptr<collective::MpiScope>> scope =
        collective::MpiScope::Init(argc, argv);
    if (!scope.ok()) {
      std::cerr << "nightshift train --mpi: " << scope.status().message()
                << " (start it with mpirun -np N)\n";
      return 1;
    }
    mpi = *std::move(scope);
    rank = mpi->world_rank();
  }
  // Every rank checks the spec; rank 0 alone says what is wrong with it.
  absl::StatusOr<v1::JobSpec> spec = LoadJobSpec(args[0]);
  absl::Status valid = spec.ok() ? ValidateJobSpec(*spec) : spec.status();
  if (!valid.ok()) {
    if (rank == 0) {
      std::cerr << "nightshift train: "
                << (spec.ok() ? absl::StrCat(args[0], ": invalid job spec: ", valid.message())
                              : std::string(valid.message()))
                << "\n";
    }
    return 2;
  }
  if (mpi != nullptr) {
    collective::CommunicatorOptions options;
    options.job_id = spec->name();
    options.timeout = kMpiOperationTimeout;
    options.native_allreduce = flags.mpi_native_allreduce;
    comm = std::make_unique<collective::Communicator>(collective::MakeMpiTransport(*mpi), options);
  }
  SetComputeThreads(flags.mpi ? ThreadsPerRank(flags.threads, LocalRanks()) : flags.threads);

  const bool tty = isatty(fileno(stderr));
  TrainerOptions options;
  const std::string out_dir = flags.out.empty() ? DefaultOutDir(args[0]) : flags.out;
  if (rank == 0) options.out_dir = out_dir;
  options.resume_path = flags.resume;
  options.progress_interval_steps = std::max(1, flags.progress_every);
  options.on_evaluation = [tty](const v1::Progress& p) {
    std::fprintf(stderr, "%s%s\n", tty ? "\r\033[K" : "", FormatEvaluationLine(p).c_str());
  };
  options.on_progress = [tty](const v1::Progress& p) {
    if (tty) {
      std::fprintf(stderr, "\r\033[K%s", FormatProgressLine(p).c_str());
    } else {
      std::fprintf(stderr, "%s\n", FormatProgressLine(p).c_str());
    }
    std::fflush(stderr);
  };
  if (comm != nullptr) options.data_parallel = DataParallel{comm.get()};
  if (rank == 0) {
    const std::string group =
        comm == nullptr ? ""
                        : absl::StrCat(" per rank, ", comm->size(), " MPI ranks summing over ",
                                       flags.mpi_native_allreduce ? "MPI_Allreduce" : "the ring");
    std::fprintf(stderr, "nightshift: training %s with %d threads%s, writing to %s\n",
                 args[0].c_str(), ComputeThreads(), group.c_str(), out_dir.c_str());
  }
  absl::StatusOr<std::unique_ptr<Trainer>> trainer = Trainer::Create(*spec, options);
  if (!trainer.ok()) {
    std::cerr << "nightshift train" << (comm != nullptr ? absl::StrCat(" (rank ", rank, ")") : "")
              << ": " << trainer.status().message() << "\n";
  }
  if (comm != nullptr) {
    // A rank that could not start (its data or checkpoint unreadable) must
    // not leave the others waiting in the first collective.
    absl::StatusOr<bool> all_ok = AllRanksOk(*comm, trainer.ok());
    if (!all_ok.ok() || !*all_ok) {
      if (rank == 0) {
        std::cerr << "nightshift train: "
                  << (all_ok.ok() ? "a rank could not start (its error is above)"
                                  : std::string(all_ok.status().message()))
                  << "\n";
      }
      return 1;
    }
  }
  if (!trainer.ok()) return 1;
  absl::StatusOr<TrainResult> result = (*trainer)->Run();
  if (!result.ok()) {
    std::cerr << "\nnightshift train: " << result.status().message() << "\n";
    return 1;
  }
  if (rank != 0) return 0;
  std::printf("final test accuracy: %.2f%% (test loss %.4f) after %lld steps\n",
              100 * result->test_accuracy, result->test_loss,
              static_cast<long long>(result->steps));
  if (!result->model_path.empty()) std::printf("model: %s\n", result->model_path.c_str());
  return 0;
}

}  // namespace nightshift
