// A diloco job's round checkpoint: the RoundKeeper's snapshot as one
// safetensors file, written after every round (temporary file renamed
// into place: a crash leaves the previous round's file whole).
//
//   layers.I.weight, layers.I.bias      the outer parameters θ_round,
//                                       named and shaped as the model's
//                                       (the file loads as a model)
//   outer_momentum.<parameter name>     the outer optimizer's momentum
//   outer_delta.<parameter name>        the last aggregate (centered
//                                       clipping's centre), if any
//   metadata  round = rounds completed; shards = "name=shard,..." sorted
//             by name (worker names are [A-Za-z0-9._-], no '=' or ',')
//
// Reading checks every tensor against the spec (spec/tensors.h) and
// names the file and tensor that does not fit.
#ifndef NIGHTSHIFT_COORDINATOR_ROUNDS_ROUND_CHECKPOINT_H_
#define NIGHTSHIFT_COORDINATOR_ROUNDS_ROUND_CHECKPOINT_H_

#include <string>

#include "absl/status/statusor.h"
#include "coordinator/rounds/round_keeper.h"
#include "nightshift/v1/job.pb.h"

namespace nightshift::coordinator::rounds {

absl::Status WriteRoundCheckpoint(const std::string& path, const v1::JobSpec& spec,
                                  const RoundSnapshot& snapshot);
// The outer parameters alone, as the job's exported model, describing
// itself (checkpoint/model_description.h) as a trainer's model file does.
absl::Status WriteRoundModel(const std::string& path, const v1::JobSpec& spec,
                             const std::vector<float>& parameters);
absl::StatusOr<RoundSnapshot> ReadRoundCheckpoint(const std::string& path, const v1::JobSpec& spec);

}  // namespace nightshift::coordinator::rounds

#endif  // NIGHTSHIFT_COORDINATOR_ROUNDS_ROUND_CHECKPOINT_H_
