// Model files that run without their job: LoadModelFile rebuilds the model
// a file describes (checkpoint/model_description.h) with the training
// kernels, its parameters in place — for `nightshift predict` and an edge
// agent checking a fetched model version before it keeps it.
#ifndef NIGHTSHIFT_CHECKPOINT_MODEL_FILE_H_
#define NIGHTSHIFT_CHECKPOINT_MODEL_FILE_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "checkpoint/model_description.h"
#include "kernels/model.h"

namespace nightshift {

struct LoadedModel {
  ModelDescription description;
  std::unique_ptr<Model> model;  // the file's parameters in place
};

// Reads, checks (CheckModelFile: every parameter present with its shape,
// before anything is allocated) and builds the model of the file at
// `path`; nothing half-loaded on an error.
absl::StatusOr<LoadedModel> LoadModelFile(const std::string& path);

}  // namespace nightshift

#endif  // NIGHTSHIFT_CHECKPOINT_MODEL_FILE_H_
