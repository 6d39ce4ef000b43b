// Transport: ordered point-to-point byte messages among the ranks of one
// group — the only thing collective algorithms know of the network.
//
// Pairing: messages from one sender to one receiver arrive in the order
// they were sent. Each carries a 64-bit tag; the receiver names the tag it
// expects, and a different tag at the head of the queue is a protocol error
// (INTERNAL), never silently reordered. Algorithms use (op sequence,
// message index) tags, so both sides always agree.
//
// Buffers: a message is given as parts, which Send gathers (one copy)
// before it returns; the caller may reuse them at once. Flush waits until
// the transport has handed every sent message on, bounding its memory.
//
// Deadlines: every call takes an absolute deadline. A peer that does not
// deliver in time gives DEADLINE_EXCEEDED; a peer whose connection broke
// gives UNAVAILABLE; both name the peer's rank. After any failure the
// transport may be unusable: the communicator above is rebuilt with a new
// generation (collective/FAILURE_POLICY.md).
//
// Threads: one thread at a time calls every method (the communicator's
// caller), except Abort, which may also come from another thread while a
// call is blocked: the blocked call then fails with the reason (how a
// worker cancels a job stuck waiting for a peer that never came).
//
// Bytes only: a Transport knows ranks, tags, byte ranges and deadlines,
// nothing of what the bytes mean. What some backends can do beyond moving
// bytes is an optional capability the communicator asks for
// (transport/native_allreduce.h, transport/group_memory.h); backends are
// composed per peer by transport/routing_transport.h.
#ifndef NIGHTSHIFT_COLLECTIVE_TRANSPORT_TRANSPORT_H_
#define NIGHTSHIFT_COLLECTIVE_TRANSPORT_TRANSPORT_H_

#include <algorithm>
#include <cstdint>
#include <functional>
#include <set>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"

namespace nightshift::collective {

class Transport {
 public:
  virtual ~Transport() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;

  // Sends the concatenation of `parts` as one message.
  virtual absl::Status Send(int to, uint64_t tag, absl::Span<const absl::string_view> parts,
                            absl::Time deadline) = 0;
  absl::Status Send(int to, uint64_t tag, absl::string_view data, absl::Time deadline) {
    return Send(to, tag, absl::MakeConstSpan(&data, 1), deadline);
  }
  // Receives the next message from `from`, which must carry `tag` and be
  // exactly `expected_bytes` long, and hands its bytes to `consume` where
  // they landed, without copying them first: the ring adds received
  // partial sums straight from the wire buffers. The bytes come as one or
  // more parts (network buffers) that may split anywhere, even inside an
  // element. `consume` runs on the calling thread.
  using ConsumeParts = std::function<void(absl::Span<const absl::string_view> parts)>;
  virtual absl::Status RecvWith(int from, uint64_t tag, size_t expected_bytes, absl::Time deadline,
                                const ConsumeParts& consume) = 0;
  // Returns once every sent buffer may be reused.
  virtual absl::Status Flush(absl::Time deadline) = 0;

  // Gives up on the group: pending and later calls here fail with
  // `reason`, and every peer is told (best effort), which fails their
  // pending calls too and lets them see who is still there.
  virtual void Abort(const absl::Status& reason) = 0;
  // Waits until `count` peers have given up (their Abort reached this rank)
  // or `deadline`; returns the ranks heard from.
  virtual std::set<int> AwaitAborts(int count, absl::Time deadline) = 0;

  // Receives the next message from `from`, which must carry `tag` and be
  // exactly as long as the pieces of `into` together, into those pieces in
  // order. A backend that can read it there straight from the network does
  // (data sockets); by default it is RecvWith and a copy.
  virtual absl::Status RecvInto(int from, uint64_t tag, absl::Span<const absl::Span<char>> into,
                                absl::Time deadline) {
    size_t bytes = 0;
    for (absl::Span<char> piece : into) bytes += piece.size();
    return RecvWith(from, tag, bytes, deadline, [into](absl::Span<const absl::string_view> parts) {
      size_t piece = 0, at = 0;
      for (absl::string_view part : parts) {
        while (!part.empty()) {
          const size_t take = std::min(part.size(), into[piece].size() - at);
          std::copy(part.begin(), part.begin() + take, into[piece].data() + at);
          part.remove_prefix(take);
          at += take;
          if (at == into[piece].size()) {
            ++piece;
            at = 0;
          }
        }
      }
    });
  }

  // RecvInto one buffer (expected size out.size()).
  absl::Status Recv(int from, uint64_t tag, absl::Span<char> out, absl::Time deadline) {
    return RecvInto(from, tag, absl::MakeConstSpan(&out, 1), deadline);
  }
};

}  // namespace nightshift::collective

#endif  // NIGHTSHIFT_COLLECTIVE_TRANSPORT_TRANSPORT_H_
