#include "collective/transport/mpi/mpi_scope.h"

#include <mpi.h>

#include "absl/strings/str_cat.h"

namespace nightshift::collective {

absl::StatusOr<std::unique_ptr<MpiScope>> MpiScope::Init(int* argc, char*** argv) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized) return absl::FailedPreconditionError("MPI is already initialized");
  int provided = 0;
  if (MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS) {
    return absl::UnavailableError("MPI_Init_thread failed");
  }
  if (provided < MPI_THREAD_SERIALIZED) {
    MPI_Finalize();
    return absl::FailedPreconditionError(
        absl::StrCat("MPI provides thread level ", provided, ", need MPI_THREAD_SERIALIZED"));
  }
  // Errors come back as return codes, never as an abort of the job.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  int rank = 0, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  return std::unique_ptr<MpiScope>(new MpiScope(rank, size));
}

MpiScope::~MpiScope() { MPI_Finalize(); }

}  // namespace nightshift::collective
