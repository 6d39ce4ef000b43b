// SocketTransport: the Transport for a group's data between ranks on
// different hosts — one plain TCP connection per ordered pair of ranks,
// read and written by the caller's own thread, as Open MPI's TCP transport
// and gloo do. gRPC stays the control channel (transport/routing_transport.h):
// it carries the offers that open these connections, abort notices and
// liveness; only message bytes travel here.
//
// Why: the gRPC streams cost 1.6–2× Open MPI's CPU per byte on the ring,
// spread over hand-offs between gRPC's pollers and the caller, HTTP/2
// framing and a gather copy (bench/README.md, "Where the time goes").
// Here a message goes from the caller's buffer to the kernel in one
// writev when the socket has room, and is read into a buffer the receiver
// hands straight to the reduce — or, for a copy (RecvInto), into the
// caller's buffers themselves.
//
// Opening (protocol):
//  1. Create listens on an ephemeral port and sends each served peer, over
//     the control channel (tag kOfferTag), an offer: the port (uint16 LE)
//     and a 16-byte nonce drawn for that peer. The control channel is
//     authenticated (mutual TLS, the group key), so only that peer learns it.
//  2. Before its first Send to peer j, a rank takes j's offer from the
//     control channel, dials j's host (from its Peer address) at that
//     port, and (ahead of its first message) writes a hello: "NSDATA1\0",
//     its rank (uint32 LE), the nonce j offered it.
//  3. j accepts while it waits in any call, and keeps the connection as
//     its data from that rank only if the rank is one it serves, has no
//     connection yet, and the nonce is the one it offered that rank;
//     anything else is closed unread.
// With `tls` set, every connection is mutual TLS with the worker's own
// certificate (connection.h) before step 2's hello; the nonce still decides
// which rank a connection is from.
// After that each connection carries messages one way: a 16-byte header
// (tag uint64 LE, length uint64 LE), then the payload.
//
// Progress: there is no thread of our own. Send writes the caller's
// buffers straight to the socket (no copy) and returns once all of it is in
// the kernel; while the socket is full it waits like RecvWith does, and
// every wait polls all connections, reading whatever arrives into per-peer
// queues — so two ranks that send to each other at once never wait on each
// other, and a rank that goes off to compute after an operation leaves
// nothing behind for its peers to wait on. Flush has nothing to wait for.
//
// Failure: a connection that ends or fails fails later calls with that
// peer with UNAVAILABLE naming its rank (messages already received are
// still delivered). Every kLivenessCheck a wait asks the control channel:
// `group_aborted` while its connection with the peer stands (a peer's
// abort notice ends the wait with the peer's reason; a peer that is gone
// shows as its connection's end, after the bytes it sent), `liveness`
// while there is none yet. Abort (any thread) fails pending and later
// calls; a Send that fails part-way fails its peer (the stream is cut).
// A connection that has not said hello within kHelloTimeout is closed,
// and when kMaxAccepting wait at once the oldest goes, so idle strangers
// cannot keep a peer out.
//
// Threads: one thread at a time calls the Transport methods; Abort may
// come from any thread.
#ifndef NIGHTSHIFT_COLLECTIVE_TRANSPORT_SOCKET_SOCKET_TRANSPORT_H_
#define NIGHTSHIFT_COLLECTIVE_TRANSPORT_SOCKET_SOCKET_TRANSPORT_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "collective/transport/peer_liveness.h"
#include "collective/transport/socket/connection.h"
#include "collective/transport/transport.h"

namespace nightshift::collective {

struct SocketGroup {
  int rank = 0;
  // Per rank: its Peer service's "host:port"; a data connection dials the
  // host.
  std::vector<std::string> peer_addresses;
  std::vector<bool> served;  // per rank: data goes through here
  // Mutual TLS on every connection with these files; none: plaintext.
  std::optional<DataTlsFiles> tls;
};

class SocketTransport final : public Transport {
 public:
  // The control-channel tag of an offer (step 1 above).
  static constexpr uint64_t kOfferTag = ~uint64_t{0} - 1;
  static constexpr absl::Duration kLivenessCheck = absl::Milliseconds(20);
  static constexpr absl::Duration kHelloTimeout = absl::Seconds(5);
  static constexpr size_t kMaxAccepting = 64;

  // `control` (which must outlive the transport) carries the offers: it is
  // sent each served peer's offer here. `group_aborted`: OK, or why the
  // group was aborted (the control channel's abort notices).
  static absl::StatusOr<std::unique_ptr<SocketTransport>> Create(
      SocketGroup group, Transport* control, PeerLiveness liveness,
      std::function<absl::Status()> group_aborted);
  ~SocketTransport() override;

  using Transport::Send;
  int rank() const override { return group_.rank; }
  int size() const override { return static_cast<int>(group_.peer_addresses.size()); }
  bool uses_tls() const { return tls_ != nullptr; }
  absl::Status Send(int to, uint64_t tag, absl::Span<const absl::string_view> parts,
                    absl::Time deadline) override;
  absl::Status RecvWith(int from, uint64_t tag, size_t expected_bytes, absl::Time deadline,
                        const ConsumeParts& consume) override;
  // Reads the body straight into `into` when the message has not arrived
  // yet (the all-gather's copies: no copy here); else RecvWith's copy.
  absl::Status RecvInto(int from, uint64_t tag, absl::Span<const absl::Span<char>> into,
                        absl::Time deadline) override;
  absl::Status Flush(absl::Time deadline) override;
  void Abort(const absl::Status& reason) override;
  // The served peers whose liveness has failed.
  std::set<int> AwaitAborts(int count, absl::Time deadline) override;
  // Tests only: Abort, and every connection dropped without a word, as a
  // crashed process's would be. Any thread.
  void TEST_DropConnections(const absl::Status& reason);

 private:
  struct Peer;
  struct Buffer;
  struct Accepting;
  SocketTransport(SocketGroup group, Transport* control, PeerLiveness liveness,
                  std::function<absl::Status()> group_aborted);
  absl::Status Served(int peer) const;
  absl::Status Dial(int peer, absl::Time deadline);
  // Moves bytes on every connection until `done()`, or until `focus` (the
  // rank waited for) fails, its liveness fails, or the deadline.
  absl::Status Progress(int focus, absl::Time deadline, const std::function<bool()>& done);
  void ReadFrom(int peer);
  void WriteTo(int peer);
  void AcceptAll();
  void AdvanceAccepting(Accepting& a);
  Buffer TakeBuffer(size_t bytes);
  void GiveBack(Buffer b);
  absl::Status AbortedStatus();
  static absl::Status Named(int peer, const absl::Status& s);

  const SocketGroup group_;
  Transport* const control_;
  const PeerLiveness liveness_;
  const std::function<absl::Status()> group_aborted_;
  absl::Time accept_paused_until_;   // out of file descriptors: retry then
  std::shared_ptr<TlsContext> tls_;  // null: plaintext
  int listen_fd_ = -1;
  int wake_fd_ = -1;                          // eventfd: Abort wakes a poll
  std::vector<std::unique_ptr<Peer>> peers_;  // by rank; null if not served
  std::vector<std::unique_ptr<Accepting>> accepting_;
  std::vector<Buffer> spare_;
  absl::Mutex mu_;
  absl::Status aborted_ ABSL_GUARDED_BY(mu_);
};

}  // namespace nightshift::collective

#endif  // NIGHTSHIFT_COLLECTIVE_TRANSPORT_SOCKET_SOCKET_TRANSPORT_H_
