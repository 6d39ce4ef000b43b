#include "collective/transport/local/local_transport.h"

#include "absl/strings/str_cat.h"

namespace nightshift::collective {

class LocalTransport final : public Transport {
 public:
  LocalTransport(LocalHub* hub, int rank) : hub_(hub), rank_(rank) {}
  ~LocalTransport() override { hub_->Kill(rank_); }

  int rank() const override { return rank_; }
  int size() const override { return hub_->size_; }

  absl::Status Send(int to, uint64_t tag, absl::Span<const absl::string_view> parts,
                    absl::Time deadline) override {
    std::string bytes;
    for (absl::string_view p : parts) bytes.append(p.data(), p.size());
    absl::MutexLock lock(&hub_->mu_);
    if (!hub_->aborted_[rank_].ok()) return hub_->aborted_[rank_];
    if (hub_->dead_[to]) {
      return absl::UnavailableError(absl::StrCat("rank ", to, " is gone"));
    }
    hub_->Queue(rank_, to).push_back({tag, std::move(bytes)});
    return absl::OkStatus();
  }

  absl::Status RecvWith(int from, uint64_t tag, size_t expected_bytes, absl::Time deadline,
                        const ConsumeParts& consume) override {
    std::string bytes;
    {
      absl::MutexLock lock(&hub_->mu_);
      auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(hub_->mu_) {
        return !hub_->Queue(from, rank_).empty() || hub_->dead_[from] ||
               !hub_->aborted_[rank_].ok();
      };
      if (!hub_->mu_.AwaitWithDeadline(absl::Condition(&ready), deadline)) {
        return absl::DeadlineExceededError(
            absl::StrCat("rank ", from, " did not answer before the deadline"));
      }
      if (!hub_->aborted_[rank_].ok()) return hub_->aborted_[rank_];
      auto& queue = hub_->Queue(from, rank_);
      if (queue.empty()) {
        return absl::UnavailableError(absl::StrCat("rank ", from, " is gone"));
      }
      if (queue.front().tag != tag) {
        return absl::InternalError(absl::StrCat("protocol error: rank ", from, " sent tag ",
                                                queue.front().tag, ", expected ", tag));
      }
      bytes = std::move(queue.front().bytes);
      queue.pop_front();
    }
    if (bytes.size() != expected_bytes) {
      return absl::InternalError(absl::StrCat("protocol error: rank ", from, " sent ", bytes.size(),
                                              " bytes, expected ", expected_bytes));
    }
    absl::string_view whole = bytes;
    consume(absl::MakeConstSpan(&whole, 1));
    return absl::OkStatus();
  }

  absl::Status Flush(absl::Time) override { return absl::OkStatus(); }

  std::set<int> AwaitAborts(int count, absl::Time deadline) override {
    absl::MutexLock lock(&hub_->mu_);
    auto enough = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(hub_->mu_) {
      return static_cast<int>(hub_->aborted_by_[rank_].size()) >= count;
    };
    hub_->mu_.AwaitWithDeadline(absl::Condition(&enough), deadline);
    return hub_->aborted_by_[rank_];
  }

  // Fails this rank's calls, and tells every peer why.
  void Abort(const absl::Status& reason) override {
    absl::MutexLock lock(&hub_->mu_);
    if (hub_->dead_[rank_]) {  // a dead rank says nothing
      if (hub_->aborted_[rank_].ok()) hub_->aborted_[rank_] = reason;
      return;
    }
    for (int r = 0; r < hub_->size_; ++r) {
      if (r != rank_) hub_->aborted_by_[r].insert(rank_);
      if (!hub_->aborted_[r].ok()) continue;
      hub_->aborted_[r] = r == rank_ ? reason
                                     : absl::UnavailableError(absl::StrCat(
                                           "rank ", rank_, " aborted: ", reason.message()));
    }
  }

 private:
  LocalHub* hub_;
  const int rank_;
};

LocalHub::LocalHub(int size)
    : size_(size), queues_(size * size), dead_(size, false), aborted_(size), aborted_by_(size) {}

std::unique_ptr<Transport> LocalHub::Connect(int rank) {
  return std::make_unique<LocalTransport>(this, rank);
}

void LocalHub::Kill(int rank) {
  absl::MutexLock lock(&mu_);
  dead_[rank] = true;
}

}  // namespace nightshift::collective
