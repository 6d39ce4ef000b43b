// The daemon's diloco jobs (worker_daemon.h step 5 for sync.diloco): the
// assignment's rank is this replica's shard; it takes part in rounds
// through RoundClient (worker/edge/round_client.h) over the daemon's own
// coordinator client, while its vehicle lets it (an edge agent's idle
// policy; a data-center worker always may):
//   - ineligible: no round is joined; the daemon waits for the answer to
//     flip (EligibilityChanged) — the job stays assigned here;
//   - eligibility lapses during a round: EligibilityChanged raises the
//     round's stop flag, compute ends at the next micro-batch, and the
//     round client pushes the partial update or withdraws;
//   - not selected: asks again after the coordinator's retry_after;
//   - an evaluate ticket: the final parameters' test accuracy is reported
//     (ReportProgress with evaluated_version);
//   - job ended (or cancelled): done. A call that fails (link down,
//     coordinator away) is retried with backoff from 0.1 s to 30 s; when
//     the daemon registers again (the coordinator is back after a
//     restart) the wait ends at once and the backoff starts again.
#include <algorithm>
#include <optional>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "data/dataset.h"
#include "glog/logging.h"
#include "kernels/threads.h"
#include "worker/edge/replica_trainer.h"
#include "worker/edge/round_client.h"
#include "worker/worker_daemon.h"

