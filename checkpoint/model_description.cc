#include "checkpoint/model_description.h"

#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/text_format.h"
#include "spec/tensors.h"

namespace nightshift {
namespace {

// The most values one sample may hold (a 4096x4096 RGB image is 50M):
// bounds what a model file can make a reader allocate per sample.
constexpr int64_t kMaxSampleValues = int64_t{1} << 26;

}  // namespace

ModelDescription DescribeModel(const v1::JobSpec& spec, const Shape& sample_shape) {
  ModelDescription d;
  d.model = spec.model();
  d.input_shape = sample_shape;
  if (spec.dataset().has_idx()) {
    d.normalize_mean = spec.dataset().idx().normalize_mean();
    d.normalize_std = spec.dataset().idx().normalize_std();
  }
  return d;
}

void AddModelDescription(const ModelDescription& d, SafetensorsWriter* w) {
  google::protobuf::TextFormat::Printer printer;
  printer.SetSingleLineMode(true);
  std::string model;
  printer.PrintToString(d.model, &model);
  w->AddMetadata("model_spec", model);
  w->AddMetadata("input_shape", absl::StrJoin(d.input_shape, ","));
  // %.9g: every float reads back exactly.
  w->AddMetadata("normalize_mean", absl::StrFormat("%.9g", d.normalize_mean));
  w->AddMetadata("normalize_std", absl::StrFormat("%.9g", d.normalize_std));
}

absl::StatusOr<ModelDescription> ReadModelDescription(const SafetensorsFile& file,
                                                      const std::string& path) {
  const auto& md = file.metadata();
  auto get = [&](const char* key) -> absl::StatusOr<std::string> {
    auto it = md.find(key);
    if (it == md.end()) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": __metadata__.", key,
          " is missing: the file does not describe its model (written before model files did, "
          "or not by Nightshift)"));
    }
    return it->second;
  };
  auto bad = [&](const char* key, const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": __metadata__.", key, ": ", why));
  };
  ModelDescription d;
  absl::StatusOr<std::string> model = get("model_spec");
  if (!model.ok()) return model.status();
  if (!google::protobuf::TextFormat::ParseFromString(*model, &d.model)) {
    return bad("model_spec", "not a nightshift.v1.ModelSpec in text format");
  }
  absl::StatusOr<std::string> shape = get("input_shape");
  if (!shape.ok()) return shape.status();
  int64_t values = 1;
  for (absl::string_view dim : absl::StrSplit(*shape, ',')) {
    int64_t n = 0;
    if (!absl::SimpleAtoi(dim, &n) || n <= 0 || n > kMaxSampleValues) {
      return bad("input_shape", absl::StrCat("'", *shape, "' is not a list of positive sizes"));
    }
    d.input_shape.push_back(n);
    values *= n;  // at most kMaxSampleValues^2: no overflow before the check below
    if (values > kMaxSampleValues || d.input_shape.size() > 3) {
      return bad("input_shape", absl::StrCat("'", *shape, "' is over ", kMaxSampleValues,
                                             " values or 3 dimensions per sample"));
    }
  }
  for (auto [key, out] : {std::pair<const char*, float*>{"normalize_mean", &d.normalize_mean},
                          std::pair<const char*, float*>{"normalize_std", &d.normalize_std}}) {
    absl::StatusOr<std::string> v = get(key);
    if (!v.ok()) return v.status();
    if (!absl::SimpleAtof(*v, out)) return bad(key, absl::StrCat("'", *v, "' is not a number"));
  }
  if (d.normalize_std < 0) return bad("normalize_std", "negative");
  return d;
}

absl::StatusOr<ModelDescription> CheckModelFile(const SafetensorsFile& file,
                                                const std::string& path) {
  absl::StatusOr<ModelDescription> d = ReadModelDescription(file, path);
  if (!d.ok()) return d.status();
  // The parameters the description implies, checked against the file's
  // tensors before anything is allocated: a file cannot make the model
  // larger than itself.
  absl::StatusOr<std::vector<TensorSpec>> expected =
      ExpectedModelParameters(d->model, d->input_shape);
  if (!expected.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": __metadata__.model_spec: ", expected.status().message()));
  }
  for (const TensorSpec& t : *expected) {
    auto it = file.tensors().find(t.name);
    if (it == file.tensors().end()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": no tensor named ", t.name));
    }
    if (it->second.shape != t.shape) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": tensor ", t.name, " has shape ", ShapeToString(it->second.shape),
                       ", __metadata__.model_spec needs ", ShapeToString(t.shape)));
    }
  }
  return d;
}

}  // namespace nightshift
