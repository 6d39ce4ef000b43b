#include "collective/fusion.h"

#include <algorithm>

namespace nightshift::collective {

absl::Status TensorFusion::AllReduce(Communicator& comm,
                                     absl::Span<const absl::Span<float>> tensors, ReduceOp op,
                                     WireDtype wire) {
  last_operation_count_ = 0;
  const int64_t threshold = threshold_bytes_ / static_cast<int64_t>(sizeof(float));
  AllReduceOptions options{op, wire, 0};
  int64_t offset = 0;  // index of the next tensor in the group's space
  size_t k = 0;
  while (k < tensors.size()) {
    const int64_t size = static_cast<int64_t>(tensors[k].size());
    if (size >= threshold) {  // large: in place
      options.element_offset = offset;
      ++last_operation_count_;
      if (absl::Status s = comm.AllReduce(tensors[k], options); !s.ok()) return s;
      offset += size;
      ++k;
      continue;
    }
    // Pack consecutive small tensors while they fit.
    size_t end = k;
    int64_t packed = 0;
    while (end < tensors.size() &&
           packed + static_cast<int64_t>(tensors[end].size()) <= threshold &&
           static_cast<int64_t>(tensors[end].size()) < threshold) {
      packed += tensors[end].size();
      ++end;
    }
    buffer_.resize(std::max<size_t>(buffer_.size(), packed));
    float* cursor = buffer_.data();
    for (size_t i = k; i < end; ++i)
      cursor = std::copy(tensors[i].begin(), tensors[i].end(), cursor);
    options.element_offset = offset;
    ++last_operation_count_;
    if (absl::Status s = comm.AllReduce(absl::MakeSpan(buffer_.data(), packed), options); !s.ok()) {
      return s;
    }
    const float* from = buffer_.data();
    for (size_t i = k; i < end; ++i) {
      std::copy(from, from + tensors[i].size(), tensors[i].begin());
      from += tensors[i].size();
    }
    offset += packed;
    k = end;
  }
  return absl::OkStatus();
}

}  // namespace nightshift::collective
