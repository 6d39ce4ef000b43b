// Model descriptions: what makes a model file run without its job. The
// network (its ModelSpec in text format), one sample's shape and the input
// scaling travel in the file's __metadata__ beside the parameters, so
// `nightshift predict`, an edge agent that fetched a published version
// (worker/edge/model_follower.h), or anyone else rebuilds the model from
// the file alone. No oneDNN here: the coordinator writes and checks
// descriptions too (DiLoCo models, published versions);
// checkpoint/model_file.h builds the model.
//
// Metadata keys (strings): model_spec (v1.ModelSpec, text format),
// input_shape ("1,28,28"), normalize_mean and normalize_std (pixels are
// scaled to [0, 1], then (x - mean) / std when std > 0, as data/dataset.h
// does for training; written with 9 significant digits, so they read back
// exactly). Older files without them are refused with a message that says
// so.
#ifndef NIGHTSHIFT_CHECKPOINT_MODEL_DESCRIPTION_H_
#define NIGHTSHIFT_CHECKPOINT_MODEL_DESCRIPTION_H_

#include <string>

#include "absl/status/statusor.h"
#include "checkpoint/safetensors.h"
#include "kernels/shape.h"
#include "nightshift/v1/job.pb.h"

namespace nightshift {

struct ModelDescription {
  v1::ModelSpec model;
  Shape input_shape;  // one sample: {channels, height, width}
  float normalize_mean = 0;
  float normalize_std = 0;  // 0: none
};

// The description of `spec`'s model trained on samples of `sample_shape`.
ModelDescription DescribeModel(const v1::JobSpec& spec, const Shape& sample_shape);

void AddModelDescription(const ModelDescription& description, SafetensorsWriter* writer);

// INVALID_ARGUMENT naming `path` and the key that is missing or malformed.
// One sample is bounded (at most 3 dimensions and 2^26 values).
absl::StatusOr<ModelDescription> ReadModelDescription(const SafetensorsFile& file,
                                                      const std::string& path);

// ReadModelDescription, then every parameter the description implies
// present in `file` with its shape (INVALID_ARGUMENT naming `path` and the
// tensor), so that a file cannot make a reader build a model larger than
// the file itself.
absl::StatusOr<ModelDescription> CheckModelFile(const SafetensorsFile& file,
                                                const std::string& path);

}  // namespace nightshift

#endif  // NIGHTSHIFT_CHECKPOINT_MODEL_DESCRIPTION_H_
