// PlanPlacements: which queued jobs start now, on which free workers.
//
// Jobs are considered in submission order (FIFO); a job starts when at
// least min_workers free workers of its pools are there, and takes up to
// max_workers of them, fastest first (they carry the largest shards). A
// job that cannot start yet does not hold back later jobs that can
// (backfill), so several jobs run at once on disjoint workers.
// `allreduce` jobs run on data-center workers only (edge workers cannot
// join a ring). A pure function.
#ifndef NIGHTSHIFT_COORDINATOR_SCHEDULER_H_
#define NIGHTSHIFT_COORDINATOR_SCHEDULER_H_

#include <string>
#include <vector>

#include "nightshift/v1/status.pb.h"

namespace nightshift::coordinator {

struct FreeWorker {
  std::string id;
  v1::WorkerPool pool;
  double samples_per_second;
};

struct Placement {
  std::string job_id;
  std::vector<FreeWorker> workers;  // rank order
};

std::vector<Placement> PlanPlacements(const std::vector<v1::JobStatus>& queued,
                                      std::vector<FreeWorker> free);

}  // namespace nightshift::coordinator

#endif  // NIGHTSHIFT_COORDINATOR_SCHEDULER_H_
