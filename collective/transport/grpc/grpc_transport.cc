#include "collective/transport/grpc/grpc_transport.h"

#include <deque>

#include "absl/strings/str_cat.h"
#include "base/grpc_status.h"
#include "base/status_macros.h"
#include "collective/transport/buffer_pool.h"
#include "collective/transport/grpc/inbox.h"
#include "collective/transport/grpc/peer_chunk_codec.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"

namespace nightshift::collective {

// The client side of one Peer.Stream: a write queue drained by gRPC's
// callbacks.
//
// Life cycle: the constructor takes a hold and keeps one read pending; the
// read fails when the server ends the call (refusal, shutdown, death).
// From then on nothing new is written, and once no write is in flight the
// hold is released so that OnDone can deliver the server's status, which
// later Sends return. Close() half-closes and waits for OnDone.
// Lock order: only mu_; gRPC calls are made outside it.
class OutStream final : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  OutStream(const std::string& address, int peer_rank,
            const std::shared_ptr<grpc::ChannelCredentials>& credentials,
            const std::string& group_key)
      : peer_rank_(peer_rank) {
    grpc::ChannelArguments args;
    // A channel of its own, not a subchannel shared with other groups.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetMaxReceiveMessageSize(-1);
    args.SetMaxSendMessageSize(-1);
    channel_ = grpc::CreateCustomChannel(address, credentials, args);
    stub_ = std::make_unique<grpc::GenericStub>(channel_);
    context_.AddMetadata(PeerService::kGroupKeyMetadata, group_key);
    stub_->PrepareBidiStreamingCall(&context_, "/nightshift.v1.Peer/Stream", grpc::StubOptions(),
                                    this);
    AddHold();
    StartRead(&ack_);
    StartCall();
  }

  ~OutStream() override { Close(absl::Now() + absl::Seconds(2)); }

