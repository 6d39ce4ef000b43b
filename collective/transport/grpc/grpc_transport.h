// GrpcTransport: the Transport between data-center workers, over the Peer
// service (collective/transport/grpc/peer_service.h).
//
// Receiving: this process's PeerService files incoming chunks of the group
// into an Inbox; Recv pops from it. Sending: one long-lived client stream
// per destination rank, opened on first use; Send copies the bytes into a
// PeerChunk, queues it on that stream and returns, blocking only while more
// than kMaxQueuedBytes wait to be written (flow control from a slow or
// stalled receiver), and never past the deadline. A stream that fails
// (peer died, stale generation refused) fails every later Send to it with
// the peer's rank named. Flush has nothing to wait for: bytes are copied.
//
// One thread at a time calls Send/Recv; Abort from any thread. The
// PeerService must outlive the transport.
#ifndef NIGHTSHIFT_COLLECTIVE_TRANSPORT_GRPC_GRPC_TRANSPORT_H_
#define NIGHTSHIFT_COLLECTIVE_TRANSPORT_GRPC_GRPC_TRANSPORT_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "collective/transport/grpc/peer_service.h"
#include "collective/transport/transport.h"

namespace nightshift::collective {

// Who is in the group: handed out by the coordinator (or a test).
struct GrpcGroup {
  std::string job_id;
  int64_t generation = 0;
  int rank = 0;
  std::vector<std::string> peer_addresses;  // Peer service of each rank
};

class OutStream;

class GrpcTransport final : public Transport {
 public:
  static constexpr size_t kMaxQueuedBytes = 8 << 20;

  static absl::StatusOr<std::unique_ptr<GrpcTransport>> Create(PeerService* service,
                                                               GrpcGroup group);
  ~GrpcTransport() override;

  int rank() const override { return group_.rank; }
  int size() const override { return static_cast<int>(group_.peer_addresses.size()); }
  absl::Status Send(int to, uint64_t tag, absl::string_view data,
                    absl::Time deadline) override;
  absl::Status RecvWith(int from, uint64_t tag, size_t expected_bytes, absl::Time deadline,
                        const std::function<void(absl::string_view)>& consume) override;
  absl::Status Flush(absl::Time) override { return absl::OkStatus(); }
  void Abort(const absl::Status& reason) override;

 private:
  GrpcTransport(PeerService* service, GrpcGroup group, std::shared_ptr<Inbox> inbox);

  PeerService* service_;
  GrpcGroup group_;
  std::shared_ptr<Inbox> inbox_;
  std::vector<std::unique_ptr<OutStream>> out_;  // by destination rank
};

}  // namespace nightshift::collective

#endif  // NIGHTSHIFT_COLLECTIVE_TRANSPORT_GRPC_GRPC_TRANSPORT_H_
