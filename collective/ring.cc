#include "collective/ring.h"

#include <cstring>
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

// One message: pieces of one segment, sent as their concatenation.
struct Message {
  std::vector<Piece> pieces;
  int64_t elements = 0;
};

// Calls fn(bytes, count) for consecutive runs of whole `element_size`-byte
// elements in `parts`; an element split between two parts (network buffers
// split anywhere) is assembled in a small buffer first.
template <typename Fn>
void ForEachElementRun(absl::Span<const absl::string_view> parts, size_t element_size, Fn fn) {
  char carry[8];
  size_t carried = 0;
  for (absl::string_view part : parts) {
    const char* b = part.data();
    size_t n = part.size();
    if (carried > 0) {
      const size_t take = std::min(element_size - carried, n);
      std::memcpy(carry + carried, b, take);
      carried += take;
      b += take;
      n -= take;
      if (carried == element_size) {
        fn(carry, int64_t{1});
        carried = 0;
      }
    }
    const size_t whole = n / element_size;
    if (whole > 0) fn(b, static_cast<int64_t>(whole));
    b += whole * element_size;
    n -= whole * element_size;
    if (n > 0) {
      std::memcpy(carry, b, n);
      carried = n;
    }
  }
}

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

  absl::Status Send(const Message& m) {
    parts_.clear();
    if (wire_ == WireDtype::kFloat32) {
      for (const Piece& p : m.pieces) {
        parts_.emplace_back(reinterpret_cast<const char*>(p.data), p.size * sizeof(float));
      }
    } else {
      staging_.resize(WireBytes(wire_, m.elements));
      char* out = staging_.data();
      for (const Piece& p : m.pieces) {
        EncodeToWire(wire_, p.data, p.size, out);
        out += WireBytes(wire_, p.size);
      }
      parts_.emplace_back(staging_);
    }
    return t_.Send(succ_, Tag(sent_++), parts_, ctx_.deadline);
  }

  absl::Status Send(const float* data, int64_t n) {
    Message m;
    m.pieces.push_back({const_cast<float*>(data), n});
    m.elements = n;
    return Send(m);
  }

  // Receives a message and reduces (or copies) it into its pieces, straight
  // from the transport's buffers.
  absl::Status Recv(const Message& m, ReduceOp op, bool reduce) {
    if (!reduce && wire_ == WireDtype::kFloat32) {  // a copy: let the transport land it there
      into_.clear();
      for (const Piece& p : m.pieces) {
        into_.emplace_back(reinterpret_cast<char*>(p.data), p.size * sizeof(float));
      }
      return t_.RecvInto(pred_, Tag(received_++), into_, ctx_.deadline);
    }
    const size_t element_size = WireBytes(wire_, 1);
    return t_.RecvWith(pred_, Tag(received_++), WireBytes(wire_, m.elements), ctx_.deadline,
                       [&](absl::Span<const absl::string_view> parts) {
                         size_t piece = 0;
                         int64_t done_in_piece = 0;
                         ForEachElementRun(
                             parts, element_size, [&](const char* bytes, int64_t count) {
                               while (count > 0) {
                                 const Piece& p = m.pieces[piece];
                                 const int64_t take = std::min(count, p.size - done_in_piece);
                                 float* out = p.data + done_in_piece;
                                 if (reduce) {
                                   DecodeAndReduce(wire_, op, bytes, take, out);
                                 } else {
                                   DecodeFromWire(wire_, bytes, take, out);
                                 }
                                 bytes += take * element_size;
                                 count -= take;
                                 done_in_piece += take;
                                 if (done_in_piece == p.size) {
                                   ++piece;
                                   done_in_piece = 0;
                                 }
                               }
                             });
                       });
  }

  absl::Status RecvCopy(float* out, int64_t n) {
    Message m;
    m.pieces.push_back({out, n});
    m.elements = n;
    return Recv(m, ReduceOp::kSum, /*reduce=*/false);
  }

  absl::Status Flush() { return t_.Flush(ctx_.deadline); }

 private:
  uint64_t Tag(uint64_t index) const { return (ctx_.op_sequence << 32) | index; }

  const RingContext& ctx_;
  Transport& t_;
  const int succ_, pred_;
  const WireDtype wire_;
  uint64_t sent_ = 0, received_ = 0;
  std::vector<absl::string_view> parts_;
  std::vector<absl::Span<char>> into_;
  std::string staging_;
};

// Cuts [0, size) at multiples of kRingChunkElements in the index space
// that starts at `offset`, files each piece under segment (chunk mod n),
// and packs each segment's pieces, in order, into messages of at most
// kRingMessageElements.
std::vector<std::vector<Message>> Segments(float* data, int64_t size, int64_t offset, int n) {
  std::vector<std::vector<Message>> segments(n);
  for (int64_t pos = 0; pos < size;) {
    const int64_t chunk = (offset + pos) / kRingChunkElements;
    const int64_t end = std::min(size, (chunk + 1) * kRingChunkElements - offset);
    std::vector<Message>& seg = segments[chunk % n];
    if (seg.empty() || seg.back().elements + (end - pos) > kRingMessageElements) {
      seg.emplace_back();
    }
    seg.back().pieces.push_back({data + pos, end - pos});
    seg.back().elements += end - pos;
    pos = end;
  }
  return segments;
}

// The same pieces, in `to` (as long as `from`) instead of `from`.
Message Translate(const Message& m, const float* from, float* to) {
  Message out = m;
  for (Piece& p : out.pieces) p.data = to + (p.data - from);
  return out;
}

}  // namespace

