// TensorFusion: all-reduces many tensors with few operations by packing
// consecutive small tensors into a fusion buffer (as Horovod does), so
// that small tensors do not each pay a full ring's latency.
//
// The tensors are laid end to end in one element index space (tensor k
// starts where tensor k−1 ends) and every all-reduce is given its offset in
// it, so results are bitwise identical to reducing each tensor on its own
// — fusion changes the number of messages, never the arithmetic
// (collective/ring.h explains why). Tensors of at least the threshold are
// reduced in place, without a copy.
//
// Not thread-safe; keep one per training loop to reuse the buffer.
#ifndef NIGHTSHIFT_COLLECTIVE_FUSION_H_
#define NIGHTSHIFT_COLLECTIVE_FUSION_H_

#include <cstdint>
#include <vector>

#include "absl/types/span.h"
#include "collective/communicator.h"

namespace nightshift::collective {

// Chosen by measurement (bench/README.md, "fusion"): past 1 MiB a fused
// all-reduce over gRPC is bandwidth-bound, so bigger buffers only add
// copies and delay.
inline constexpr int64_t kDefaultFusionThresholdBytes = 1 << 20;

class TensorFusion {
 public:
  // threshold_bytes = 0 disables fusion: one operation per tensor.
  explicit TensorFusion(int64_t threshold_bytes = kDefaultFusionThresholdBytes)
      : threshold_bytes_(threshold_bytes) {}

  // All ranks must pass tensors of the same sizes in the same order.
  absl::Status AllReduce(Communicator& comm, absl::Span<const absl::Span<float>> tensors,
                         ReduceOp op = ReduceOp::kSum, WireDtype wire = WireDtype::kFloat32);

  // Operations issued by the last AllReduce (for tests and benchmarks).
  int64_t last_operation_count() const { return last_operation_count_; }

 private:
  int64_t threshold_bytes_;
  std::vector<float> buffer_;
  int64_t last_operation_count_ = 0;
};

}  // namespace nightshift::collective

#endif  // NIGHTSHIFT_COLLECTIVE_FUSION_H_
