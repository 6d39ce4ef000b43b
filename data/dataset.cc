#include "data/dataset.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "data/idx_reader.h"
#include "kernels/random.h"

namespace nightshift {
namespace {

std::string Resolve(const std::string& dir, const std::string& name, const char* fallback) {
  const std::string file = name.empty() ? fallback : name;
  if (!file.empty() && file[0] == '/') return file;
  return absl::StrCat(dir.empty() ? kDefaultDatasetDir : dir, "/", file);
}

absl::StatusOr<Dataset> LoadIdxSplit(const v1::IdxDataset& spec, const std::string& images_path,
                                     const std::string& labels_path,
                                     const std::atomic<bool>* stop) {
  absl::StatusOr<IdxArray> images = ReadIdxFile(images_path, stop);
  if (!images.ok()) return images.status();
  absl::StatusOr<IdxArray> labels = ReadIdxFile(labels_path, stop);
  if (!labels.ok()) return labels.status();
  if (images->dims.size() != 3) {
    return absl::InvalidArgumentError(absl::StrCat(
        images_path, ": expected 3 dimensions [count, height, width], got ", images->dims.size()));
  }
  if (labels->dims.size() != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(labels_path, ": expected 1 dimension [count], got ", labels->dims.size()));
  }
  if (images->dims[0] != labels->dims[0]) {
    return absl::InvalidArgumentError(
        absl::StrCat("image and label counts differ: ", images_path, " has ", images->dims[0],
                     " images, ", labels_path, " has ", labels->dims[0], " labels"));
  }
  Dataset d;
  d.sample_shape = {1, images->dims[1], images->dims[2]};
  d.images = Tensor(Shape{images->dims[0], 1, images->dims[1], images->dims[2]});
  const float std = spec.normalize_std() > 0 ? spec.normalize_std() : 1.f;
  const float mean = spec.normalize_std() > 0 ? spec.normalize_mean() : 0.f;
  float* out = d.images.data();
  for (size_t i = 0; i < images->data.size(); ++i) {
    out[i] = (images->data[i] / 255.f - mean) / std;
  }
  d.labels.assign(labels->data.begin(), labels->data.end());
  d.num_classes = 0;
  for (int32_t l : d.labels) d.num_classes = std::max<int64_t>(d.num_classes, l + 1);
  return d;
}

Dataset MakeSynthetic(const v1::SyntheticDataset& spec, uint64_t seed, int64_t count,
                      uint64_t stream, const std::vector<std::vector<float>>& prototypes) {
  Dataset d;
  d.sample_shape = {spec.channels(), spec.height(), spec.width()};
  d.num_classes = spec.classes();
  const int64_t per = NumElements(d.sample_shape);
  d.images = Tensor(Shape{count, spec.channels(), spec.height(), spec.width()});
  Rng rng({seed, stream});
  for (int64_t i = 0; i < count; ++i) {
    const int32_t label = static_cast<int32_t>(rng.Below(spec.classes()));
    d.labels.push_back(label);
    float* x = d.images.data() + i * per;
    for (int64_t j = 0; j < per; ++j) {
      x[j] = prototypes[label][j] + spec.noise() * static_cast<float>(rng.Normal());
    }
  }
  return d;
}

}  // namespace

absl::StatusOr<DatasetSplits> LoadDataset(const v1::DatasetSpec& spec, uint64_t job_seed,
                                          const std::atomic<bool>* stop) {
  DatasetSplits splits;
  if (spec.has_synthetic()) {
    const v1::SyntheticDataset& s = spec.synthetic();
    const uint64_t seed = s.seed() != 0 ? s.seed() : job_seed;
    const int64_t per = int64_t{s.channels()} * s.height() * s.width();
    Rng rng({seed, 0x9407});
    std::vector<std::vector<float>> prototypes(s.classes(), std::vector<float>(per));
    for (auto& p : prototypes)
      for (float& v : p) v = static_cast<float>(rng.Normal());
    splits.train = MakeSynthetic(s, seed, s.train_examples(), 1, prototypes);
    splits.test = MakeSynthetic(s, seed, s.test_examples(), 2, prototypes);
    return splits;
  }
  const v1::IdxDataset& idx = spec.idx();
  const std::string& dir = idx.dir();
  absl::StatusOr<Dataset> train =
      LoadIdxSplit(idx, Resolve(dir, idx.train_images(), "train-images-idx3-ubyte.gz"),
                   Resolve(dir, idx.train_labels(), "train-labels-idx1-ubyte.gz"), stop);
  if (!train.ok()) return train.status();
  absl::StatusOr<Dataset> test =
      LoadIdxSplit(idx, Resolve(dir, idx.test_images(), "t10k-images-idx3-ubyte.gz"),
                   Resolve(dir, idx.test_labels(), "t10k-labels-idx1-ubyte.gz"), stop);
  if (!test.ok()) return test.status();
  if (test->sample_shape != train->sample_shape) {
    return absl::InvalidArgumentError(
        absl::StrCat("test images are ", ShapeToString(test->sample_shape),
                     " but train images are ", ShapeToString(train->sample_shape)));
  }
  const int64_t classes = std::max(train->num_classes, test->num_classes);
  train->num_classes = test->num_classes = classes;
  splits.train = *std::move(train);
  splits.test = *std::move(test);
  return splits;
}

void GatherBatch(const Dataset& dataset, absl::Span<const int64_t> indices, Tensor* images,
                 std::vector<int32_t>* labels) {
  const int64_t n = static_cast<int64_t>(indices.size());
  Shape shape = {n};
  shape.insert(shape.end(), dataset.sample_shape.begin(), dataset.sample_shape.end());
  images->Resize(shape);
  labels->resize(n);
  const int64_t per = NumElements(dataset.sample_shape);
  for (int64_t i = 0; i < n; ++i) {
    std::memcpy(images->data() + i * per, dataset.images.data() + indices[i] * per,
                per * sizeof(float));
    (*labels)[i] = dataset.labels[indices[i]];
  }
}

}  // namespace nightshift