absl::Status RingAllReduce(const RingContext& ctx, absl::Span<float> data,
                           const RingAllReduceOptions& options) {
  const int n = ctx.transport->size();
  const bool sharded = static_cast<bool>(options.update_owned);
  if (sharded && (options.gather.size() != data.size() || options.op != ReduceOp::kSum ||
                  options.wire != WireDtype::kFloat32)) {
    return absl::InvalidArgumentError(
        "a sharded update needs a sum over a float32 wire and a gather buffer as long as the data");
  }
  if (data.empty()) return absl::OkStatus();
  if (n == 1) {
    if (sharded) options.update_owned(0, static_cast<int64_t>(data.size()));
    return absl::OkStatus();
  }
  const int r = ctx.transport->rank();
  RingLink link(ctx, options.wire);
  const auto segments =
      Segments(data.data(), static_cast<int64_t>(data.size()), options.element_offset, n);
  auto seg = [&](int j) -> const std::vector<Message>& { return segments[((j % n) + n) % n]; };
  // What the all-gather carries of message m: the sums, or the gather
  // buffer's values at the same positions.
  auto gathered = [&](const Message& m) {
    return sharded ? Translate(m, data.data(), options.gather.data()) : m;
  };
  const float inv_n = 1.f / n;

  // 2. Reduce-scatter; 3. as each message of the owned segment becomes
  // final, it starts its all-gather trip at once. This rank's own segment
  // goes out kRingSendWindow messages ahead, then one more per message
  // received: each received message is reduced while it is still in cache
  // rather than after the whole segment piled up in the transport. The
  // successor must see every own message before any forwarded one (the
  // wire order, and so the tags, are those of sending all of it first), so
  // forwards wait in `held` until the own segment is out.
  const std::vector<Message>& own = seg(r);
  size_t own_sent = 0;
  std::vector<Message> held;
  auto send_own = [&](size_t upto) -> absl::Status {
    for (; own_sent < std::min(upto, own.size()); ++own_sent) {
      RETURN_IF_ERROR(link.Send(own[own_sent]));
    }
    if (own_sent < own.size()) return absl::OkStatus();
    for (const Message& h : held) RETURN_IF_ERROR(link.Send(h));
    held.clear();
    return absl::OkStatus();
  };
  auto forward = [&](const Message& m) -> absl::Status {
    if (own_sent < own.size()) {
      held.push_back(m);
      return absl::OkStatus();
    }
    return link.Send(m);
  };
  RETURN_IF_ERROR(send_own(kRingSendWindow));
  for (int s = 0; s < n - 1; ++s) {
    for (const Message& m : seg(r - s - 1)) {
      RETURN_IF_ERROR(link.Recv(m, options.op, /*reduce=*/true));
      RETURN_IF_ERROR(send_own(own_sent + 1));
      if (s < n - 2) {
        RETURN_IF_ERROR(forward(m));
        continue;
      }
      // Segment r+1: final here.
      for (const Piece& p : m.pieces) {
        if (sharded) {
          const int64_t begin = p.data - data.data();
          options.update_owned(begin, begin + p.size);
          continue;
        }
        if (options.op == ReduceOp::kAverage) {
          for (int64_t i = 0; i < p.size; ++i) p.data[i] *= inv_n;
        }
        RoundToWire(options.wire, p.data, p.size);
      }
      RETURN_IF_ERROR(forward(gathered(m)));
    }
  }
  RETURN_IF_ERROR(send_own(own.size()));  // a segment longer than what came in
  // 4. All-gather of the other segments.
  for (int s = 0; s < n - 1; ++s) {
    for (const Message& m : seg(r - s)) {
      const Message g = gathered(m);
      RETURN_IF_ERROR(link.Recv(g, options.op, /*reduce=*/false));
      if (s < n - 2) RETURN_IF_ERROR(link.Send(g));
    }
  }
  return link.Flush();
}

absl::Status RingGatherFromOwners(const RingContext& ctx, absl::Span<float> data,
                                  int64_t element_offset) {
  const int n = ctx.transport->size();
  if (n == 1 || data.empty()) return absl::OkStatus();
  const int r = ctx.transport->rank();
  RingLink link(ctx, WireDtype::kFloat32);
  const auto segments = Segments(data.data(), static_cast<int64_t>(data.size()), element_offset, n);
  auto seg = [&](int j) -> const std::vector<Message>& { return segments[((j % n) + n) % n]; };
  for (const Message& m : seg(OwnedSegment(r, n))) RETURN_IF_ERROR(link.Send(m));
  for (int s = 0; s < n - 1; ++s) {
    for (const Message& m : seg(r - s)) {
      RETURN_IF_ERROR(link.Recv(m, ReduceOp::kSum, /*reduce=*/false));
      if (s < n - 2) RETURN_IF_ERROR(link.Send(m));
    }
  }
  return link.Flush();
}

absl::Status RingBroadcast(const RingContext& ctx, absl::Span<float> data, int root) {
  const int n = ctx.transport->size();
  if (root < 0 || root >= n) {
    return absl::InvalidArgumentError(
        absl::StrCat("broadcast root ", root, " is not a rank of a group of ", n));
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
    return absl::InvalidArgumentError(absl::StrCat("all-gather output has ", output.size(),
                                                   " elements, needs ", n, " × ", count));
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
