#include "collective/transport/shm/shm_transport.h"

#include <cctype>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/status_macros.h"
#include "collective/transport/shm/shm_region.h"
#include "collective/transport/shm/shm_ring.h"

namespace nightshift::collective {
namespace {

std::string FileSafe(std::string s) {
  for (char& c : s) {
    if (!isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return s;
}

// How often AwaitAborts asks the peers' liveness (bootstrap and failure
// paths only).
constexpr absl::Duration kAbortPoll = absl::Milliseconds(2);

}  // namespace

class ShmTransport::Regions final : public GroupMemory {
 public:
  Regions(ShmTransport* transport, size_t bytes, std::vector<std::unique_ptr<ShmRegion>> regions)
      : transport_(transport), bytes_(bytes), regions_(std::move(regions)) {}

  size_t bytes_per_rank() const override { return bytes_; }
  char* region(int rank) override { return regions_[rank]->data(); }
  void Publish(int counter, uint32_t value) override {
    regions_[transport_->rank()]->Publish(counter, value);
  }
  absl::Status Await(int peer, int counter, uint32_t value, absl::Time deadline) override {
    return Named(peer, regions_[peer]->AwaitReached(
                           counter, value, deadline, [&] { return transport_->Interrupted(peer); },
                           "did not answer before the deadline"));
  }

 private:
  ShmTransport* transport_;
  const size_t bytes_;
  std::vector<std::unique_ptr<ShmRegion>> regions_;  // by rank
};

absl::StatusOr<std::unique_ptr<ShmTransport>> ShmTransport::Create(ShmGroup group,
                                                                   PeerLiveness liveness) {
  const int size = static_cast<int>(group.labels.size());
  if (group.rank < 0 || group.rank >= size || static_cast<int>(group.local.size()) != size) {
    return absl::InvalidArgumentError(absl::StrCat("rank ", group.rank, " of a group of ", size,
                                                   " with ", group.local.size(), " local marks"));
  }
  std::unique_ptr<ShmTransport> t(new ShmTransport(std::move(group), std::move(liveness)));
  const int pred = (t->rank() + t->size() - 1) % t->size();
  if (t->group_.local[pred]) {
    ASSIGN_OR_RETURN(t->in_[pred], ShmRing::Create(t->RingName(pred, t->rank())));
  }
  return t;
}

ShmTransport::ShmTransport(ShmGroup group, PeerLiveness liveness)
    : group_(std::move(group)), liveness_(std::move(liveness)) {
  in_.resize(group_.labels.size());
  out_.resize(group_.labels.size());
}

ShmTransport::~ShmTransport() {
  out_.clear();  // stops the writer threads before anything they call goes
}

std::string ShmTransport::RingName(int from, int to) const {
  return absl::StrCat("nightshift-", group_.job_id, "-g", group_.generation, "-", from, "-to-", to,
                      "-at-", FileSafe(group_.labels[to]));
}

std::string ShmTransport::RegionName(int owner) const {
  return absl::StrCat("nightshift-", group_.job_id, "-g", group_.generation, "-step-", owner,
                      "-at-", FileSafe(group_.labels[owner]));
}

absl::Status ShmTransport::Named(int peer, const absl::Status& s) {
  if (s.ok() || absl::StrContains(s.message(), "rank ")) return s;
  return absl::Status(s.code(), absl::StrCat("rank ", peer, " ", s.message()));
}

absl::Status ShmTransport::Served(int peer) const {
  if (peer >= 0 && peer < size() && group_.local[peer]) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("rank ", peer, " is not reached through shared memory from rank ", rank()));
}

absl::Status ShmTransport::Interrupted(int peer) {
  {
    absl::MutexLock lock(&mu_);
    if (!aborted_.ok()) return aborted_;
  }
  return liveness_ ? liveness_(peer) : absl::OkStatus();
}

absl::Status ShmTransport::Send(int to, uint64_t tag, absl::Span<const absl::string_view> parts,
                                absl::Time deadline) {
  RETURN_IF_ERROR(Served(to));
  if (out_[to] == nullptr) {
    absl::StatusOr<std::unique_ptr<ShmRing>> ring =
        ShmRing::Open(RingName(rank(), to), deadline, [&] { return Interrupted(to); });
    if (!ring.ok()) return Named(to, ring.status());
    out_[to] =
        std::make_unique<ShmRingWriter>(*std::move(ring), [this, to] { return Interrupted(to); });
  }
  return Named(to, out_[to]->Send(tag, parts));
}

absl::Status ShmTransport::RecvWith(int from, uint64_t tag, size_t expected_bytes,
                                    absl::Time deadline, const ConsumeParts& consume) {
  RETURN_IF_ERROR(Served(from));
  if (in_[from] == nullptr) {
    ASSIGN_OR_RETURN(in_[from], ShmRing::Create(RingName(from, rank())));
  }
  return Named(from,
               in_[from]->Read(
                   tag, expected_bytes, deadline, [&] { return Interrupted(from); }, consume));
}

absl::Status ShmTransport::Flush(absl::Time deadline) {
  for (size_t r = 0; r < out_.size(); ++r) {
    if (out_[r] != nullptr) RETURN_IF_ERROR(Named(static_cast<int>(r), out_[r]->Flush(deadline)));
  }
  return absl::OkStatus();
}

void ShmTransport::Abort(const absl::Status& reason) {
  absl::MutexLock lock(&mu_);
  if (aborted_.ok()) aborted_ = reason.ok() ? absl::AbortedError("aborted") : reason;
}

std::set<int> ShmTransport::AwaitAborts(int count, absl::Time deadline) {
  std::set<int> gone;
  while (true) {
    for (int r = 0; r < size(); ++r) {
      if (group_.local[r] && liveness_ && !liveness_(r).ok()) gone.insert(r);
    }
    if (static_cast<int>(gone.size()) >= count || absl::Now() >= deadline) return gone;
    absl::SleepFor(std::min(kAbortPoll, deadline - absl::Now()));
  }
}

bool ShmTransport::CanMapGroupMemory() const {
  if (size() < 2) return false;
  for (int r = 0; r < size(); ++r) {
    if (r != rank() && !group_.local[r]) return false;
  }
  return true;
}

absl::StatusOr<GroupMemory*> ShmTransport::MapGroupMemory(size_t bytes_per_rank,
                                                          absl::Time deadline) {
  if (!CanMapGroupMemory()) {
    return absl::UnimplementedError("not every rank of the group shares this host's memory");
  }
  if (regions_ != nullptr) {
    if (regions_->bytes_per_rank() != bytes_per_rank) {
      return absl::InvalidArgumentError(absl::StrCat("group memory of ", regions_->bytes_per_rank(),
                                                     " bytes per rank is mapped already, not ",
                                                     bytes_per_rank));
    }
    return regions_.get();
  }
  std::vector<std::unique_ptr<ShmRegion>> regions(size());
  ASSIGN_OR_RETURN(regions[rank()],
                   ShmRegion::Create(RegionName(rank()), bytes_per_rank, size() - 1));
  for (int r = 0; r < size(); ++r) {
    if (r == rank()) continue;
    absl::StatusOr<std::unique_ptr<ShmRegion>> region =
        ShmRegion::Open(RegionName(r), bytes_per_rank, deadline, [&] { return Interrupted(r); });
    if (!region.ok()) return Named(r, region.status());
    regions[r] = *std::move(region);
  }
  regions_ = std::make_unique<Regions>(this, bytes_per_rank, std::move(regions));
  return regions_.get();
}

}  // namespace nightshift::collective
