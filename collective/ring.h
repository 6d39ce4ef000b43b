// Ring collectives over a Transport: all-reduce (reduce-scatter then
// all-gather), broadcast and all-gather, chunked and pipelined.
//
// The ring all-reduce, for n ranks, rank r, successor r+1, predecessor r−1:
//  1. The buffer's elements are numbered in a group-wide index space
//     (element i has index element_offset + i) and cut on a fixed grid of
//     kRingChunkElements; chunk q belongs to segment q mod n. A segment is
//     the set of its chunks (block-cyclic), so every rank gets work even
//     for a few-chunk buffer, and an element's summation order depends only
//     on its index and n — which is why reducing tensors one by one or
//     fused into one buffer gives bitwise equal results.
//     A segment's chunks travel in messages of up to kRingMessageElements.
//  2. Reduce-scatter, n−1 steps: at step 0 rank r sends segment r, message
//     by message (a few ahead, then one per message received, so that
//     what arrives is reduced while still in cache); at step s it receives segment r−s−1 from its
//     predecessor, adds each message into its own copy as it arrives and
//     forwards it at once, so messages stream around the ring. At the last
//     step (s = n−2) what it receives is segment r+1, now fully reduced:
//  3. average divides it by n, a compressed wire rounds it once (so every
//     rank ends with identical values), and it leaves at once as the first
//     all-gather step — the all-gather overlaps the reduce-scatter's tail.
//  4. All-gather, n−1 steps: at step s rank r receives segment r−s, stores
//     it and forwards it unless s = n−2.
// Each rank sends 2(n−1)/n of the buffer in total: bandwidth-optimal.
// Sharded update (update_owned set): at step 3 the owner of segment r+1,
// instead of forwarding the sums, calls update_owned on each of its pieces
// — which writes the matching range of `gather` — and the all-gather
// carries `gather` instead of the sums. Rank r thus owns segment r+1; the
// all-gather alone (RingGatherFromOwners) spreads any buffer the owners
// wrote the same way.
// Every message carries tag (op_sequence << 32 | message index), so a
// message from another operation is a protocol error, not a mix-up.
//
// Pure functions of their arguments; the caller (Communicator) serializes
// operations and owns failure handling.
#ifndef NIGHTSHIFT_COLLECTIVE_RING_H_
#define NIGHTSHIFT_COLLECTIVE_RING_H_

#include <cstdint>
#include <functional>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "collective/transport/transport.h"
#include "collective/wire.h"

namespace nightshift::collective {

// 16 Ki floats = 64 KiB: the grid of the index space. Part of the
// results' definition (summation order), so changing it changes bits.
inline constexpr int64_t kRingChunkElements = 16384;
// Messages carry up to 512 KiB of float32 (chosen by measurement,
// bench/README.md); a performance knob only.
inline constexpr int64_t kRingMessageElements = 131072;
// Messages of its own segment a rank sends before it takes its first
// message in (step 2); a performance knob only (bench/README.md).
inline constexpr size_t kRingSendWindow = 4;

// The segment rank r owns: r+1, the one its reduce-scatter finishes (step
// 2). A sharded update, RingGatherFromOwners and the one-sided step
// (shared_step.h) all take each segment's values from its owner.
inline int OwnedSegment(int rank, int size) { return (rank + 1) % size; }

struct RingContext {
  Transport* transport;
  uint64_t op_sequence;  // the same on every rank for the same operation
  absl::Time deadline;
};

struct RingAllReduceOptions {
  ReduceOp op = ReduceOp::kSum;
  WireDtype wire = WireDtype::kFloat32;
  int64_t element_offset = 0;  // index of data[0] in the group's index space
  // Sharded update: called with [begin, end) positions in data of each
  // owned piece once its sum is final; gather (as long as data) is what
  // the all-gather then carries. Only with kSum over a float32 wire.
  std::function<void(int64_t begin, int64_t end)> update_owned;
  absl::Span<float> gather;
};

absl::Status RingAllReduce(const RingContext& ctx, absl::Span<float> data,
                           const RingAllReduceOptions& options);

// The all-gather half alone: every rank ends with each owner's values of
// `data` (rank r owns segment r+1 of the layout above).
absl::Status RingGatherFromOwners(const RingContext& ctx, absl::Span<float> data,
                                  int64_t element_offset);

// Every rank ends with root's `data`.
absl::Status RingBroadcast(const RingContext& ctx, absl::Span<float> data, int root);

// output (size × input.size() elements) receives every rank's input, in
// rank order.
absl::Status RingAllGather(const RingContext& ctx, absl::Span<const float> input,
                           absl::Span<float> output);

}  // namespace nightshift::collective

#endif  // NIGHTSHIFT_COLLECTIVE_RING_H_
