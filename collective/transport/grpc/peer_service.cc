#include "collective/transport/grpc/peer_service.h"

#include <optional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "collective/transport/grpc/inbox.h"
#include "collective/transport/grpc/peer_chunk_codec.h"

namespace nightshift::collective {
namespace {

// Compares without leaking, through its timing, how much of a key matched.
bool SameKey(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

// One incoming stream: admitted on its first chunk (PeerService::
// AdmitStream), then files each chunk into its group's inbox.
class StreamReactor final : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  StreamReactor(PeerService* service, std::string key) : service_(service), key_(std::move(key)) {
    StartRead(&buffer_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // the sender half-closed, or the stream broke
      Close(absl::UnavailableError(absl::StrCat("rank ", source_, " closed its stream")));
      FinishOnce(grpc::Status::OK);
      return;
    }
    absl::StatusOr<DecodedPeerChunk> decoded = DecodePeerChunk(buffer_);
    buffer_.Clear();
    if (!decoded.ok()) {
      Close(absl::InternalError(
          absl::StrCat("rank ", source_, " sent ", decoded.status().message())));
      FinishOnce(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                              std::string(decoded.status().message())));
      return;
    }
    const v1::PeerChunk& header = decoded->header;
    if (!admitted_) {
      job_id_ = header.job_id();
      generation_ = header.generation();
      source_ = header.source_rank();
      first_ = *std::move(decoded);
      const int64_t ticket = service_->AdmitStream(
          job_id_, generation_, key_,
          [this](absl::StatusOr<std::shared_ptr<Inbox>> inbox) { OnAdmitted(std::move(inbox)); });
      absl::MutexLock lock(&mu_);
      if (ticket != 0 && !admitted_) ticket_ = ticket;
      return;
    }
    if (header.generation() != generation_ || header.job_id() != job_id_ ||
        header.source_rank() != source_) {
      Close(absl::InternalError(absl::StrCat("rank ", source_, " switched group mid-stream")));
      FinishOnce(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                              absl::StrCat("a stream of job '", job_id_, "' generation ",
                                           generation_, " carried a chunk of job '",
                                           header.job_id(), "' generation ", header.generation())));
      return;
    }
    File(*std::move(decoded));
    StartRead(&buffer_);
  }

  void OnCancel() override {
    int64_t ticket;
    {
      absl::MutexLock lock(&mu_);
      ticket = ticket_;
      ticket_ = 0;
    }
    if (ticket != 0 && service_->CancelAdmission(ticket)) {
      FinishOnce(
          grpc::Status(grpc::StatusCode::CANCELLED, "cancelled while waiting for its group"));
      return;
    }
    Close(absl::UnavailableError(absl::StrCat("rank ", source_, " disconnected")));
  }

  void OnDone() override { delete this; }

 private:
  void OnAdmitted(absl::StatusOr<std::shared_ptr<Inbox>> inbox) {
    {
      absl::MutexLock lock(&mu_);
      admitted_ = true;
      ticket_ = 0;
      if (inbox.ok()) inbox_ = *inbox;
    }
    if (!inbox.ok()) {
      FinishOnce(grpc::Status(static_cast<grpc::StatusCode>(inbox.status().code()),
                              std::string(inbox.status().message())));
      return;
    }
    File(*std::move(first_));
    first_.reset();
    StartRead(&buffer_);  // after a cancel it fails: OnReadDone(false) finishes
  }

  void File(DecodedPeerChunk chunk) {
    const v1::PeerChunk& header = chunk.header;
    if (!header.abort_reason().empty()) {
      inbox_->NoteAbort(source_, absl::UnavailableError(absl::StrCat(
                                     "rank ", source_, " aborted: ", header.abort_reason())));
    } else if (header.tag() != kHelloTag) {
      inbox_->Push(source_, std::move(chunk));
    }
  }

  void Close(const absl::Status& why) {
    std::shared_ptr<Inbox> inbox;
    {
      absl::MutexLock lock(&mu_);
      inbox = inbox_;
    }
    if (inbox != nullptr) inbox->CloseSource(source_, why);
  }

  void FinishOnce(const grpc::Status& status) {
    {
      absl::MutexLock lock(&mu_);
      if (finished_) return;
      finished_ = true;
    }
    Finish(status);
  }

