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
// job or generation midway.
//
// Membership: a stream presents its group's key (metadata
// `x-nightshift-group-key`, the coordinator's per-generation secret in
// the assignment); a stream whose key is not the one the group was opened
// with is refused with PERMISSION_DENIED before any of its chunks reaches
// the inbox, so only current members feed a ring. A stream that arrives
// before its group is opened here waits (its first chunk held, nothing
// more read) until the group opens and its key is checked, so ranks may
// start in any order; at most kMaxWaitingStreams wait at once.
//
// Thread-safe. Callback API: reactions never block.
#ifndef NIGHTSHIFT_COLLECTIVE_TRANSPORT_GRPC_PEER_SERVICE_H_
#define NIGHTSHIFT_COLLECTIVE_TRANSPORT_GRPC_PEER_SERVICE_H_

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/security/credentials.h"
#include "nightshift/v1/peer.grpc.pb.h"

namespace nightshift::collective {

class Inbox;  // internal: inbox.h

// The Stream method is served raw (ByteBuffers) so that payloads stay in
// gRPC's receive buffers; peer_chunk_codec.h reads the PeerChunk format.
class PeerService final : public v1::Peer::WithRawCallbackMethod_Stream<v1::Peer::Service> {
 public:
  static constexpr int kMaxWaitingStreams = 256;
  static constexpr char kGroupKeyMetadata[] = "x-nightshift-group-key";

  // `channel_credentials`: what this process's transports dial peers with.
  explicit PeerService(std::shared_ptr<grpc::ChannelCredentials> channel_credentials)
      : channel_credentials_(std::move(channel_credentials)) {}

  // The inbox of this process's rank in (job, generation), whose streams
  // must present `group_key`. Opening a newer generation drops older
  // inboxes of the job; opening an older one than the newest is
  // FAILED_PRECONDITION.
  absl::StatusOr<std::shared_ptr<Inbox>> OpenGroup(const std::string& job_id, int64_t generation,
                                                   const std::string& group_key);
  void CloseGroup(const std::string& job_id, int64_t generation);

  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* Stream(
      grpc::CallbackServerContext* context) override;

  const std::shared_ptr<grpc::ChannelCredentials>& channel_credentials() const {
    return channel_credentials_;
  }

  // A stream's admission, from its first chunk: `admit` gets the inbox to
  // file into, or why not — at once, or when the group opens. Returns a
  // ticket for CancelAdmission while it waits (0: `admit` already ran).
  using Admit = std::function<void(absl::StatusOr<std::shared_ptr<Inbox>>)>;
  int64_t AdmitStream(const std::string& job_id, int64_t generation, const std::string& key,
                      Admit admit);
  // True if the ticket was still waiting (`admit` will never run).
  bool CancelAdmission(int64_t ticket);

 private:
  struct Group {
    std::shared_ptr<Inbox> inbox;
    std::string key;
  };
  struct Waiter {
    std::string job_id;
    int64_t generation;
    std::string key;
    Admit admit;
  };
  struct Job {
    int64_t newest_opened = -1;
    std::map<int64_t, Group> groups;
  };
  const std::shared_ptr<grpc::ChannelCredentials> channel_credentials_;
  absl::Mutex mu_;
  std::map<std::string, Job> jobs_ ABSL_GUARDED_BY(mu_);
  std::map<int64_t, Waiter> waiting_ ABSL_GUARDED_BY(mu_);  // by ticket
  int64_t next_ticket_ ABSL_GUARDED_BY(mu_) = 1;
};

}  // namespace nightshift::collective

#endif  // NIGHTSHIFT_COLLECTIVE_TRANSPORT_GRPC_PEER_SERVICE_H_
