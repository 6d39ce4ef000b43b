// The daemon's part in a hybrid DiLoCo job's data-center ring
// (coordinator.h, "Hybrid jobs"): a diloco assignment that names peers.
// The ring's members are one replica together (ReplicaTrainer's group
// mode, worker/edge/replica_trainer.h, whose header protocol this drives):
//   - every member: a trainer for the ring's shard (replica_shard), the
//     group's communicator, SyncGroup (rank 0's optimizer state to all);
//   - rank 0 drives: RoundClient rounds over the daemon's coordinator
//     client (RunRound sends kTrain to the others), Idle() keep-alives at
//     least every kRingKeepAlive while it waits between rounds, an
//     evaluate ticket evaluated here alone, and End() when the job ends;
//   - the other ranks Follow() until kEnd;
//   - a next ring generation (an `assign` with a higher generation, which
//     interrupts the communicator: abandon_previous) is taken at once:
//     a new communicator, SyncGroup again, the same trainer — its
//     optimizer state and step count go on;
//   - the ring failing under it (UNAVAILABLE, DEADLINE_EXCEEDED, ABORTED)
//     is reported with the ranks found silent, as a synchronous job's
//     survivors do (with none found, not at all: the silent member's lease
//     runs out), and the next generation is awaited (AwaitNextGeneration);
//     any other failure is the job's error (RunJob reports it).
// The communicator's timeout is the collective timeout plus the round
// deadline: a follower waits in Follow while rank 0 joins, fetches and
// pushes; a member that dies breaks its streams, which is seen at once.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "glog/logging.h"
#include "kernels/threads.h"
#include "spec/diloco.h"
#include "worker/edge/replica_trainer.h"
#include "worker/edge/round_client.h"
#include "worker/worker_daemon.h"

namespace nightshift {
namespace {

// Rank 0 waits between rounds in slices this long, each ended by a
// keep-alive to the followers.
constexpr absl::Duration kRingKeepAlive = absl::Seconds(1);
constexpr absl::Duration kMaxBackoff = absl::Seconds(30);
// How long a member whose ring failed with a non-group error waits for a
// next generation that would explain it (a few heartbeats).
constexpr absl::Duration kStaleGenerationWait = absl::Seconds(3);

bool IsGroupFailure(const absl::Status& s) {
  return s.code() == absl::StatusCode::kUnavailable ||
         s.code() == absl::StatusCode::kDeadlineExceeded || s.code() == absl::StatusCode::kAborted;
}

}  // namespace

bool WorkerDaemon::AwaitRingChange(absl::Duration d, const std::atomic<bool>* cancelled) {
  absl::MutexLock lock(&mu_);
  auto changed = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return cancelled->load() || current_.next_generation.has_value();
  };
  return mu_.AwaitWithTimeout(absl::Condition(&changed), d);
}

absl::Status WorkerDaemon::DriveRing(const v1::Assignment& a, const std::string& worker_id,
                                     ReplicaTrainer* trainer, const std::atomic<bool>* cancelled) {
  RoundClientOptions options;
  options.job_id = a.job_id();
  options.chunk_bytes = options_.round_chunk_bytes;
  RoundClient client(a.spec(), coordinator_, trainer, options);
  // Waits `d`, keeping the followers' collectives alive; ABORTED when a
  // next generation comes, CANCELLED on cancel or stop.
  auto wait = [&](absl::Duration d) -> absl::Status {
    const absl::Time deadline = absl::Now() + d;
    while (true) {
      if (cancelled->load() || stop_.HasBeenNotified()) return absl::CancelledError("cancelled");
      const absl::Time now = absl::Now();
      if (now >= deadline) return absl::OkStatus();
      if (AwaitRingChange(std::min(kRingKeepAlive, deadline - now), cancelled)) {
        if (cancelled->load()) return absl::CancelledError("cancelled");
        return absl::AbortedError("the ring's next generation came");
      }
      RETURN_IF_ERROR(trainer->Idle());
    }
  };
  absl::Duration backoff = absl::Milliseconds(100);
  while (true) {
    RETURN_IF_ERROR(wait(absl::ZeroDuration()));
    client.set_worker_id(JobWorkerId(a.job_id(), worker_id));
    absl::StatusOr<RoundOutcome> out = client.RunOnce();
    if (!out.ok()) {
      // The ring's failure, or the coordinator's? A keep-alive tells.
      if (absl::Status ring = trainer->Idle(); !ring.ok()) {
        return IsGroupFailure(out.status())
                   ? out.status()
                   : absl::UnavailableError(absl::StrCat("the ring broke: ", ring.message()));
      }
      LOG(WARNING) << "job " << a.job_id() << " ring generation " << a.generation()
                   << ": round failed: " << out.status() << "; again in " << backoff;
      RETURN_IF_ERROR(wait(backoff));
      backoff = std::min(backoff * 2, kMaxBackoff);
      continue;
    }
    backoff = absl::Milliseconds(100);
    switch (out->kind) {
      case RoundOutcome::kJobEnded:
        LOG(INFO) << "job " << a.job_id() << ": " << out->reason;
        trainer->End().IgnoreError();  // followers that miss it are cancelled by the coordinator
        return absl::OkStatus();
      case RoundOutcome::kWait:
        RETURN_IF_ERROR(wait(out->retry_after));
        break;
      case RoundOutcome::kEvaluated:  // rank 0 alone
        ReportEvaluation(a, worker_id, *out, cancelled);
        break;
      default:
        LOG(INFO) << "job " << a.job_id() << " round " << out->round << ": the ring of "
                  << a.world_size() << " "
                  << (out->kind == RoundOutcome::kPushed     ? "pushed"
                      : out->kind == RoundOutcome::kWithdrew ? "withdrew"
                                                             : "was refused")
                  << " after " << out->result.steps_done << " inner steps"
                  << (out->reason.empty() ? "" : ": ") << out->reason;
    }
  }
}

