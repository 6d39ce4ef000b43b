#include "collective/transport/grpc/grpc_transport.h"

#include <deque>

#include "absl/strings/str_cat.h"
#include "grpcpp/grpcpp.h"

namespace nightshift::collective {

// The client side of one Peer.Stream: a write queue drained by gRPC's
// callbacks. Lock order: only mu_; gRPC calls are made outside it.
class OutStream final : public grpc::ClientBidiReactor<v1::PeerChunk, v1::PeerAck> {
 public:
  OutStream(const std::string& address, int peer_rank) : peer_rank_(peer_rank) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(-1);
    args.SetMaxSendMessageSize(-1);
    // A channel of its own, not a subchannel shared with other groups.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    channel_ = grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
    stub_ = v1::Peer::NewStub(channel_);
    stub_->async()->Stream(&context_, this);
    StartRead(&ack_);
    AddHold();  // released when the writer side is done
    StartCall();
  }

  // Queues `chunk`; waits while the queue is full.
  absl::Status Enqueue(v1::PeerChunk chunk, absl::Time deadline) {
    const size_t bytes = chunk.payload().size();
    bool start = false;
    {
      absl::MutexLock lock(&mu_);
      auto room = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return !failed_.ok() || queued_bytes_ + bytes <= GrpcTransport::kMaxQueuedBytes ||
               queue_.empty();
      };
      if (!mu_.AwaitWithDeadline(absl::Condition(&room), deadline)) {
        return absl::DeadlineExceededError(
            absl::StrCat("rank ", peer_rank_, " did not take data before the deadline"));
      }
      if (!failed_.ok()) return failed_;
      queue_.push_back(std::move(chunk));
      queued_bytes_ += bytes;
      start = !writing_;
      writing_ = true;
    }
    if (start) StartWrite(&queue_.front());
    return absl::OkStatus();
  }

  void OnWriteDone(bool ok) override {
    v1::PeerChunk* next = nullptr;
    {
      absl::MutexLock lock(&mu_);
      queued_bytes_ -= queue_.front().payload().size();
      queue_.pop_front();
      if (!ok) {
        Fail(absl::UnavailableError(absl::StrCat("rank ", peer_rank_, " stopped accepting data")));
        writing_ = false;
        return;
      }
      if (queue_.empty() || closing_) {
        writing_ = false;
      } else {
        next = &queue_.front();
      }
    }
    if (next != nullptr) StartWrite(next);
  }

  void OnReadDone(bool ok) override {
    if (ok) {
      StartRead(&ack_);
      return;
    }
    // The server finished the call: refused it, or went away.
    absl::MutexLock lock(&mu_);
    if (!closing_) {
      Fail(absl::UnavailableError(absl::StrCat("rank ", peer_rank_, " ended the stream")));
    }
  }

  void OnDone(const grpc::Status& status) override {
    absl::MutexLock lock(&mu_);
    if (status.ok()) {
      Fail(absl::UnavailableError(absl::StrCat("rank ", peer_rank_, " ended the stream")));
    } else {
      Fail(absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                        absl::StrCat("rank ", peer_rank_, ": ", status.error_message())));
    }
    done_ = true;
  }

  // Ends the stream: lets queued writes go out until `deadline` (cancelling
  // the rest), half-closes, and waits for the RPC to finish.
  void Close(absl::Time deadline) {
    mu_.Lock();
    closing_ = true;
    auto drained = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !writing_; };
    if (!mu_.AwaitWithDeadline(absl::Condition(&drained), deadline)) {
      mu_.Unlock();
      context_.TryCancel();  // fails the write in flight
      mu_.Lock();
      mu_.Await(absl::Condition(&drained));
    }
    mu_.Unlock();
    StartWritesDone();
    RemoveHold();
    absl::MutexLock lock(&mu_);
    if (!mu_.AwaitWithDeadline(absl::Condition(&done_), deadline)) {
      mu_.Unlock();
      context_.TryCancel();
      mu_.Lock();
      mu_.Await(absl::Condition(&done_));
    }
  }

  void Cancel(const absl::Status& reason) {
    {
      absl::MutexLock lock(&mu_);
      Fail(reason);
    }
    context_.TryCancel();
  }

 private:
  void Fail(const absl::Status& s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (failed_.ok()) failed_ = s;
  }

  const int peer_rank_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Peer::Stub> stub_;
  grpc::ClientContext context_;
  v1::PeerAck ack_;
  absl::Mutex mu_;
  std::deque<v1::PeerChunk> queue_ ABSL_GUARDED_BY(mu_);
  size_t queued_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status failed_ ABSL_GUARDED_BY(mu_);
};

absl::StatusOr<std::unique_ptr<GrpcTransport>> GrpcTransport::Create(PeerService* service,
                                                                     GrpcGroup group) {
  const int size = static_cast<int>(group.peer_addresses.size());
  if (group.rank < 0 || group.rank >= size) {
    return absl::InvalidArgumentError(
        absl::StrCat("rank ", group.rank, " is outside a group of ", size));
  }
  absl::StatusOr<std::shared_ptr<Inbox>> inbox = service->OpenGroup(group.job_id, group.generation);
  if (!inbox.ok()) return inbox.status();
  return std::unique_ptr<GrpcTransport>(
      new GrpcTransport(service, std::move(group), *std::move(inbox)));
}

GrpcTransport::GrpcTransport(PeerService* service, GrpcGroup group,
                             std::shared_ptr<Inbox> inbox)
    : service_(service), group_(std::move(group)), inbox_(std::move(inbox)) {
  out_.resize(group_.peer_addresses.size());
}

GrpcTransport::~GrpcTransport() {
  const absl::Time deadline = absl::Now() + absl::Seconds(2);
  for (auto& stream : out_) {
    if (stream != nullptr) stream->Close(deadline);
  }
  service_->CloseGroup(group_.job_id, group_.generation);
}

absl::Status GrpcTransport::Send(int to, uint64_t tag, absl::string_view data,
                                 absl::Time deadline) {
  if (out_[to] == nullptr) {
    out_[to] = std::make_unique<OutStream>(group_.peer_addresses[to], to);
  }
  v1::PeerChunk chunk;
  chunk.set_job_id(group_.job_id);
  chunk.set_generation(group_.generation);
  chunk.set_source_rank(group_.rank);
  chunk.set_tag(tag);
  chunk.set_payload(data.data(), data.size());
  return out_[to]->Enqueue(std::move(chunk), deadline);
}

absl::Status GrpcTransport::RecvWith(int from, uint64_t tag, size_t expected_bytes,
                                     absl::Time deadline,
                                     const std::function<void(absl::string_view)>& consume) {
  return inbox_->Pop(from, tag, expected_bytes, deadline, consume);
}

void GrpcTransport::Abort(const absl::Status& reason) {
  inbox_->Abort(reason);
  for (auto& stream : out_) {
    if (stream != nullptr) stream->Cancel(reason);
  }
}

}  // namespace nightshift::collective
