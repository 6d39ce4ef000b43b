// What an unset JobSpec field means: the one home of every default that
// more than one component applies (the scheduler, the worker daemon, the
// trainer, validation). A zero or empty field in the spec means "the
// default"; these functions say which value that is. Pure functions.
#ifndef NIGHTSHIFT_SPEC_DEFAULTS_H_
#define NIGHTSHIFT_SPEC_DEFAULTS_H_

#include <algorithm>
#include <cstdint>

#include "kernels/shape.h"
#include "nightshift/v1/job.pb.h"

namespace nightshift {

// Where IDX files are read from when dataset.idx.dir is empty
// (Debian's dataset-fashion-mnist).
inline constexpr char kDefaultDatasetDir[] = "/usr/share/datasets/fashion-mnist";

// Steps between rebalances of the batch split when
// sync.allreduce.rebalance_interval_steps is 0.
inline constexpr int64_t kDefaultRebalanceIntervalSteps = 50;

// min_workers: at least 1.
inline int MinWorkers(const v1::JobSpec& spec) { return std::max(1, spec.min_workers()); }
// max_workers: 0 means min_workers.
inline int MaxWorkers(const v1::JobSpec& spec) {
  return std::max(MinWorkers(spec), spec.max_workers());
}

// wait_for_workers_seconds: 0 means 120 s — long enough for a reclaimed
// machine's replacement or a restarted daemon to register.
inline constexpr int kDefaultWaitForWorkersSeconds = 120;
inline int WaitForWorkersSeconds(const v1::JobSpec& spec) {
  return spec.wait_for_workers_seconds() > 0 ? spec.wait_for_workers_seconds()
                                             : kDefaultWaitForWorkersSeconds;
}

// checkpoint_period_seconds: 0 means 600 s.
inline constexpr int kDefaultCheckpointPeriodSeconds = 600;
inline int CheckpointPeriodSeconds(const v1::JobSpec& spec) {
  return spec.checkpoint_period_seconds() > 0 ? spec.checkpoint_period_seconds()
                                              : kDefaultCheckpointPeriodSeconds;
}

// Whether a worker of `pool` may run `spec`: no pools listed means the
// data-center pool only; edge workers only for diloco jobs.
inline bool PoolAllowed(const v1::JobSpec& spec, v1::WorkerPool pool) {
  if (spec.pools_size() == 0) return pool == v1::WORKER_POOL_DATACENTER;
  if (!spec.sync().has_diloco() && pool == v1::WORKER_POOL_EDGE) return false;
  return std::find(spec.pools().begin(), spec.pools().end(), pool) != spec.pools().end();
}

// Steps between rebalances of a data-parallel job's batch split; 0 when
// the split is even and never rebalanced (sync.allreduce.even_split).
inline int64_t RebalanceIntervalSteps(const v1::JobSpec& spec) {
  const v1::AllReduceSync& sync = spec.sync().allreduce();
  if (sync.even_split()) return 0;
  return sync.rebalance_interval_steps() > 0 ? sync.rebalance_interval_steps()
                                             : kDefaultRebalanceIntervalSteps;
}

// The per-sample input shape and class count a spec's data set will
// produce, without reading any file (IDX files are taken to be 28×28 with
// 10 classes, as MNIST and Fashion-MNIST are; loading checks the files).
struct DatasetShape {
  Shape sample_shape;
  int64_t num_classes;
};
inline DatasetShape ExpectedDatasetShape(const v1::DatasetSpec& spec) {
  if (spec.has_synthetic()) {
    const v1::SyntheticDataset& s = spec.synthetic();
    return {{s.channels(), s.height(), s.width()}, s.classes()};
  }
  return {{1, 28, 28}, 10};
}

}  // namespace nightshift

#endif  // NIGHTSHIFT_SPEC_DEFAULTS_H_
