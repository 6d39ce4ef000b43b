#include "collective/transport/grpc/inbox.h"

#include "absl/strings/str_cat.h"

namespace nightshift::collective {

void Inbox::Push(int source, DecodedPeerChunk chunk) {
  absl::MutexLock lock(&mu_);
  sources_[source].queue.push_back(std::move(chunk));
}

void Inbox::CloseSource(int source, const absl::Status& why) {
  absl::MutexLock lock(&mu_);
  Source& s = sources_[source];
  if (s.closed.ok()) s.closed = why;
}

void Inbox::Abort(const absl::Status& reason) {
  absl::MutexLock lock(&mu_);
  if (aborted_.ok()) aborted_ = reason;
}

absl::Status Inbox::Aborted() {
  absl::MutexLock lock(&mu_);
  return aborted_;
}

absl::Status Inbox::Check(int source) {
  absl::MutexLock lock(&mu_);
  if (!aborted_.ok()) return aborted_;
  auto it = sources_.find(source);
  return it == sources_.end() ? absl::OkStatus() : it->second.closed;
}

void Inbox::NoteAbort(int source, const absl::Status& reason) {
  absl::MutexLock lock(&mu_);
  aborted_by_.insert(source);
  if (aborted_.ok()) aborted_ = reason;
}

std::set<int> Inbox::AwaitAborts(int count, absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  auto enough = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return static_cast<int>(aborted_by_.size()) >= count;
  };
  mu_.AwaitWithDeadline(absl::Condition(&enough), deadline);
  return aborted_by_;
}

absl::Status Inbox::Pop(int source, uint64_t tag, size_t expected_bytes, absl::Time deadline,
                        const Transport::ConsumeParts& consume) {
  DecodedPeerChunk chunk;
  {
    absl::MutexLock lock(&mu_);
    Source& s = sources_[source];
    auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return !s.queue.empty() || !s.closed.ok() || !aborted_.ok();
    };
    if (!mu_.AwaitWithDeadline(absl::Condition(&ready), deadline)) {
      return absl::DeadlineExceededError(
          absl::StrCat("rank ", source, " did not answer before the deadline"));
    }
    if (!aborted_.ok()) return aborted_;
    if (s.queue.empty()) return s.closed;
    if (s.queue.front().header.tag() != tag) {
      return absl::InternalError(absl::StrCat("protocol error: rank ", source, " sent tag ",
                                              s.queue.front().header.tag(), ", expected ", tag));
    }
    chunk = std::move(s.queue.front());
    s.queue.pop_front();
  }
  if (chunk.payload_bytes != expected_bytes) {
    return absl::InternalError(absl::StrCat("protocol error: rank ", source, " sent ",
                                            chunk.payload_bytes, " bytes, expected ",
                                            expected_bytes));
  }
  consume(chunk.payload);
  return absl::OkStatus();
}

}  // namespace nightshift::collective
