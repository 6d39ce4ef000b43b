// MpiScope: MPI's lifetime as an object. Init() calls MPI_Init_thread
// (MPI_THREAD_SERIALIZED: any one thread at a time may call MPI) and the
// destructor MPI_Finalize. At most one per process, created in main() and
// passed down; MPI cannot be initialized twice in a process.
//
// <mpi.h> is included only by the .cc files of this folder.
#ifndef NIGHTSHIFT_COLLECTIVE_TRANSPORT_MPI_MPI_SCOPE_H_
#define NIGHTSHIFT_COLLECTIVE_TRANSPORT_MPI_MPI_SCOPE_H_

#include <memory>

#include "absl/status/statusor.h"

namespace nightshift::collective {

class MpiScope {
 public:
  static absl::StatusOr<std::unique_ptr<MpiScope>> Init(int* argc, char*** argv);
  ~MpiScope();
  MpiScope(const MpiScope&) = delete;
  MpiScope& operator=(const MpiScope&) = delete;

  int world_rank() const { return rank_; }
  int world_size() const { return size_; }

 private:
  MpiScope(int rank, int size) : rank_(rank), size_(size) {}
  int rank_, size_;
};

}  // namespace nightshift::collective

#endif  // NIGHTSHIFT_COLLECTIVE_TRANSPORT_MPI_MPI_SCOPE_H_