absl::Status WorkerDaemon::RunRingReplica(const v1::Assignment& first, const std::string& worker_id,
                                          const std::atomic<bool>* cancelled,
                                          v1::ReportProgressRequest* failure) {
  if (transports_ == nullptr) {
    return absl::FailedPreconditionError("edge workers cannot join a data-center ring");
  }
  SetComputeThreads(options_.threads);
  v1::Assignment a = first;
  ASSIGN_OR_RETURN(std::unique_ptr<ReplicaTrainer> trainer,
                   ReplicaTrainer::Create(a.spec(), a.replica_shard()));
  {
    absl::MutexLock lock(&mu_);
    if (current_.cancel.get() == cancelled) current_.ready = true;
  }
  std::unique_ptr<collective::Communicator> comm;  // outlives `unregister`
  CommunicatorUnregister unregister{this};
  const absl::Duration timeout =
      options_.collective_timeout + absl::Seconds(ResolveDiLoCo(a.spec()).round_deadline_seconds);
  while (true) {
    ASSIGN_OR_RETURN(std::unique_ptr<collective::Transport> transport, transports_->Connect(a));
    auto next_comm = std::make_unique<collective::Communicator>(
        std::move(transport),
        collective::CommunicatorOptions{a.job_id(), a.generation(), timeout, false});
    {
      absl::MutexLock lock(&mu_);
      if (cancelled->load()) return absl::CancelledError("cancelled");
      if (current_.cancel.get() == cancelled) current_.communicator = next_comm.get();
      // A generation that came while this one was being joined interrupted
      // nothing: this one is stale already.
      if (current_.next_generation.has_value()) {
        next_comm->Interrupt(absl::AbortedError("a later ring generation came"));
      }
    }
    comm = std::move(next_comm);                       // the previous group goes only now
    if (a.replica_shard() != first.replica_shard()) {  // not expected: a shard is sticky
      ASSIGN_OR_RETURN(trainer, ReplicaTrainer::Create(a.spec(), a.replica_shard()));
    }
    trainer->set_group(comm.get());
    LOG(INFO) << "job " << a.job_id() << " ring generation " << a.generation() << ": rank "
              << a.rank() << " of " << a.world_size() << ", shard " << a.replica_shard()
              << ", after " << trainer->inner_steps_taken() << " inner steps";
    absl::Status s = trainer->SyncGroup();
    if (s.ok() && a.rank() == 0) {
      s = DriveRing(a, worker_id, trainer.get(), cancelled);
    } else if (s.ok()) {
      while (s.ok()) {
        absl::StatusOr<ReplicaTrainer::GroupCommand> command = trainer->Follow();
        if (!command.ok()) s = command.status();
        if (command.ok() && *command == ReplicaTrainer::GroupCommand::kEnd) break;
      }
    }
    trainer->set_group(nullptr);
    if (cancelled->load()) return absl::CancelledError("cancelled");
    if (s.ok()) return absl::OkStatus();  // the job ended
    // Any other failure is this member's own — unless a peer that took the
    // next generation first refused this one's streams: a generation that
    // comes within a few heartbeats explains it.
    if (!IsGroupFailure(s) && !HasNextGeneration() &&
        !AwaitRingChange(kStaleGenerationWait, cancelled)) {
      return s;
    }
    if (!HasNextGeneration() && !comm->lost_ranks().empty()) {
      // Without lost ranks there is nothing to tell: the member that went
      // silent loses its lease, and that forms the next generation.
      v1::ReportProgressRequest survivors;
      survivors.set_worker_id(JobWorkerId(a.job_id(), worker_id));
      survivors.set_job_id(a.job_id());
      survivors.set_generation(a.generation());
      survivors.set_error(std::string(s.message()));
      for (int r : comm->lost_ranks()) survivors.add_lost_ranks(r);
      LOG(WARNING) << "job " << a.job_id() << " ring generation " << a.generation() << " rank "
                   << a.rank() << ": the ring failed: " << s;
      Report(survivors, cancelled);
      Wake();  // the next generation comes in the reply to the next heartbeat
    }
    ASSIGN_OR_RETURN(a, AwaitNextGeneration(a, cancelled));
    failure->set_generation(a.generation());  // failures from here on are this one's
  }
}

}  // namespace nightshift
