#include "collective/ring.h"

#include <deque>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"

namespace nightshift::collective {
namespace {

struct Piece {
  float* data;
  int64_t size;
};

// Sends and receives the messages of one operation around the ring,
// numbering them so both ends agree on every tag.
class RingLink {
 public:
  RingLink(const RingContext& ctx, WireDtype wire)
      : ctx_(ctx),
        t_(*ctx.transport),
        succ_((t_.rank() + 1) % t_.size()),
        pred_((t_.rank() + t_.size() - 1) % t_.size()),
        wire_(wire) {}

  absl::Status Send(const float* data, int64_t n) {
    const char* bytes = reinterpret_cast<const char*>(data);
    if (wire_ != WireDtype::kFloat32) {
      // Encoded copies live until Flush: the transport may send in place.
      staging_.emplace_back(WireBytes(wire_, n), '\0');
      EncodeToWire(wire_, data, n, staging_.back().data());
      bytes = staging_.back().data();
    }
    return t_.Send(succ_, Tag(sent_++), absl::string_view(bytes, WireBytes(wire_, n)),
                   ctx_.deadline);
  }

  absl::Status RecvReduce(ReduceOp op, float* acc, int64_t n) {
    return t_.RecvWith(pred_, Tag(received_++), WireBytes(wire_, n), ctx_.deadline,
                       [&](absl::string_view b) { DecodeAndReduce(wire_, op, b.data(), n, acc); });
  }

  absl::Status RecvCopy(float* out, int64_t n) {
    return t_.RecvWith(pred_, Tag(received_++), WireBytes(wire_, n), ctx_.deadline,
                       [&](absl::string_view b) { DecodeFromWire(wire_, b.data(), n, out); });
  }

  absl::Status Flush() {
    absl::Status s = t_.Flush(ctx_.deadline);
    staging_.clear();
    return s;
  }

  int rank() const { return t_.rank(); }
  int size() const { return t_.size(); }

 private:
  uint64_t Tag(uint64_t index) const { return (ctx_.op_sequence << 32) | index; }

  const RingContext& ctx_;
  Transport& t_;
  const int succ_, pred_;
  const WireDtype wire_;
  uint64_t sent_ = 0, received_ = 0;
  std::deque<std::string> staging_;
};

// Pieces of [0, size) cut at multiples of `grid` in the index space that
// starts at `offset`, sorted into `segments` by chunk index mod n.
std::vector<std::vector<Piece>> Segments(float* data, int64_t size, int64_t offset,
                                         int64_t grid, int n) {
  std::vector<std::vector<Piece>> segments(n);
  for (int64_t pos = 0; pos < size;) {
    const int64_t chunk = (offset + pos) / grid;
    const int64_t end = std::min(size, (chunk + 1) * grid - offset);
    segments[chunk % n].push_back({data + pos, end - pos});
    pos = end;
  }
  return segments;
}

}  // namespace

absl::Status RingAllReduce(const RingContext& ctx, absl::Span<float> data,
                           const RingAllReduceOptions& options) {
  const int n = ctx.transport->size();
  if (n == 1 || data.empty()) return absl::OkStatus();
  const int r = ctx.transport->rank();
  RingLink link(ctx, options.wire);
  const auto segments = Segments(data.data(), static_cast<int64_t>(data.size()),
                                 options.element_offset, kRingChunkElements, n);
  auto seg = [&](int j) -> const std::vector<Piece>& { return segments[((j % n) + n) % n]; };

  // 2. Reduce-scatter.
  for (const Piece& p : seg(r)) RETURN_IF_ERROR(link.Send(p.data, p.size));
  for (int s = 0; s < n - 1; ++s) {
    for (const Piece& p : seg(r - s - 1)) {
      RETURN_IF_ERROR(link.RecvReduce(options.op, p.data, p.size));
      if (s < n - 2) RETURN_IF_ERROR(link.Send(p.data, p.size));
    }
  }
  // 3. The owned segment, final.
  for (const Piece& p : seg(r + 1)) {
    if (options.op == ReduceOp::kAverage) {
      const float inv = 1.f / n;
      for (int64_t i = 0; i < p.size; ++i) p.data[i] *= inv;
    }
    RoundToWire(options.wire, p.data, p.size);
  }
  // The all-gather overwrites segments sent above.
  RETURN_IF_ERROR(link.Flush());
  // 4. All-gather.
  for (const Piece& p : seg(r + 1)) RETURN_IF_ERROR(link.Send(p.data, p.size));
  for (int s = 0; s < n - 1; ++s) {
    for (const Piece& p : seg(r - s)) {
      RETURN_IF_ERROR(link.RecvCopy(p.data, p.size));
      if (s < n - 2) RETURN_IF_ERROR(link.Send(p.data, p.size));
    }
  }
  return link.Flush();
}

absl::Status RingBroadcast(const RingContext& ctx, absl::Span<float> data,
                           int root) {
  const int n = ctx.transport->size();
  if (root < 0 || root >= n) {
    return absl::InvalidArgumentError(absl::StrCat("broadcast root ", root,
                                                   " is not a rank of a group of ", n));
  }
  if (n == 1 || data.empty()) return absl::OkStatus();
  const int r = ctx.transport->rank();
  RingLink link(ctx, WireDtype::kFloat32);
  const bool forward = (r + 1) % n != root;
  for (int64_t pos = 0; pos < static_cast<int64_t>(data.size()); pos += kRingChunkElements) {
    const int64_t len = std::min<int64_t>(kRingChunkElements, data.size() - pos);
    if (r != root) RETURN_IF_ERROR(link.RecvCopy(data.data() + pos, len));
    if (forward) RETURN_IF_ERROR(link.Send(data.data() + pos, len));
  }
  return link.Flush();
}

absl::Status RingAllGather(const RingContext& ctx, absl::Span<const float> input,
                           absl::Span<float> output) {
  const int n = ctx.transport->size();
  const int64_t count = static_cast<int64_t>(input.size());
  if (static_cast<int64_t>(output.size()) != n * count) {
    return absl::InvalidArgumentError(absl::StrCat(
        "all-gather output has ", output.size(), " elements, needs ", n, " × ", count));
  }
  const int r = ctx.transport->rank();
  std::copy(input.begin(), input.end(), output.begin() + r * count);
  if (n == 1 || count == 0) return absl::OkStatus();
  RingLink link(ctx, WireDtype::kFloat32);
  auto block = [&](int j) { return output.data() + ((j % n + n) % n) * count; };
  auto for_chunks = [&](float* base, auto fn) -> absl::Status {
    for (int64_t pos = 0; pos < count; pos += kRingChunkElements) {
      RETURN_IF_ERROR(fn(base + pos, std::min<int64_t>(kRingChunkElements, count - pos)));
    }
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(for_chunks(block(r), [&](float* p, int64_t len) { return link.Send(p, len); }));
  for (int s = 0; s < n - 1; ++s) {
    RETURN_IF_ERROR(for_chunks(block(r - s - 1), [&](float* p, int64_t len) {
      RETURN_IF_ERROR(link.RecvCopy(p, len));
      return s < n - 2 ? link.Send(p, len) : absl::OkStatus();
    }));
  }
  return link.Flush();
}

}  // namespace nightshift::collective
