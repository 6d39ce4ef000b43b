// Replica shards: each DiLoCo replica's own part of the training set
// (job.proto ReplicaShards), a function of the labels, the shard count,
// the concentration alpha and the job seed alone — so an agent computes
// its shard itself and finds the same one after a restart.
//
//   alpha = 0 (IID)  a seeded permutation of all indices cut into
//                    `count` contiguous parts whose sizes differ by at
//                    most one.
//   alpha > 0        non-IID by class (Hsu, Qi & Brown 2019): for each
//                    class, its indices in a seeded order, split over the
//                    shards in proportions drawn from Dirichlet(alpha)
//                    (Gamma(alpha, 1) draws, normalised). Small alpha:
//                    each shard holds few classes; large: near IID.
//                    A shard left empty takes one index from the largest.
// Every index lands in exactly one shard; each shard's indices ascend.
// Pure functions.
#ifndef NIGHTSHIFT_DATA_REPLICA_SHARDS_H_
#define NIGHTSHIFT_DATA_REPLICA_SHARDS_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace nightshift {

// All `count` shards, by shard. INVALID_ARGUMENT for count < 1, more
// shards than samples, alpha < 0 or not finite, or a label outside
// [0, num_classes).
absl::StatusOr<std::vector<std::vector<int64_t>>> ReplicaShards(absl::Span<const int32_t> labels,
                                                                int num_classes, int count,
                                                                double alpha, uint64_t seed);

}  // namespace nightshift

#endif  // NIGHTSHIFT_DATA_REPLICA_SHARDS_H_
