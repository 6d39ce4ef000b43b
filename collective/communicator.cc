#include "collective/communicator.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "collective/ring.h"
#include "collective/shared_step.h"
#include "collective/transport/group_memory.h"
#include "collective/transport/native_allreduce.h"

namespace nightshift::collective {

Communicator::Communicator(std::unique_ptr<Transport> transport, CommunicatorOptions options)
    : transport_(std::move(transport)), options_(std::move(options)) {}

template <typename Op>
absl::Status Communicator::Run(const char* name, Op op) {
  if (!broken_.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "communicator of job '", options_.job_id, "' generation ", options_.generation,
        " is broken (", broken_.message(), "); rebuild the group with a new generation"));
  }
  RingContext ctx{transport_.get(), op_sequence_++, absl::Now() + options_.timeout};
  absl::Status s = op(ctx);
  if (s.ok() || s.code() == absl::StatusCode::kInvalidArgument) return s;
  // Give up, tell the others, and see who else did: every live rank does
  // the same, so the ranks that stay silent are the ones that stalled or
  // died (a rank waiting on a silent predecessor is only a bystander).
  const std::string where = absl::StrCat(name, " on rank ", rank(), " of job '", options_.job_id,
                                         "' generation ", options_.generation);
  transport_->Abort(absl::Status(s.code(), absl::StrCat(where, ": ", s.message())));
  const std::set<int> heard = transport_->AwaitAborts(size() - 1, absl::Now() + kFailureCensusWait);
  std::vector<int> silent;
  for (int r = 0; r < size(); ++r) {
    if (r != rank() && heard.count(r) == 0) silent.push_back(r);
  }
  std::string blame;
  if (!silent.empty() && (s.code() == absl::StatusCode::kUnavailable ||
                          s.code() == absl::StatusCode::kDeadlineExceeded)) {
    lost_ranks_ = silent;
    blame = absl::StrCat(silent.size() == 1 ? "rank " : "ranks ", absl::StrJoin(silent, ", "),
                         " did not answer; ");
  }
  broken_ =
      absl::Status(s.code(), absl::StrCat(where, ": ", blame, "first error here: ", s.message()));
  return broken_;
}

Communicator::~Communicator() = default;

absl::Status Communicator::AllReduce(absl::Span<float> data, const AllReduceOptions& options) {
  if (options_.native_allreduce) {
    if (options.wire != WireDtype::kFloat32) {
      return absl::InvalidArgumentError("the native all-reduce carries float32 only");
    }
    auto* native = dynamic_cast<NativeAllReduce*>(transport_.get());
    if (native == nullptr) {
      return absl::InvalidArgumentError(
          "native_allreduce: this transport has no all-reduce of its own");
    }
    return Run("native all-reduce", [&](const RingContext& ctx) {
      return data.empty() ? absl::OkStatus() : native->AllReduceInPlace(data, options.op);
    });
  }
  return Run("all-reduce", [&](const RingContext& ctx) {
    return RingAllReduce(ctx, data, {options.op, options.wire, options.element_offset});
  });
}

absl::Status Communicator::AllReduceShardedUpdate(
    absl::Span<float> data, absl::Span<float> target,
    const std::function<void(int64_t, int64_t)>& update, int64_t element_offset) {
  if (target.size() != data.size()) {
    return absl::InvalidArgumentError(absl::StrCat("sharded update: target has ", target.size(),
                                                   " elements, data ", data.size()));
  }
  if (options_.native_allreduce) {
    absl::Status s = AllReduce(data);
    if (s.ok() && !data.empty()) update(0, static_cast<int64_t>(data.size()));
    return s;
  }
  if (step_memory_ != nullptr && element_offset == 0 &&
      data.data() == step_memory_->gradients(rank()) &&
      target.data() == step_memory_->parameters(rank()) &&
      static_cast<int64_t>(data.size()) == step_memory_->floats()) {
    const uint32_t seq = ++step_sequence_;
    return Run("shared-memory sharded update", [&](const RingContext& ctx) {
      return SharedStepUpdate(*step_memory_, rank(), size(), seq, update, ctx.deadline);
    });
  }
  return Run("sharded-update all-reduce", [&](const RingContext& ctx) {
    RingAllReduceOptions ring;
    ring.element_offset = element_offset;
    ring.update_owned = update;
    ring.gather = target;
    return RingAllReduce(ctx, data, ring);
  });
}

absl::StatusOr<Communicator::StepBuffers> Communicator::MapStepBuffers(int64_t floats) {
  auto* mapper = dynamic_cast<GroupMemoryTransport*>(transport_.get());
  if (mapper == nullptr || !mapper->CanMapGroupMemory()) {
    return absl::UnimplementedError("the ranks cannot map one another's memory");
  }
  GroupMemory* memory = nullptr;
  absl::Status s = Run("mapping step memory", [&](const RingContext& ctx) -> absl::Status {
    absl::StatusOr<GroupMemory*> m =
        mapper->MapGroupMemory(SharedStepMemory::BytesPerRank(floats), ctx.deadline);
    if (!m.ok()) return m.status();
    memory = *m;
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  step_memory_ = std::make_unique<SharedStepMemory>(memory, floats);
  const size_t n = static_cast<size_t>(floats);
  return StepBuffers{absl::MakeSpan(step_memory_->parameters(rank()), n),
                     absl::MakeSpan(step_memory_->gradients(rank()), n)};
}

absl::Status Communicator::GatherFromOwners(absl::Span<float> data, int64_t element_offset) {
  if (options_.native_allreduce) return absl::OkStatus();  // every rank owns everything
  return Run("gather from owners", [&](const RingContext& ctx) {
    return RingGatherFromOwners(ctx, data, element_offset);
  });
}

absl::Status Communicator::Broadcast(absl::Span<float> data, int root) {
  if (root < 0 || root >= size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("broadcast root ", root, " is not a rank of a group of ", size()));
  }
  return Run("broadcast", [&](const RingContext& ctx) { return RingBroadcast(ctx, data, root); });
}

absl::Status Communicator::AllGather(absl::Span<const float> input, absl::Span<float> output) {
  if (output.size() != input.size() * size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "all-gather output has ", output.size(), " elements, needs ", size(), " × ", input.size()));
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