namespace nightshift {
namespace {

// Waits are cut into slices this long, so a cancel (an atomic flag) is
// seen within one.
constexpr absl::Duration kReplicaPoll = absl::Milliseconds(200);
constexpr absl::Duration kMaxBackoff = absl::Seconds(30);

}  // namespace

bool WorkerDaemon::Eligible() const {
  return !options_.eligibility || options_.eligibility().eligible();
}

void WorkerDaemon::EligibilityChanged(bool eligible) {
  if (!eligible) {
    compute_stop_.store(true);
    if (computing_.load()) preemptions_.fetch_add(1);
  }
  {
    absl::MutexLock lock(&eligibility_mu_);
    ++replica_wakeups_;
  }
  Wake();  // the coordinator hears of the flip now, not a heartbeat interval later
}

bool WorkerDaemon::WaitForEligibility(absl::Duration d, const std::atomic<bool>* cancelled) {
  const absl::Time deadline = absl::Now() + d;
  absl::MutexLock lock(&eligibility_mu_);
  const int64_t seen = replica_wakeups_;
  auto woken = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(eligibility_mu_) {
    return replica_wakeups_ != seen;
  };
  while (!cancelled->load() && !stop_.HasBeenNotified()) {
    const absl::Time now = absl::Now();
    if (now >= deadline) return false;
    if (eligibility_mu_.AwaitWithTimeout(absl::Condition(&woken),
                                         std::min(kReplicaPoll, deadline - now))) {
      return true;
    }
  }
  return false;
}

void WorkerDaemon::ReportEvaluation(const v1::Assignment& a, const std::string& worker_id,
                                    const RoundOutcome& out, const std::atomic<bool>* cancelled) {
  v1::ReportProgressRequest report;
  report.set_worker_id(JobWorkerId(a.job_id(), worker_id));
  report.set_job_id(a.job_id());
  report.set_generation(a.generation());
  report.set_evaluated_version(out.version);
  report.mutable_progress()->set_test_accuracy(out.test_accuracy);
  LOG(INFO) << "job " << a.job_id() << ": parameters v" << out.version << " test accuracy "
            << out.test_accuracy;
  Report(report, cancelled);
}

absl::Status WorkerDaemon::RunReplica(const v1::Assignment& a, const std::string& worker_id,
                                      const std::atomic<bool>* cancelled) {
  // OpenMP's thread count is per thread: set it on this job thread too
  // (bench/run_edge_agent.sh found --threads=1 agents computing on two).
  SetComputeThreads(options_.threads);
  // The start-up (the data set load) is compute too: a lapse stops it, and
  // it goes on from where it stopped once the vehicle is eligible again.
  DatasetLoader loader(a.spec().dataset(), a.spec().seed());
  const absl::Time started = absl::Now();
  int preempted = 0;
  std::optional<DatasetSplits> data;
  while (!data) {
    if (cancelled->load() || stop_.HasBeenNotified()) return absl::OkStatus();
    compute_stop_.store(false);  // lowered before eligibility is read (below)
    if (!Eligible()) {
      WaitForEligibility(absl::Seconds(5), cancelled);
      continue;
    }
    computing_.store(true);
    absl::StatusOr<DatasetSplits> loaded = loader.Load(&compute_stop_);
    computing_.store(false);
    if (loaded.ok()) {
      data = *std::move(loaded);
    } else if (!absl::IsCancelled(loaded.status())) {
      return loaded.status();
    } else {
      ++preempted;
      LOG(INFO) << "job " << a.job_id() << ": start-up preempted (" << loaded.status().message()
                << "); it goes on once eligible";
    }
  }
  ASSIGN_OR_RETURN(std::unique_ptr<ReplicaTrainer> trainer,
                   ReplicaTrainer::Create(a.spec(), a.rank(), *std::move(data)));
  LOG(INFO) << "job " << a.job_id() << ": trainer ready, " << absl::Now() - started
            << " after the assignment (start-up preempted " << preempted << " times)";
  {
    absl::MutexLock lock(&mu_);
    if (current_.cancel.get() == cancelled) current_.ready = true;
  }
  RoundClientOptions options;
  options.worker_id = worker_id;
  options.job_id = a.job_id();
  options.chunk_bytes = options_.round_chunk_bytes;
  RoundClient client(a.spec(), coordinator_, trainer.get(), options);
  absl::Duration backoff = absl::Milliseconds(100);
  while (!cancelled->load() && !stop_.HasBeenNotified()) {
    // Lowered before eligibility is read: a lapse after the read raises it
    // again, so no preemption is missed.
    compute_stop_.store(false);
    if (!Eligible()) {
      WaitForEligibility(absl::Seconds(5), cancelled);
      continue;
    }
    client.set_worker_id(JobWorkerId(a.job_id(), worker_id));  // re-registered: a new id
    computing_.store(true);
    absl::StatusOr<RoundOutcome> out = client.RunOnce(&compute_stop_);
    computing_.store(false);
    if (!out.ok()) {
      LOG(WARNING) << "job " << a.job_id() << ": round failed here: " << out.status()
                   << "; again in " << backoff;
      // Woken by a registration (the coordinator is back) or a flip: the
      // backoff starts again from its floor.
      const bool woken = WaitForEligibility(backoff, cancelled);
      backoff = woken ? absl::Milliseconds(100) : std::min(backoff * 2, kMaxBackoff);
      continue;
    }
    backoff = absl::Milliseconds(100);
    switch (out->kind) {
      case RoundOutcome::kJobEnded:
        LOG(INFO) << "job " << a.job_id() << ": " << out->reason;
        return absl::OkStatus();
      case RoundOutcome::kWait:
        WaitForEligibility(out->retry_after, cancelled);
        break;
      case RoundOutcome::kEvaluated:
        ReportEvaluation(a, worker_id, *out, cancelled);
        break;
      default:
        LOG(INFO) << "job " << a.job_id() << " round " << out->round << ": "
                  << (out->kind == RoundOutcome::kPushed     ? "pushed"
                      : out->kind == RoundOutcome::kWithdrew ? "withdrew"
                                                             : "refused")
                  << " after " << out->result.steps_done << " inner steps, " << out->bytes_fetched
                  << " bytes in, " << out->bytes_pushed << " out"
                  << (out->retried > 0
                          ? absl::StrCat(", ", out->retried, " calls retried after a cut link")
                          : "")
                  << (out->reason.empty() ? "" : ": ") << out->reason;
    }
  }
  return absl::OkStatus();
}

}  // namespace nightshift