  // Queues a serialized PeerChunk of `bytes` bytes; waits while the queue
  // is full, until the deadline or an Interrupt. A `control` chunk (hello,
  // abort notice: no payload) is queued at once, full queue or not, even
  // after an Interrupt.
  absl::Status Enqueue(grpc::ByteBuffer chunk, size_t bytes, absl::Time deadline,
                       bool control = false) {
    const grpc::ByteBuffer* first;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return done_ || (!control && !interrupted_.ok()) ||
               (!server_finished_ && !closing_ &&
                (control || queue_.empty() ||
                 queued_bytes_ + bytes <= GrpcTransport::kMaxQueuedBytes));
      };
      if (!mu_.AwaitWithDeadline(absl::Condition(&ready), deadline)) {
        return server_finished_
                   ? absl::UnavailableError(absl::StrCat("rank ", peer_rank_, " ended the stream"))
                   : absl::DeadlineExceededError(absl::StrCat(
                         "rank ", peer_rank_, " did not take data before the deadline"));
      }
      if (done_) return status_;
      if (!control && !interrupted_.ok()) return interrupted_;
      queue_.push_back({std::move(chunk), bytes});
      queued_bytes_ += bytes;
      if (writing_) return absl::OkStatus();
      writing_ = true;
      // The front stays put until OnWriteDone, which only this write can
      // trigger (a deque never moves its elements on push_back).
      first = &queue_.front().buffer;
    }
    StartWrite(first);
    return absl::OkStatus();
  }

  void OnWriteDone(bool ok) override {
    const grpc::ByteBuffer* next = nullptr;
    bool release = false;
    {
      absl::MutexLock lock(&mu_);
      queued_bytes_ -= queue_.front().bytes;
      queue_.pop_front();
      if (ok && !server_finished_ && !queue_.empty()) {
        next = &queue_.front().buffer;
      } else {
        writing_ = false;
        if (!ok) server_finished_ = true;
        release = ReleaseHoldIfIdle();
      }
    }
    if (next != nullptr) StartWrite(next);
    if (release) RemoveHold();
  }

  void OnReadDone(bool ok) override {
    if (ok) {  // acks carry nothing we need
      StartRead(&ack_);
      return;
    }
    bool release;
    {
      absl::MutexLock lock(&mu_);
      server_finished_ = true;
      release = ReleaseHoldIfIdle();
    }
    if (release) RemoveHold();
  }

  void OnDone(const grpc::Status& status) override {
    absl::MutexLock lock(&mu_);
    // A refusal keeps its code; anything else (reset, cancelled by a dying
    // peer's server, unreachable) means the peer is gone.
    const absl::Status ended = FromGrpc(status);
    const bool refused = ended.code() == absl::StatusCode::kFailedPrecondition;
    status_ = absl::Status(
        refused ? absl::StatusCode::kFailedPrecondition : absl::StatusCode::kUnavailable,
        ended.ok() ? absl::StrCat("rank ", peer_rank_, " ended the stream")
                   : absl::StrCat("rank ", peer_rank_, ": ", ended.message()));
    done_ = true;
  }

  // Lets queued writes go out until `deadline` (then cancels), half-closes,
  // and waits for the call to end.
  void Close(absl::Time deadline) {
    mu_.Lock();
    if (closed_) {
      mu_.Unlock();
      return;
    }
    closed_ = closing_ = true;
    auto drained = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !writing_; };
    if (!mu_.AwaitWithDeadline(absl::Condition(&drained), deadline)) {
      mu_.Unlock();
      context_.TryCancel();  // fails the write in flight
      mu_.Lock();
      mu_.Await(absl::Condition(&drained));
    }
    const bool release = !hold_released_;
    hold_released_ = true;
    mu_.Unlock();
    if (release) {
      StartWritesDone();
      RemoveHold();
    }
    absl::MutexLock lock(&mu_);
    if (!mu_.AwaitWithDeadline(absl::Condition(&done_), deadline)) {
      mu_.Unlock();
      context_.TryCancel();
      mu_.Lock();
      mu_.Await(absl::Condition(&done_));
    }
  }

  // Drops the call at once.
  void Cancel() { context_.TryCancel(); }

  // Fails the Enqueue waiting for queue space (and later data chunks) with
  // `reason`: the transport gave up. Any thread.
  void Interrupt(const absl::Status& reason) {
    absl::MutexLock lock(&mu_);
    if (interrupted_.ok()) interrupted_ = reason;
  }

  // OK while the stream works; why not once it failed.
  absl::Status Health() {
    absl::MutexLock lock(&mu_);
    if (done_) return status_;
    if (server_finished_) {
      return absl::UnavailableError(absl::StrCat("rank ", peer_rank_, " ended the stream"));
    }
    return absl::OkStatus();
  }

 private:
  bool ReleaseHoldIfIdle() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!server_finished_ || writing_ || hold_released_) return false;
    hold_released_ = true;
    return true;
  }

  const int peer_rank_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<grpc::GenericStub> stub_;
  grpc::ClientContext context_;
  grpc::ByteBuffer ack_;
  absl::Mutex mu_;
  struct Queued {
    grpc::ByteBuffer buffer;
    size_t bytes;
  };
  std::deque<Queued> queue_ ABSL_GUARDED_BY(mu_);
  size_t queued_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool server_finished_ ABSL_GUARDED_BY(mu_) = false;
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  bool hold_released_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status status_ ABSL_GUARDED_BY(mu_);
  absl::Status interrupted_ ABSL_GUARDED_BY(mu_);
};

absl::StatusOr<std::unique_ptr<GrpcTransport>> GrpcTransport::Create(PeerService* service,
                                                                     GroupMembership group) {
  const int size = static_cast<int>(group.peer_addresses.size());
  if (group.rank < 0 || group.rank >= size) {
    return absl::InvalidArgumentError(
        absl::StrCat("rank ", group.rank, " is outside a group of ", size));
  }
  absl::StatusOr<std::shared_ptr<Inbox>> inbox =
      service->OpenGroup(group.job_id, group.generation, group.group_key);
  if (!inbox.ok()) return inbox.status();
  return std::unique_ptr<GrpcTransport>(
      new GrpcTransport(service, std::move(group), *std::move(inbox)));
}

