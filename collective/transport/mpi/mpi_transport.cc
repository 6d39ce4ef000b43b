#include "collective/transport/mpi/mpi_transport.h"

#include <mpi.h>

#include <deque>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "collective/transport/buffer_pool.h"
#include "collective/transport/native_allreduce.h"

namespace nightshift::collective {
namespace {

std::string MpiError(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(code, text, &len);
  return std::string(text, len);
}

class MpiTransport final : public Transport, public NativeAllReduce {
 public:
  explicit MpiTransport(const MpiScope& scope)
      : rank_(scope.world_rank()), size_(scope.world_size()) {
    MPI_Comm_dup(MPI_COMM_WORLD, &comm_);
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
  }
  ~MpiTransport() override {
    Flush(absl::Now() + absl::Seconds(2)).IgnoreError();  // best effort on the way out
    MPI_Comm_free(&comm_);
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }

  absl::Status Send(int to, uint64_t tag, absl::Span<const absl::string_view> parts,
                    absl::Time) override {
    if (absl::Status aborted = Aborted(); !aborted.ok()) return aborted;
    std::string buffer = spare_.Get();
    buffer.clear();
    for (absl::string_view p : parts) buffer.append(p.data(), p.size());
    pending_.push_back({MPI_REQUEST_NULL, to, std::move(buffer)});
    Pending& p = pending_.back();
    const int rc = MPI_Isend(p.buffer.data(), static_cast<int>(p.buffer.size()), MPI_BYTE, to,
                             MpiTag(tag), comm_, &p.request);
    if (rc != MPI_SUCCESS) {
      return absl::UnavailableError(absl::StrCat("MPI_Isend to rank ", to, ": ", MpiError(rc)));
    }
    return absl::OkStatus();
  }

  absl::Status RecvWith(int from, uint64_t tag, size_t expected_bytes, absl::Time deadline,
                        const ConsumeParts& consume) override {
    if (absl::Status aborted = Aborted(); !aborted.ok()) return aborted;
    buffer_.resize(std::max(buffer_.size(), expected_bytes));
    MPI_Request request;
    int rc = MPI_Irecv(buffer_.data(), static_cast<int>(expected_bytes), MPI_BYTE, from,
                       MpiTag(tag), comm_, &request);
    if (rc != MPI_SUCCESS) {
      return absl::UnavailableError(absl::StrCat("MPI_Irecv from rank ", from, ": ", MpiError(rc)));
    }
    MPI_Status status;
    absl::Status s = Await(&request, &status, deadline,
                           absl::StrCat("rank ", from, " did not answer before the deadline"));
    if (!s.ok()) return s;
    int count = 0;
    MPI_Get_count(&status, MPI_BYTE, &count);
    if (static_cast<size_t>(count) != expected_bytes) {
      return absl::InternalError(absl::StrCat("protocol error: rank ", from, " sent ", count,
                                              " bytes, expected ", expected_bytes));
    }
    const absl::string_view whole(buffer_.data(), expected_bytes);
    consume(absl::MakeConstSpan(&whole, 1));
    return absl::OkStatus();
  }

  absl::Status Flush(absl::Time deadline) override {
    while (!pending_.empty()) {
      Pending& p = pending_.front();
      absl::Status s =
          Await(&p.request, MPI_STATUS_IGNORE, deadline,
                absl::StrCat("rank ", p.peer, " did not take data before the deadline"));
      if (!s.ok()) return s;
      spare_.Put(std::move(p.buffer));
      pending_.pop_front();
    }
    return absl::OkStatus();
  }

  absl::Status AllReduceInPlace(absl::Span<float> data, ReduceOp op) override {
    if (absl::Status aborted = Aborted(); !aborted.ok()) return aborted;
    MPI_Op mpi_op = op == ReduceOp::kMin ? MPI_MIN : op == ReduceOp::kMax ? MPI_MAX : MPI_SUM;
    const int rc = MPI_Allreduce(MPI_IN_PLACE, data.data(), static_cast<int>(data.size()),
                                 MPI_FLOAT, mpi_op, comm_);
    if (rc != MPI_SUCCESS)
      return absl::UnavailableError(absl::StrCat("MPI_Allreduce: ", MpiError(rc)));
    if (op == ReduceOp::kAverage) {
      const float inv = 1.f / size_;
      for (float& v : data) v *= inv;
    }
    return absl::OkStatus();
  }

  // From any thread: a receive or send polling in Await gives up at its
  // next check.
  void Abort(const absl::Status& reason) override {
    absl::MutexLock lock(&abort_mu_);
    if (aborted_.ok()) aborted_ = reason;
  }

  std::set<int> AwaitAborts(int, absl::Time) override {
    std::set<int> everyone;
    for (int r = 0; r < size_; ++r) {
      if (r != rank_) everyone.insert(r);
    }
    return everyone;
  }

 private:
  // MPI guarantees tags up to 32767; equal tags stay in order.
  static int MpiTag(uint64_t tag) {
    return static_cast<int>(((tag >> 32) * 7919 + (tag & 0xffffffff)) % 32768);
  }

  absl::Status Await(MPI_Request* request, MPI_Status* status, absl::Time deadline,
                     const std::string& late) {
    int done = 0;
    for (int polls = 0;; ++polls) {
      const int rc = MPI_Test(request, &done, status);
      if (rc != MPI_SUCCESS) return absl::UnavailableError(MpiError(rc));
      if (done) return absl::OkStatus();
      if ((polls & 1023) == 1023) {
        if (absl::Status aborted = Aborted(); !aborted.ok()) {
          MPI_Cancel(request);
          MPI_Request_free(request);
          return aborted;
        }
        if (absl::Now() > deadline) break;
      }
    }
    MPI_Cancel(request);
    MPI_Request_free(request);
    return absl::DeadlineExceededError(late);
  }

  const int rank_, size_;
  MPI_Comm comm_;
  // A sent message's copy, kept until MPI is done with it.
  struct Pending {
    MPI_Request request;
    int peer;
    std::string buffer;
  };
  std::string buffer_;
  std::deque<Pending> pending_;  // deque: buffers never move while in flight
  BufferPool spare_;
  absl::Status Aborted() {
    absl::MutexLock lock(&abort_mu_);
    return aborted_;
  }
  absl::Mutex abort_mu_;
  absl::Status aborted_ ABSL_GUARDED_BY(abort_mu_);
};

}  // namespace

std::unique_ptr<Transport> MakeMpiTransport(const MpiScope& scope) {
  return std::make_unique<MpiTransport>(scope);
}

}  // namespace nightshift::collective
