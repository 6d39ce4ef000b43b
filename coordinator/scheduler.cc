#include "coordinator/scheduler.h"

#include <algorithm>

#include "spec/defaults.h"

namespace nightshift::coordinator {
std::vector<Placement> PlanPlacements(const std::vector<v1::JobStatus>& queued,
                                      std::vector<FreeWorker> free) {
  std::stable_sort(free.begin(), free.end(), [](const FreeWorker& a, const FreeWorker& b) {
    return a.samples_per_second > b.samples_per_second;
  });
  std::vector<Placement> plan;
  for (const v1::JobStatus& job : queued) {
    std::vector<size_t> eligible;
    for (size_t i = 0; i < free.size(); ++i) {
      if (PoolAllowed(job.spec(), free[i].pool)) eligible.push_back(i);
    }
    if (static_cast<int>(eligible.size()) < MinWorkers(job.spec())) continue;
    eligible.resize(std::min<size_t>(eligible.size(), MaxWorkers(job.spec())));
    Placement p{job.id(), {}};
    for (size_t i : eligible) p.workers.push_back(free[i]);
    for (size_t k = eligible.size(); k-- > 0;) free.erase(free.begin() + eligible[k]);
    plan.push_back(std::move(p));
  }
  return plan;
}

}  // namespace nightshift::coordinator