GrpcTransport::GrpcTransport(PeerService* service, GroupMembership group,
                             std::shared_ptr<Inbox> inbox)
    : service_(service),
      group_(std::move(group)),
      inbox_(std::move(inbox)),
      send_buffers_(std::make_shared<BufferPool>()) {
  out_.resize(group_.peer_addresses.size());
}

std::set<int> GrpcTransport::AwaitAborts(int count, absl::Time deadline) {
  return inbox_->AwaitAborts(count, deadline);
}

GrpcTransport::~GrpcTransport() {
  const absl::Time deadline = absl::Now() + absl::Seconds(2);
  absl::MutexLock lock(&out_mu_);
  for (auto& stream : out_) {
    if (stream != nullptr) stream->Close(deadline);
  }
  service_->CloseGroup(group_.job_id, group_.generation);
}

v1::PeerChunk GrpcTransport::Header(uint64_t tag) const {
  v1::PeerChunk chunk;
  chunk.set_job_id(group_.job_id);
  chunk.set_generation(group_.generation);
  chunk.set_source_rank(group_.rank);
  chunk.set_tag(tag);
  return chunk;
}

OutStream& GrpcTransport::StreamTo(int rank) {
  absl::MutexLock lock(&out_mu_);
  if (out_[rank] == nullptr) {
    out_[rank] = std::make_unique<OutStream>(group_.peer_addresses[rank], rank,
                                             service_->channel_credentials(), group_.group_key);
  }
  return *out_[rank];
}

absl::Status GrpcTransport::Connect(int peer, absl::Time deadline) {
  return StreamTo(peer).Enqueue(EncodePeerChunk(Header(kHelloTag), {}, send_buffers_), 0, deadline,
                                /*control=*/true);
}

absl::Status GrpcTransport::PeerHealth(int peer) {
  RETURN_IF_ERROR(inbox_->Check(peer));
  OutStream* stream;
  {
    absl::MutexLock lock(&out_mu_);
    stream = out_[peer].get();
  }
  return stream != nullptr ? stream->Health() : absl::OkStatus();
}

absl::Status GrpcTransport::GroupAborted() { return inbox_->Aborted(); }

absl::Status GrpcTransport::Send(int to, uint64_t tag, absl::Span<const absl::string_view> parts,
                                 absl::Time deadline) {
  size_t bytes = 0;
  for (absl::string_view p : parts) bytes += p.size();
  return StreamTo(to).Enqueue(EncodePeerChunk(Header(tag), parts, send_buffers_), bytes, deadline);
}

absl::Status GrpcTransport::RecvWith(int from, uint64_t tag, size_t expected_bytes,
                                     absl::Time deadline, const ConsumeParts& consume) {
  return inbox_->Pop(from, tag, expected_bytes, deadline, consume);
}

// Sent bytes are copied into gRPC's buffers before Send returns, so there
// is nothing to wait for: the caller may reuse its buffers at once.
absl::Status GrpcTransport::Flush(absl::Time deadline) { return absl::OkStatus(); }

void GrpcTransport::Abort(const absl::Status& reason) {
  inbox_->Abort(reason);  // wakes a blocked receive
  {
    absl::MutexLock lock(&out_mu_);
    for (auto& stream : out_) {
      if (stream != nullptr) stream->Interrupt(reason);  // and a blocked send
    }
  }
  if (cancelled_) return;  // a dead process says nothing
  // Best effort: a peer that is gone simply does not hear it. Abort
  // notices skip the queue limit, so this never waits on a stalled peer.
  const absl::Time deadline = absl::Now() + absl::Milliseconds(100);
  for (int r = 0; r < size(); ++r) {
    if (r == rank()) continue;
    v1::PeerChunk chunk = Header(0);
    chunk.set_abort_reason(std::string(reason.message()));
    StreamTo(r)
        .Enqueue(EncodePeerChunk(chunk, {}, send_buffers_), 0, deadline, /*control=*/true)
        .IgnoreError();
  }
}

void GrpcTransport::TEST_DropConnections(const absl::Status& reason) {
  cancelled_ = true;
  inbox_->Abort(reason);
  absl::MutexLock lock(&out_mu_);
  for (auto& stream : out_) {
    if (stream != nullptr) stream->Cancel();
  }
}

}  // namespace nightshift::collective
