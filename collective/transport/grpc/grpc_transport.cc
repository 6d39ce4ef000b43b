#include "collective/transport/grpc/grpc_transport.h"

#include <deque>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
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
  OutStream(const std::string& address, int peer_rank) : peer_rank_(peer_rank) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(-1);
    args.SetMaxSendMessageSize(-1);
    // A channel of its own, not a subchannel shared with other groups.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    channel_ = grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
    stub_ = std::make_unique<grpc::GenericStub>(channel_);
    stub_->PrepareBidiStreamingCall(&context_, "/nightshift.v1.Peer/Stream",
                                    grpc::StubOptions(), this);
    AddHold();
    StartRead(&ack_);
    StartCall();
  }

  ~OutStream() override { Close(absl::Now() + absl::Seconds(2)); }

  // Queues a serialized PeerChunk of `bytes` bytes; waits while the queue
  // is full.
  absl::Status Enqueue(grpc::ByteBuffer chunk, size_t bytes, absl::Time deadline) {
    {
      absl::MutexLock lock(&mu_);
      auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return done_ || (!server_finished_ && !closing_ &&
                         (queue_.empty() || queued_bytes_ + bytes <= GrpcTransport::kMaxQueuedBytes));
      };
      if (!mu_.AwaitWithDeadline(absl::Condition(&ready), deadline)) {
        return server_finished_ ? absl::UnavailableError(absl::StrCat(
                                      "rank ", peer_rank_, " ended the stream"))
                                : absl::DeadlineExceededError(absl::StrCat(
                                      "rank ", peer_rank_, " did not take data before the deadline"));
      }
      if (done_) return status_;
      queue_.push_back({std::move(chunk), bytes});
      queued_bytes_ += bytes;
      if (writing_) return absl::OkStatus();
      writing_ = true;
    }
    StartWrite(&queue_.front().buffer);  // only this thread or OnWriteDone touch the front
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
    const bool refused = status.error_code() == grpc::StatusCode::FAILED_PRECONDITION;
    status_ = absl::Status(
        refused ? absl::StatusCode::kFailedPrecondition : absl::StatusCode::kUnavailable,
        status.ok() ? absl::StrCat("rank ", peer_rank_, " ended the stream")
                    : absl::StrCat("rank ", peer_rank_, ": ", status.error_message()));
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
  std::unique_ptr<GrpcTransport> t(new GrpcTransport(service, std::move(group), *std::move(inbox)));
  // This rank makes the rings it reads from: now for its ring predecessor
  // (the only sender of the ring algorithms), so that its first send never
  // waits; for any other local peer on the first receive from it. Making
  // only what is used leaves nothing in /dev/shm when a process dies.
  const int pred = (t->rank() + t->size() - 1) % t->size();
  if (t->local_[pred]) {
    absl::StatusOr<std::unique_ptr<ShmRing>> ring = ShmRing::Create(t->ShmName(pred, t->rank()));
    if (!ring.ok()) return ring.status();
    t->shm_in_[pred] = *std::move(ring);
  }
  return t;
}

GrpcTransport::GrpcTransport(PeerService* service, GrpcGroup group,
                             std::shared_ptr<Inbox> inbox)
    : service_(service), group_(std::move(group)), inbox_(std::move(inbox)) {
  const size_t n = group_.peer_addresses.size();
  out_.resize(n);
  shm_in_.resize(n);
  shm_out_.resize(n);
  local_.assign(n, false);
  if (!group_.shared_memory) return;
  all_loopback_ = true;
  for (size_t r = 0; r < n; ++r) {
    const std::string& a = group_.peer_addresses[r];
    const bool loopback =
        a.rfind("127.", 0) == 0 || a.rfind("localhost:", 0) == 0 || a.rfind("[::1]:", 0) == 0;
    local_[r] = static_cast<int>(r) != group_.rank && loopback;
    all_loopback_ &= loopback;
  }
}

