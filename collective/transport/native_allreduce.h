// NativeAllReduce: the optional capability of a transport that brings its
// own all-reduce (MPI_Allreduce under mpirun). The communicator asks for it
// (dynamic_cast) only when CommunicatorOptions::native_allreduce is set;
// every other transport is left to the ring.
#ifndef NIGHTSHIFT_COLLECTIVE_TRANSPORT_NATIVE_ALLREDUCE_H_
#define NIGHTSHIFT_COLLECTIVE_TRANSPORT_NATIVE_ALLREDUCE_H_

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "collective/wire.h"

namespace nightshift::collective {

class NativeAllReduce {
 public:
  virtual ~NativeAllReduce() = default;
  // Reduces `data` in place over every rank with `op` (float32); the same
  // threading and failure rules as the transport's other calls.
  virtual absl::Status AllReduceInPlace(absl::Span<float> data, ReduceOp op) = 0;
};

}  // namespace nightshift::collective

#endif  // NIGHTSHIFT_COLLECTIVE_TRANSPORT_NATIVE_ALLREDUCE_H_
