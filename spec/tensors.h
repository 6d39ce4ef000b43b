// The tensors a job's checkpoints and model hold, from its spec alone (no
// oneDNN, no data files): the coordinator checks every upload against
// them before it stores anything.
//
// Parameters are named as kernels/model.cc names them, layers.I.weight and
// layers.I.bias (I: the layer's index in model.layers), with the shapes
// the layers give them (dense: [units, in], [units]; conv2d: [filters,
// in_channels, k, k], [filters]); optimizer state as checkpoint/
// checkpoint.cc names it, optimizer.BUFFER.PARAM with the parameter's
// shape. checkpoint_test checks both against real files.
#ifndef NIGHTSHIFT_SPEC_TENSORS_H_
#define NIGHTSHIFT_SPEC_TENSORS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/shape.h"
#include "nightshift/v1/job.pb.h"

namespace nightshift {

struct TensorSpec {
  std::string name;
  Shape shape;
};

// INVALID_ARGUMENT for a spec whose shapes do not infer.
absl::StatusOr<std::vector<TensorSpec>> ExpectedParameters(const v1::JobSpec& spec);
// The same for `model` on samples of `input_shape` (a model file's own
// description: checkpoint/model_description.h).
absl::StatusOr<std::vector<TensorSpec>> ExpectedModelParameters(const v1::ModelSpec& model,
                                                                Shape input_shape);
// The optimizer's state buffers (e.g. "exp_avg"), in checkpoint order.
std::vector<std::string> OptimizerStateBuffers(const v1::OptimizerSpec& optimizer);
// Parameters, then each buffer's copy of them (a checkpoint); or the
// parameters alone (`model_only`: an exported model).
absl::StatusOr<std::vector<TensorSpec>> ExpectedCheckpointTensors(const v1::JobSpec& spec,
                                                                  bool model_only);

// The parameters Model::Create starts from (the job seed's PyTorch-default
// init, kernels/model.cc), flat in ExpectedParameters order: what a diloco
// job's coordinator holds before its first round. model_test checks them
// against a real Model.
absl::StatusOr<std::vector<float>> InitialParameters(const v1::JobSpec& spec);

}  // namespace nightshift

#endif  // NIGHTSHIFT_SPEC_TENSORS_H_
