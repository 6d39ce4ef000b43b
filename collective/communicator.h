// Communicator: the collective operations of one group — a job's ranks in
// one generation — over any Transport.
//
// Every operation returns absl::Status and finishes, one way or the other,
// by its deadline (now + timeout, real time: the transports wait on it)
// plus a short census: a dead, stalled or disconnected peer yields
// UNAVAILABLE or DEADLINE_EXCEEDED naming the rank that did not answer. The first failure breaks
// the communicator for good: later calls return FAILED_PRECONDITION, and the group must be rebuilt
// with a new generation (collective/FAILURE_POLICY.md). Bad arguments (a wrong root, mismatched
// sizes) return INVALID_ARGUMENT and break nothing.
//
// All ranks must call the same operations in the same order with the same
// sizes. One thread at a time per communicator (Interrupt aside).
#ifndef NIGHTSHIFT_COLLECTIVE_COMMUNICATOR_H_
#define NIGHTSHIFT_COLLECTIVE_COMMUNICATOR_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "collective/transport/transport.h"
#include "collective/wire.h"

namespace nightshift::collective {

struct CommunicatorOptions {
  std::string job_id;
  int64_t generation = 0;
  absl::Duration timeout = absl::Seconds(30);  // per operation
  // Pass all-reduces to the transport's own implementation (MPI_Allreduce)
  // instead of the ring; only float32 on the wire, no element offsets.
  bool native_allreduce = false;
};

// After a failure, how long a rank waits to hear which peers gave up too;
// the ones that stay silent are named as not answering.
inline constexpr absl::Duration kFailureCensusWait = absl::Milliseconds(300);

struct AllReduceOptions {
  ReduceOp op = ReduceOp::kSum;
  WireDtype wire = WireDtype::kFloat32;
  // Index of data[0] in the group's element index space; results for an
  // element depend only on its index, so pieces of one logical buffer
  // reduced separately match reducing it whole (collective/ring.h).
  int64_t element_offset = 0;
};

class SharedStepMemory;

class Communicator {
 public:
  Communicator(std::unique_ptr<Transport> transport, CommunicatorOptions options);
  ~Communicator();
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  int rank() const { return transport_->rank(); }
  int size() const { return transport_->size(); }
  int64_t generation() const { return options_.generation; }
  const std::string& job_id() const { return options_.job_id; }
  // OK, or the failure that broke this communicator.
  absl::Status status() const { return broken_; }
  // After a failure that a peer's silence caused (UNAVAILABLE or
  // DEADLINE_EXCEEDED): the ranks that stayed silent in the census — the
  // ones that died, stalled or were cut off. Empty otherwise.
  const std::vector<int>& lost_ranks() const { return lost_ranks_; }

  absl::Status AllReduce(absl::Span<float> data, const AllReduceOptions& options = {});
  // Sharded update (ZeRO stage 1): sums `data` over the ranks like
  // AllReduce, but each element's final sum reaches only the rank that
  // owns it (collective/ring.h), which calls update(begin, end) for each
  // owned range of positions in `data`; `update` must write
  // target[begin, end). The owners' ranges of `target` then travel to
  // every rank: on return `target` is the same everywhere, while `data`
  // holds the sums only on this rank's owned ranges. With
  // native_allreduce every rank owns everything (update(0, size) after an
  // MPI_Allreduce). `target` must be as long as `data`.
  absl::Status AllReduceShardedUpdate(absl::Span<float> data, absl::Span<float> target,
                                      const std::function<void(int64_t, int64_t)>& update,
                                      int64_t element_offset = 0);
  // Where the transport allows (every rank on this host: the
  // GroupMemoryTransport capability), maps every rank's flat parameters and gradients
  // (`floats` each) into the others' memory and returns this rank's two
  // buffers; an AllReduceShardedUpdate on exactly these buffers then runs
  // one-sided (collective/shared_step.h) — no message, no copy of the
  // gradients; the owner streams its updated parameters to a published
  // copy and the others copy them from there — with bitwise the ring's
  // results.
  // UNIMPLEMENTED (breaking nothing) where the transport cannot; every
  // rank calls it or none. The buffers live as long as the communicator.
  struct StepBuffers {
    absl::Span<float> parameters;
    absl::Span<float> gradients;
  };
  absl::StatusOr<StepBuffers> MapStepBuffers(int64_t floats);
  // Every rank receives the owners' values of `data` — the all-gather half
  // of AllReduceShardedUpdate alone, for state that each owner updated
  // only on its ranges (before a checkpoint, say).
  absl::Status GatherFromOwners(absl::Span<float> data, int64_t element_offset = 0);
  absl::Status Broadcast(absl::Span<float> data, int root);
  absl::Status AllGather(absl::Span<const float> input, absl::Span<float> output);
  absl::Status Barrier();

  // May come from another thread: gives up on the group (Transport::Abort,
  // which every backend allows from another thread) — the pending
  // operation, or the next, fails with `reason` and the peers are told, as
  // for any failure. For cancelling a job whose rank may be blocked.
  void Interrupt(const absl::Status& reason) { transport_->Abort(reason); }

  Transport& transport() { return *transport_; }

 private:
  template <typename Op>
  absl::Status Run(const char* name, Op op);

  std::unique_ptr<Transport> transport_;
  CommunicatorOptions options_;
  std::unique_ptr<SharedStepMemory> step_memory_;  // its memory is the transport's
  uint32_t step_sequence_ = 0;
  uint64_t op_sequence_ = 0;
  absl::Status broken_;
  std::vector<int> lost_ranks_;
};

}  // namespace nightshift::collective

#endif  // NIGHTSHIFT_COLLECTIVE_COMMUNICATOR_H_
