#include "collective/communicator.h"

#include "absl/strings/str_cat.h"
#include "collective/ring.h"

namespace nightshift::collective {

Communicator::Communicator(std::unique_ptr<Transport> transport,
                           CommunicatorOptions options)
    : transport_(std::move(transport)),
      options_(std::move(options)),
      clock_(options_.clock ? options_.clock : &real_clock_) {}

template <typename Op>
absl::Status Communicator::Run(const char* name, Op op) {
  if (!broken_.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "communicator of job '", options_.job_id, "' generation ", options_.generation,
        " is broken (", broken_.message(), "); rebuild the group with a new generation"));
  }
  RingContext ctx{transport_.get(), op_sequence_++, clock_->Now() + options_.timeout};
  absl::Status s = op(ctx);
  if (!s.ok() && s.code() != absl::StatusCode::kInvalidArgument) {
    broken_ = absl::Status(s.code(), absl::StrCat(name, " on rank ", rank(), " of job '",
                                                  options_.job_id, "' generation ",
                                                  options_.generation, ": ", s.message()));
    transport_->Abort(broken_);
    return broken_;
  }
  return s;
}

absl::Status Communicator::AllReduce(absl::Span<float> data,
                                     const AllReduceOptions& options) {
  return Run("all-reduce", [&](const RingContext& ctx) {
    return RingAllReduce(ctx, data, {options.op, options.wire, options.element_offset});
  });
}

absl::Status Communicator::Broadcast(absl::Span<float> data, int root) {
  if (root < 0 || root >= size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("broadcast root ", root, " is not a rank of a group of ", size()));
  }
  return Run("broadcast",
             [&](const RingContext& ctx) { return RingBroadcast(ctx, data, root); });
}

absl::Status Communicator::AllGather(absl::Span<const float> input,
                                     absl::Span<float> output) {
  if (output.size() != input.size() * size()) {
    return absl::InvalidArgumentError(absl::StrCat("all-gather output has ", output.size(),
                                                   " elements, needs ", size(), " × ",
                                                   input.size()));
  }
  return Run("all-gather",
             [&](const RingContext& ctx) { return RingAllGather(ctx, input, output); });
}

absl::Status Communicator::Barrier() {
  float token = 0;
  return Run("barrier", [&](const RingContext& ctx) {
    return RingAllReduce(ctx, absl::MakeSpan(&token, 1), {});
  });
}

}  // namespace nightshift::collective
