// The one-sided sharded update: AllReduceShardedUpdate for a group whose
// ranks all map one another's parameters and gradients (SharedStepMemory
// below, over the transport's GroupMemory: every rank on one host). Nothing is sent; each rank
// reads what it needs where it lies.
//
// Ownership and summation order are the ring's (collective/ring.h): the
// buffer is cut on the kRingChunkElements grid, chunk q belongs to segment
// q mod n, rank r owns segment r+1, and a segment's sum starts at the rank
// of its number and adds the others around the ring — so the results are
// bit for bit those of the ring, and GatherFromOwners over the ring fits
// this ownership.
//
// Step number `seq` (the caller counts; the same on every rank):
//  1. This rank's gradients of `seq` are complete: publish
//     kGradientsReady = seq.
//  2. Wait until every peer has published kGradientsReady ≥ seq.
//  3. For each owned chunk: the sum of all ranks' gradients there goes into
//     this rank's gradients, then update(begin, end), which writes this
//     rank's parameters there, then the chunk's new parameters are
//     streamed (non-temporal stores) into this rank's published
//     parameters.
//  4. Publish kParametersReady = seq (after a store fence).
//  5. For each peer: wait for its kParametersReady ≥ seq, then copy its
//     owned chunks of published parameters into this rank's parameters.
// Reuse is safe without more signals: a rank rewrites its gradients (next
// backward) only after step 5, by which time every peer has passed its
// step 3 of `seq` (the last read of them); it rewrites its published
// parameters only in step 3 of seq+1, after every peer's kGradientsReady =
// seq+1, which each publishes after its step 5 of `seq` (the last read of
// them). A peer that dies or gives up fails the wait naming it
// (SharedStepMemory).
//
// Why a published copy: peers never read the parameters a rank trains
// with, so the lines its update writes stay in its own cache alone. When
// peers copied straight from them, every store of the next update first
// had to take the line back from the peers' caches, a cross-core round
// trip each (~140 to ~700 ns on this project's 2-vCPU VM, depending on
// where the hypervisor placed the vCPUs); streaming stores go to memory
// without asking for the line. Measured with bench/shared_step_bench: 2
// ranks 15–20% faster when the two vCPUs are far apart (bench/README.md,
// issue 12 target 3). The price is one more parameter vector per rank.
#ifndef NIGHTSHIFT_COLLECTIVE_SHARED_STEP_H_
#define NIGHTSHIFT_COLLECTIVE_SHARED_STEP_H_

#include <cstdint>
#include <functional>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "collective/transport/group_memory.h"

namespace nightshift::collective {

// The group's step memory in training words: rank r's region of the
// transport's GroupMemory holds its flat parameters, then its flat
// gradients, then its published parameters (each 64-byte aligned),
// `floats` each; counter kGradientsReady and kParametersReady are the two
// step counters of the protocol above.
class SharedStepMemory {
 public:
  enum Counter { kGradientsReady = 0, kParametersReady = 1 };
  static_assert(GroupMemory::kCounters >= 2);

  // What each rank's region must hold for `floats` of each.
  static size_t BytesPerRank(int64_t floats) { return 3 * VectorBytes(floats); }

  // `memory` (regions of at least BytesPerRank(floats)) must outlive this.
  SharedStepMemory(GroupMemory* memory, int64_t floats) : memory_(memory), floats_(floats) {}

  int64_t floats() const { return floats_; }
  float* parameters(int rank) { return reinterpret_cast<float*>(memory_->region(rank)); }
  float* gradients(int rank) {
    return reinterpret_cast<float*>(memory_->region(rank) + VectorBytes(floats_));
  }
  // Valid in the rank's owned chunks only, between its steps 4 and 3.
  float* published_parameters(int rank) {
    return reinterpret_cast<float*>(memory_->region(rank) + 2 * VectorBytes(floats_));
  }
  void Publish(Counter counter, uint32_t value) { memory_->Publish(counter, value); }
  absl::Status Await(int peer, Counter counter, uint32_t value, absl::Time deadline) {
    return memory_->Await(peer, counter, value, deadline);
  }

 private:
  static size_t VectorBytes(int64_t floats) {
    return (static_cast<size_t>(floats) * sizeof(float) + 63) & ~size_t{63};
  }
  GroupMemory* memory_;
  const int64_t floats_;
};

absl::Status SharedStepUpdate(SharedStepMemory& memory, int rank, int size, uint32_t seq,
                              const std::function<void(int64_t begin, int64_t end)>& update,
                              absl::Time deadline);

}  // namespace nightshift::collective

#endif  // NIGHTSHIFT_COLLECTIVE_SHARED_STEP_H_
