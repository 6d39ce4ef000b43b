// PeerService: the gRPC `nightshift.v1.Peer` service of a data-center
// worker, receiving all-reduce traffic for every group this process is in.
//
// Protocol (proto/nightshift/v1/peer.proto): a sender opens one long-lived
// `Stream` to each peer it sends to and writes PeerChunks; every chunk
// carries job id, generation, source rank and tag, and the payload as raw
// little-endian bytes. The service files each payload into the Inbox of
// (job, generation). It refuses, with FAILED_PRECONDITION, a stream whose
// generation is older than the newest this process has opened for that
// job — traffic of a group that was rebuilt — and a stream that switches
// job or generation midway. Chunks for a generation not yet opened here
// are kept, so ranks may start in any order.
//
// Thread-safe. Callback API: reactions never block.
#ifndef NIGHTSHIFT_COLLECTIVE_TRANSPORT_GRPC_PEER_SERVICE_H_
#define NIGHTSHIFT_COLLECTIVE_TRANSPORT_GRPC_PEER_SERVICE_H_

#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "nightshift/v1/peer.grpc.pb.h"

namespace nightshift::collective {

class Inbox;  // internal: inbox.h

// The Stream method is served raw (ByteBuffers) so that payloads stay in
// gRPC's receive buffers; peer_chunk_codec.h reads the PeerChunk format.
class PeerService final : public v1::Peer::WithRawCallbackMethod_Stream<v1::Peer::Service> {
 public:
  // The inbox of this process's rank in (job, generation). Opening a newer
  // generation drops older inboxes of the job; opening an older one than
  // the newest is FAILED_PRECONDITION.
  absl::StatusOr<std::shared_ptr<Inbox>> OpenGroup(const std::string& job_id, int64_t generation);
  void CloseGroup(const std::string& job_id, int64_t generation);

  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* Stream(
      grpc::CallbackServerContext* context) override;

  // For a stream's first chunk: the inbox to file into, or why not.
  absl::StatusOr<std::shared_ptr<Inbox>> InboxFor(const std::string& job_id, int64_t generation);

 private:
  struct Job {
    int64_t newest_opened = -1;
    std::map<int64_t, std::shared_ptr<Inbox>> inboxes;
  };
  absl::Mutex mu_;
  std::map<std::string, Job> jobs_ ABSL_GUARDED_BY(mu_);
};

}  // namespace nightshift::collective

#endif  // NIGHTSHIFT_COLLECTIVE_TRANSPORT_GRPC_PEER_SERVICE_H_
