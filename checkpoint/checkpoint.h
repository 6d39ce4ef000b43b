// Checkpoints: a model's parameters, its optimizer's state and where
// training stands, in one safetensors file (checkpoint/safetensors.h).
//
// Tensors: every parameter under its model name ("layers.0.weight"), and
// every optimizer buffer as "optimizer.<buffer>.<parameter name>"
// ("optimizer.momentum_buffer.layers.0.weight"). Metadata (strings):
// format = "nightshift.checkpoint.v1", step (optimizer updates done, i.e.
// the next global step to run), epoch, seed, optimizer_steps and
// spec_hash (JobSpecHash of the spec that wrote it).
//
// Loading checks the whole file — format, hash, every name and shape —
// before it changes anything, so a bad file leaves model and optimizer as
// they were.
#ifndef NIGHTSHIFT_CHECKPOINT_CHECKPOINT_H_
#define NIGHTSHIFT_CHECKPOINT_CHECKPOINT_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "checkpoint/model_description.h"
#include "kernels/model.h"
#include "kernels/optimizer.h"
#include "nightshift/v1/job.pb.h"

namespace nightshift {

struct CheckpointMeta {
  int64_t step = 0;
  int64_t epoch = 0;
  uint64_t seed = 0;
  std::string spec_hash;
};

// A hex hash of the fields that decide the trajectory of training (model,
// data set, optimizer, schedule, batch size, duration, seed). Fields that
// do not (name, eval and checkpoint intervals, pools, worker counts, sync
// mode) are left out, so a resumed run may change them.
std::string JobSpecHash(const v1::JobSpec& spec);

absl::Status SaveCheckpoint(const std::string& path, const Model& model, Optimizer& optimizer,
                            const CheckpointMeta& meta);

// Restores parameters and optimizer state. FAILED_PRECONDITION if the file
// was written for another spec (hash differs from `expected_spec_hash`).
absl::StatusOr<CheckpointMeta> LoadCheckpoint(const std::string& path,
                                              const std::string& expected_spec_hash, Model* model,
                                              Optimizer* optimizer);

// Parameters only (the exported model), with the same metadata keys and,
// given one, the model's description (checkpoint/model_description.h), which
// lets the file run on its own.
absl::Status SaveModelParameters(const std::string& path, const Model& model,
                                 const CheckpointMeta& meta,
                                 const ModelDescription* description = nullptr);

}  // namespace nightshift

#endif  // NIGHTSHIFT_CHECKPOINT_CHECKPOINT_H_
