// GrpcTransport: the Transport between data-center workers, over the Peer
// service (collective/transport/grpc/peer_service.h).
//
// Receiving: this process's PeerService files incoming chunks of the group
// into an Inbox; Recv pops from it. Sending: one long-lived client stream
// per destination rank, opened on first use. Send gathers the bytes once
// into a recycled buffer that gRPC sends without another copy (the
// PeerChunk wire format is written by hand around the payload), queues it
// on that stream and returns, blocking only while more
// than kMaxQueuedBytes wait to be written (flow control from a slow or
// stalled receiver), and never past the deadline. A stream that fails
// (peer died, stale generation refused) fails every later Send to it with
// the peer's rank named. Flush has nothing to wait for: bytes are copied.
//
// Abort tells every peer why (an abort chunk), so their pending
// operations fail at once with the original cause rather than at their
// deadline. Connect and PeerHealth let a routing transport use these
// streams as the control channel of peers it reaches another way (shared
// memory): their abort notices, and whether they are still there.
// One thread at a time calls Send/Recv/Connect; Abort (which wakes a
// blocked Send or Recv), PeerHealth and TEST_DropConnections may come
// from any thread. The PeerService must
// outlive the transport.
#ifndef NIGHTSHIFT_COLLECTIVE_TRANSPORT_GRPC_GRPC_TRANSPORT_H_
#define NIGHTSHIFT_COLLECTIVE_TRANSPORT_GRPC_GRPC_TRANSPORT_H_

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "collective/transport/grpc/peer_service.h"
#include "collective/transport/membership.h"
#include "collective/transport/transport.h"

namespace nightshift::collective {

class BufferPool;
class Inbox;
class OutStream;

class GrpcTransport final : public Transport {
 public:
  static constexpr size_t kMaxQueuedBytes = 8 << 20;

  static absl::StatusOr<std::unique_ptr<GrpcTransport>> Create(PeerService* service,
                                                               GroupMembership group);
  ~GrpcTransport() override;

  using Transport::Send;
  int rank() const override { return group_.rank; }
  int size() const override { return static_cast<int>(group_.peer_addresses.size()); }
  absl::Status Send(int to, uint64_t tag, absl::Span<const absl::string_view> parts,
                    absl::Time deadline) override;
  absl::Status RecvWith(int from, uint64_t tag, size_t expected_bytes, absl::Time deadline,
                        const ConsumeParts& consume) override;
  absl::Status Flush(absl::Time deadline) override;
  void Abort(const absl::Status& reason) override;
  std::set<int> AwaitAborts(int count, absl::Time deadline) override;
  // Tests only: drops every connection without a word, as a crashed
  // process would.
  void TEST_DropConnections(const absl::Status& reason);
  // Opens the stream to `peer` (an empty hello chunk), so that from now on
  // this process's death shows on the peer's side and the peer's on ours.
  absl::Status Connect(int peer, absl::Time deadline);
  // OK while `peer` is alive and has not given up (its abort notice has not
  // come, and our stream to it, if open, stands).
  absl::Status PeerHealth(int peer);
  // OK until the group is aborted, here or by any peer's notice.
  absl::Status GroupAborted();

 private:
  GrpcTransport(PeerService* service, GroupMembership group, std::shared_ptr<Inbox> inbox);
  v1::PeerChunk Header(uint64_t tag) const;
  OutStream& StreamTo(int rank);

  PeerService* service_;
  GroupMembership group_;
  std::shared_ptr<Inbox> inbox_;
  std::shared_ptr<BufferPool> send_buffers_;
  absl::Mutex out_mu_;  // guards the vector; each stream is thread-safe
  std::vector<std::unique_ptr<OutStream>> out_ ABSL_GUARDED_BY(out_mu_);  // by destination rank
  std::atomic<bool> cancelled_{false};
};

}  // namespace nightshift::collective

#endif  // NIGHTSHIFT_COLLECTIVE_TRANSPORT_GRPC_GRPC_TRANSPORT_H_
