// DiLoCoSettings: a diloco job's sync.diloco with every default applied
// (job.proto documents each field and its default) — the one place the
// coordinator's round keeper and the edge agent's round client read them
// from, so both sides agree. Pure functions; the spec must be valid
// (ValidateJobSpec).
#ifndef NIGHTSHIFT_SPEC_DILOCO_H_
#define NIGHTSHIFT_SPEC_DILOCO_H_

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "nightshift/v1/job.pb.h"
#include "spec/defaults.h"

namespace nightshift {

struct DiLoCoSettings {
  int inner_steps = 0;
  int64_t rounds = 0;
  double outer_lr = 0.7;
  double outer_momentum = 0.9;
  bool outer_nesterov = true;
  v1::Aggregation aggregation = v1::AGGREGATION_MEAN;  // never UNSPECIFIED here
  double trim_fraction = 0.1;
  v1::DeltaEncoding delta_encoding = v1::DELTA_ENCODING_INT8_BLOCKWISE;
  int delta_block = 256;
  v1::WireDtype parameter_dtype = v1::WIRE_DTYPE_FLOAT32;
  int quorum = 1;
  int selected_per_round = 1;  // ceil(quorum * (1 + over_selection))
  int round_deadline_seconds = 300;
  int join_window_seconds = 0;  // 0: off
  int max_staleness = 1;
  int shard_count = 1;
  double dirichlet_alpha = 0;  // 0: IID
  int replica_batch_size = 0;
  double max_norm_ratio = 10;  // 0: off
  double min_cosine = -1;      // -1: off
  double direction_mads = 0;   // 0: off; 3 by default with the edge pool
  double min_partial_fraction = 0.5;
};

inline bool HasEdgePool(const v1::JobSpec& spec) {
  return std::find(spec.pools().begin(), spec.pools().end(), v1::WORKER_POOL_EDGE) !=
         spec.pools().end();
}

inline DiLoCoSettings ResolveDiLoCo(const v1::JobSpec& spec) {
  const v1::DiLoCoSync& d = spec.sync().diloco();
  DiLoCoSettings s;
  s.inner_steps = std::max(1, d.inner_steps());
  s.rounds = d.rounds() > 0 ? d.rounds() : (spec.steps() + s.inner_steps - 1) / s.inner_steps;
  if (d.outer_lr() > 0) s.outer_lr = d.outer_lr();
  if (d.has_outer_momentum()) s.outer_momentum = d.outer_momentum();
  if (d.has_outer_nesterov()) s.outer_nesterov = d.outer_nesterov();
  s.aggregation = d.aggregation();
  if (s.aggregation == v1::AGGREGATION_UNSPECIFIED) {
    s.aggregation = HasEdgePool(spec) ? v1::AGGREGATION_CENTERED_CLIP : v1::AGGREGATION_MEAN;
  }
  if (d.trim_fraction() > 0) s.trim_fraction = d.trim_fraction();
  if (d.delta_encoding() != v1::DELTA_ENCODING_UNSPECIFIED) s.delta_encoding = d.delta_encoding();
  if (d.delta_block() > 0) s.delta_block = d.delta_block();
  if (d.parameter_dtype() == v1::WIRE_DTYPE_BFLOAT16) s.parameter_dtype = v1::WIRE_DTYPE_BFLOAT16;
  s.quorum = d.quorum() > 0 ? d.quorum() : MinWorkers(spec);
  const double over = d.has_over_selection() ? d.over_selection() : 0.3;
  s.selected_per_round = static_cast<int>(std::ceil(s.quorum * (1 + over) - 1e-9));
  if (d.round_deadline_seconds() > 0) s.round_deadline_seconds = d.round_deadline_seconds();
  s.join_window_seconds = d.join_window_seconds();
  if (d.has_max_staleness()) s.max_staleness = d.max_staleness();
  s.shard_count = d.shards().count() > 0 ? d.shards().count() : MaxWorkers(spec);
  s.dirichlet_alpha = d.shards().dirichlet_alpha();
  s.replica_batch_size =
      d.replica_batch_size() > 0 ? d.replica_batch_size() : spec.global_batch_size();
  if (d.has_max_norm_ratio()) s.max_norm_ratio = d.max_norm_ratio();
  if (d.has_min_cosine()) s.min_cosine = d.min_cosine();
  s.direction_mads = d.has_direction_mads() ? d.direction_mads() : HasEdgePool(spec) ? 3 : 0;
  if (d.has_min_partial_fraction()) s.min_partial_fraction = d.min_partial_fraction();
  return s;
}

}  // namespace nightshift

#endif  // NIGHTSHIFT_SPEC_DILOCO_H_
