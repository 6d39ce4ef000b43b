#include "checkpoint/model_file.h"

#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"

namespace nightshift {

absl::StatusOr<LoadedModel> LoadModelFile(const std::string& path) {
  absl::StatusOr<SafetensorsFile> file = SafetensorsFile::Read(path);
  if (!file.ok()) return file.status();
  LoadedModel loaded;
  absl::StatusOr<ModelDescription> d = CheckModelFile(*file, path);
  if (!d.ok()) return d.status();
  loaded.description = *std::move(d);
  absl::StatusOr<std::unique_ptr<Model>> model =
      Model::Create(loaded.description.model, loaded.description.input_shape, /*seed=*/0);
  if (!model.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": __metadata__.model_spec: ", model.status().message()));
  }
  for (Parameter& p : (*model)->parameters()) {
    absl::StatusOr<Tensor> t = file->GetFloat32(p.name);
    if (!t.ok()) return t.status();
    if (t->shape() != p.value.shape()) {  // spec/tensors.h and the model disagree: a bug
      return absl::InternalError(absl::StrCat(path, ": the model's ", p.name, " is ",
                                              ShapeToString(p.value.shape()), ", not ",
                                              ShapeToString(t->shape())));
    }
    std::memcpy(p.value.data(), t->data(), t->size() * sizeof(float));
  }
  loaded.model = *std::move(model);
  return loaded;
}

}  // namespace nightshift
