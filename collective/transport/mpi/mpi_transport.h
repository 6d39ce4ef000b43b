// MpiTransport: the Transport of a group formed by the MPI world (every
// process `mpirun` started), for clusters that already run MPI.
//
// Send gathers the message into a recycled buffer and posts MPI_Isend;
// Flush waits for those sends. RecvWith posts MPI_Irecv into a reused buffer and
// polls it with MPI_Test until the deadline, then cancels. MPI matches by
// (source, tag); the tag is derived from the algorithm's 64-bit tag, and
// MPI's non-overtaking rule keeps messages with equal tags in order.
//
// It has the NativeAllReduce capability (transport/native_allreduce.h):
// straight through to MPI_Allreduce (selectable in CommunicatorOptions); it cannot time out — see
// FAILURE_POLICY.md. AwaitAborts has no census under MPI (mpirun tears the job down when a rank
// dies) and reports every peer as heard.
//
// One thread at a time; the MpiScope must outlive the transport.
#ifndef NIGHTSHIFT_COLLECTIVE_TRANSPORT_MPI_MPI_TRANSPORT_H_
#define NIGHTSHIFT_COLLECTIVE_TRANSPORT_MPI_MPI_TRANSPORT_H_

#include <memory>

#include "collective/transport/mpi/mpi_scope.h"
#include "collective/transport/transport.h"

namespace nightshift::collective {

// A transport over a duplicate of MPI_COMM_WORLD.
std::unique_ptr<Transport> MakeMpiTransport(const MpiScope& scope);

}  // namespace nightshift::collective

#endif  // NIGHTSHIFT_COLLECTIVE_TRANSPORT_MPI_MPI_TRANSPORT_H_
