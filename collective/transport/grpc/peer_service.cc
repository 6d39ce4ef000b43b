#include "collective/transport/grpc/peer_service.h"

#include "absl/strings/str_cat.h"
#include "collective/transport/grpc/inbox.h"
#include "collective/transport/grpc/peer_chunk_codec.h"

namespace nightshift::collective {
namespace {

// One incoming stream: files each chunk into its group's inbox.
class StreamReactor final : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  explicit StreamReactor(PeerService* service) : service_(service) { StartRead(&buffer_); }

  void OnReadDone(bool ok) override {
    if (!ok) {  // the sender half-closed, or the stream broke
      Close(absl::UnavailableError(absl::StrCat("rank ", source_, " closed its stream")));
      Finish(grpc::Status::OK);
      return;
    }
    absl::StatusOr<DecodedPeerChunk> decoded = DecodePeerChunk(buffer_);
    buffer_.Clear();
    if (!decoded.ok()) {
      Close(absl::InternalError(
          absl::StrCat("rank ", source_, " sent ", decoded.status().message())));
      Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          std::string(decoded.status().message())));
      return;
    }
    const v1::PeerChunk& header = decoded->header;
    if (inbox_ == nullptr) {
      absl::StatusOr<std::shared_ptr<Inbox>> inbox =
          service_->InboxFor(header.job_id(), header.generation());
      if (!inbox.ok()) {
        Finish(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                            std::string(inbox.status().message())));
        return;
      }
      inbox_ = *std::move(inbox);
      job_id_ = header.job_id();
      generation_ = header.generation();
      source_ = header.source_rank();
    } else if (header.generation() != generation_ || header.job_id() != job_id_ ||
               header.source_rank() != source_) {
      Close(absl::InternalError(absl::StrCat("rank ", source_, " switched group mid-stream")));
      Finish(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                          absl::StrCat("a stream of job '", job_id_, "' generation ", generation_,
                                       " carried a chunk of job '", header.job_id(),
                                       "' generation ", header.generation())));
      return;
    }
    if (!header.abort_reason().empty()) {
      inbox_->NoteAbort(source_, absl::UnavailableError(absl::StrCat(
                                     "rank ", source_, " aborted: ", header.abort_reason())));
    } else if (header.tag() != kHelloTag) {
      inbox_->Push(source_, *std::move(decoded));
    }
    StartRead(&buffer_);
  }

  void OnCancel() override {
    Close(absl::UnavailableError(absl::StrCat("rank ", source_, " disconnected")));
  }

  void OnDone() override { delete this; }

 private:
  void Close(const absl::Status& why) {
    if (inbox_ != nullptr) inbox_->CloseSource(source_, why);
  }

  PeerService* service_;
  grpc::ByteBuffer buffer_;
  std::shared_ptr<Inbox> inbox_;
  std::string job_id_;
  int64_t generation_ = -1;
  int source_ = -1;
};

}  // namespace

absl::StatusOr<std::shared_ptr<Inbox>> PeerService::OpenGroup(const std::string& job_id,
                                                              int64_t generation) {
  absl::MutexLock lock(&mu_);
  Job& job = jobs_[job_id];
  if (generation < job.newest_opened) {
    return absl::FailedPreconditionError(absl::StrCat("job '", job_id, "' generation ", generation,
                                                      " is older than generation ",
                                                      job.newest_opened, " already opened here"));
  }
  job.newest_opened = generation;
  for (auto it = job.inboxes.begin(); it != job.inboxes.end();) {
    it = it->first < generation ? job.inboxes.erase(it) : std::next(it);
  }
  std::shared_ptr<Inbox>& inbox = job.inboxes[generation];
  if (inbox == nullptr) inbox = std::make_shared<Inbox>();
  return inbox;
}

void PeerService::CloseGroup(const std::string& job_id, int64_t generation) {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(job_id);
  if (it != jobs_.end()) it->second.inboxes.erase(generation);
}

absl::StatusOr<std::shared_ptr<Inbox>> PeerService::InboxFor(const std::string& job_id,
                                                             int64_t generation) {
  absl::MutexLock lock(&mu_);
  Job& job = jobs_[job_id];
  if (generation < job.newest_opened) {
    return absl::FailedPreconditionError(
        absl::StrCat("stale generation: job '", job_id, "' is at generation ", job.newest_opened,
                     " here, the stream is of generation ", generation));
  }
  std::shared_ptr<Inbox>& inbox = job.inboxes[generation];
  if (inbox == nullptr) inbox = std::make_shared<Inbox>();  // early arrival
  return inbox;
}

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* PeerService::Stream(
    grpc::CallbackServerContext* context) {
  return new StreamReactor(this);
}

}  // namespace nightshift::collective