namespace {

std::string FileSafe(std::string s) {
  for (char& c : s) {
    if (!isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return s;
}

}  // namespace

// Unique per receiving server: two groups with the same job and generation
// (tests, a reused job id) never share a ring.
std::string GrpcTransport::ShmName(int from, int to) const {
  return absl::StrCat("nightshift-", group_.job_id, "-g", group_.generation, "-", from, "-to-",
                      to, "-at-", FileSafe(group_.peer_addresses[to]));
}

std::string GrpcTransport::RegionName(int owner) const {
  return absl::StrCat("nightshift-", group_.job_id, "-g", group_.generation, "-step-", owner,
                      "-at-", FileSafe(group_.peer_addresses[owner]));
}

class GrpcTransport::StepMemory final : public SharedStepMemory {
 public:
  StepMemory(GrpcTransport* transport, int64_t floats,
             std::vector<std::unique_ptr<ShmRegion>> regions)
      : transport_(transport), floats_(floats), regions_(std::move(regions)) {}

  int64_t floats() const override { return floats_; }
  float* parameters(int rank) override { return regions_[rank]->parameters(); }
  float* gradients(int rank) override { return regions_[rank]->gradients(); }
  void Publish(Counter counter, uint32_t value) override {
    regions_[transport_->rank()]->Publish(static_cast<ShmRegion::Counter>(counter), value);
  }
  absl::Status Await(int peer, Counter counter, uint32_t value, absl::Time deadline) override {
    return transport_->Named(
        peer, regions_[peer]->AwaitReached(static_cast<ShmRegion::Counter>(counter), value,
                                           deadline, [&] { return transport_->PeerGone(peer); },
                                           "did not answer before the deadline"));
  }

 private:
  GrpcTransport* transport_;
  const int64_t floats_;
  std::vector<std::unique_ptr<ShmRegion>> regions_;  // by rank
};

absl::Status GrpcTransport::PeerGone(int peer) {
  RETURN_IF_ERROR(inbox_->Check(peer));
  return out_[peer] != nullptr ? out_[peer]->Health() : absl::OkStatus();
}

// Decided on the address list alone, which every rank shares, so all
// ranks agree.
bool GrpcTransport::CanShareStepMemory() const { return all_loopback_ && size() > 1; }

absl::StatusOr<SharedStepMemory*> GrpcTransport::MapSharedStepMemory(int64_t floats,
                                                                     absl::Time deadline) {
  if (!CanShareStepMemory()) return Transport::MapSharedStepMemory(floats, deadline);
  if (step_memory_ != nullptr) {
    if (step_memory_->floats() != floats) {
      return absl::InvalidArgumentError(absl::StrCat("step memory of ", step_memory_->floats(),
                                                     " floats is mapped already, not ", floats));
    }
    return step_memory_.get();
  }
  std::vector<std::unique_ptr<ShmRegion>> regions(size());
  ASSIGN_OR_RETURN(regions[rank()], ShmRegion::Create(RegionName(rank()), floats, size() - 1));
  for (int r = 0; r < size(); ++r) {
    if (r == rank()) continue;
    // A stream to every peer, so that its death shows while we wait on it.
    RETURN_IF_ERROR(StreamTo(r).Enqueue(EncodePeerChunk(Header(kHelloTag), {}, send_buffers_), 0,
                                        deadline));
    absl::StatusOr<std::unique_ptr<ShmRegion>> region =
        ShmRegion::Open(RegionName(r), floats, deadline, [&] { return PeerGone(r); });
    if (!region.ok()) return Named(r, region.status());
    regions[r] = *std::move(region);
  }
  step_memory_ = std::make_unique<StepMemory>(this, floats, std::move(regions));
  return step_memory_.get();
}

GrpcTransport::~GrpcTransport() {
  shm_out_.clear();  // stops the ring writers before the streams they watch
  const absl::Time deadline = absl::Now() + absl::Seconds(2);
  for (auto& stream : out_) {
    if (stream != nullptr) stream->Close(deadline);
  }
  service_->CloseGroup(group_.job_id, group_.generation);
}

// Prefixes errors of a shared-memory ring with the peer's rank, as the
// gRPC path's errors are.
absl::Status GrpcTransport::Named(int peer, const absl::Status& s) const {
  if (s.ok() || absl::StrContains(s.message(), "rank ")) return s;
  return absl::Status(s.code(), absl::StrCat("rank ", peer, " ", s.message()));
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
  if (out_[rank] == nullptr) {
    out_[rank] = std::make_unique<OutStream>(group_.peer_addresses[rank], rank);
  }
  return *out_[rank];
}

absl::Status GrpcTransport::Send(int to, uint64_t tag, absl::Span<const absl::string_view> parts,
                                 absl::Time deadline) {
  if (local_[to]) {
    OutStream& stream = StreamTo(to);
    auto interrupted = [&]() -> absl::Status {
      RETURN_IF_ERROR(inbox_->Check(to));
      return stream.Health();
    };
    if (shm_out_[to] == nullptr) {
      // Open the gRPC stream too: if this process dies, the peer sees it end.
      RETURN_IF_ERROR(stream.Enqueue(EncodePeerChunk(Header(kHelloTag), {}, send_buffers_), 0,
                                     deadline));
      absl::StatusOr<std::unique_ptr<ShmRing>> ring =
          ShmRing::Open(ShmName(rank(), to), deadline, interrupted);
      if (!ring.ok()) return Named(to, ring.status());
      shm_out_[to] = std::make_unique<ShmRingWriter>(
          *std::move(ring), [this, to]() -> absl::Status {
            RETURN_IF_ERROR(inbox_->Check(to));
            return out_[to]->Health();
          });
    }
    return Named(to, shm_out_[to]->Send(tag, parts));
  }
  size_t bytes = 0;
  for (absl::string_view p : parts) bytes += p.size();
  return StreamTo(to).Enqueue(EncodePeerChunk(Header(tag), parts, send_buffers_), bytes,
                              deadline);
}

absl::Status GrpcTransport::RecvWith(int from, uint64_t tag, size_t expected_bytes,
                                     absl::Time deadline, const ConsumeParts& consume) {
  if (local_[from]) {
    if (shm_in_[from] == nullptr) {
      absl::StatusOr<std::unique_ptr<ShmRing>> ring = ShmRing::Create(ShmName(from, rank()));
      if (!ring.ok()) return ring.status();
      shm_in_[from] = *std::move(ring);
    }
    return Named(from, shm_in_[from]->Read(tag, expected_bytes, deadline,
                                           [&] { return inbox_->Check(from); }, consume));
  }
  return inbox_->Pop(from, tag, expected_bytes, deadline, consume);
}

absl::Status GrpcTransport::Flush(absl::Time deadline) {
  for (size_t r = 0; r < shm_out_.size(); ++r) {
    if (shm_out_[r] != nullptr) RETURN_IF_ERROR(Named(static_cast<int>(r), shm_out_[r]->Flush(deadline)));
  }
  return absl::OkStatus();
}

void GrpcTransport::Abort(const absl::Status& reason) {
  inbox_->Abort(reason);
  if (cancelled_) return;  // a dead process says nothing
  // Best effort: a peer that is gone simply does not hear it.
  const absl::Time deadline = absl::Now() + absl::Milliseconds(100);
  for (int r = 0; r < size(); ++r) {
    if (r == rank()) continue;
    v1::PeerChunk chunk = Header(0);
    chunk.set_abort_reason(std::string(reason.message()));
    StreamTo(r).Enqueue(EncodePeerChunk(chunk, {}, send_buffers_), 0, deadline).IgnoreError();
  }
}

void GrpcTransport::Cancel(const absl::Status& reason) {
  cancelled_ = true;
  inbox_->Abort(reason);
  for (auto& stream : out_) {
    if (stream != nullptr) stream->Cancel();
  }
}

}  // namespace nightshift::collective