  PeerService* service_;
  const std::string key_;
  grpc::ByteBuffer buffer_;
  std::optional<DecodedPeerChunk> first_;  // held until admitted
  std::string job_id_;
  int64_t generation_ = -1;
  int source_ = -1;
  absl::Mutex mu_;
  // Written under mu_ (admission may run on another thread); read without
  // it on gRPC's reactor thread once a read has been started after them.
  std::shared_ptr<Inbox> inbox_;
  bool admitted_ = false;
  int64_t ticket_ ABSL_GUARDED_BY(mu_) = 0;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace

absl::StatusOr<std::shared_ptr<Inbox>> PeerService::OpenGroup(const std::string& job_id,
                                                              int64_t generation,
                                                              const std::string& group_key) {
  std::vector<std::pair<Admit, absl::StatusOr<std::shared_ptr<Inbox>>>> decided;
  std::shared_ptr<Inbox> inbox;
  {
    absl::MutexLock lock(&mu_);
    Job& job = jobs_[job_id];
    if (generation < job.newest_opened) {
      return absl::FailedPreconditionError(absl::StrCat("job '", job_id, "' generation ",
                                                        generation, " is older than generation ",
                                                        job.newest_opened, " already opened here"));
    }
    job.newest_opened = generation;
    for (auto it = job.groups.begin(); it != job.groups.end();) {
      it = it->first < generation ? job.groups.erase(it) : std::next(it);
    }
    Group& group = job.groups[generation];
    if (group.inbox == nullptr) {
      group.inbox = std::make_shared<Inbox>();
      group.key = group_key;
    }
    inbox = group.inbox;
    // Streams that came early: admitted or refused now; older ones are stale.
    for (auto it = waiting_.begin(); it != waiting_.end();) {
      Waiter& w = it->second;
      if (w.job_id != job_id || w.generation > generation) {
        ++it;
        continue;
      }
      if (w.generation < generation) {
        decided.emplace_back(std::move(w.admit),
                             absl::FailedPreconditionError(absl::StrCat(
                                 "stale generation: job '", job_id, "' is at generation ",
                                 generation, " here, the stream is of generation ", w.generation)));
      } else if (!SameKey(w.key, group.key)) {
        decided.emplace_back(std::move(w.admit),
                             absl::PermissionDeniedError(
                                 absl::StrCat("not a member: the stream's group key is not job '",
                                              job_id, "' generation ", generation, "'s")));
      } else {
        decided.emplace_back(std::move(w.admit), inbox);
      }
      it = waiting_.erase(it);
    }
  }
  for (auto& [admit, result] : decided) admit(std::move(result));
  return inbox;
}

void PeerService::CloseGroup(const std::string& job_id, int64_t generation) {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(job_id);
  if (it != jobs_.end()) it->second.groups.erase(generation);
}

int64_t PeerService::AdmitStream(const std::string& job_id, int64_t generation,
                                 const std::string& key, Admit admit) {
  absl::StatusOr<std::shared_ptr<Inbox>> result;
  {
    absl::MutexLock lock(&mu_);
    Job& job = jobs_[job_id];
    auto group = job.groups.find(generation);
    if (generation < job.newest_opened) {
      result = absl::FailedPreconditionError(
          absl::StrCat("stale generation: job '", job_id, "' is at generation ", job.newest_opened,
                       " here, the stream is of generation ", generation));
    } else if (generation == job.newest_opened && group == job.groups.end()) {
      result = absl::FailedPreconditionError(
          absl::StrCat("job '", job_id, "' generation ", generation, " has already closed here"));
    } else if (group != job.groups.end()) {
      result = SameKey(key, group->second.key)
                   ? absl::StatusOr<std::shared_ptr<Inbox>>(group->second.inbox)
                   : absl::PermissionDeniedError(
                         absl::StrCat("not a member: the stream's group key is not job '", job_id,
                                      "' generation ", generation, "'s"));
    } else if (waiting_.size() >= kMaxWaitingStreams) {
      result = absl::ResourceExhaustedError(
          absl::StrCat(kMaxWaitingStreams, " streams already wait for their groups here"));
    } else {
      const int64_t ticket = next_ticket_++;
      waiting_[ticket] = Waiter{job_id, generation, key, std::move(admit)};
      return ticket;
    }
  }
  admit(std::move(result));
  return 0;
}

bool PeerService::CancelAdmission(int64_t ticket) {
  absl::MutexLock lock(&mu_);
  return waiting_.erase(ticket) > 0;
}

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* PeerService::Stream(
    grpc::CallbackServerContext* context) {
  const auto& metadata = context->client_metadata();
  auto it = metadata.find(kGroupKeyMetadata);
  std::string key = it == metadata.end() ? "" : std::string(it->second.data(), it->second.size());
  return new StreamReactor(this, std::move(key));
}

}  // namespace nightshift::collective
