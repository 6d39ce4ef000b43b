#include "data/dataset.h"

#include <algorithm>
#include <cstring>
#include <optional>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "data/idx_reader.h"
#include "kernels/random.h"

namespace nightshift {
namespace {

std::string Resolve(const std::string& dir, const std::string& name, const char* fallback) {
  const std::string file = name.empty() ? fallback : name;
  if (!file.empty() && file[0] == '/') return file;
  return absl::StrCat(dir.empty() ? kDefaultDatasetDir : dir, "/", file);
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

struct DatasetLoader::SplitLoad {
  SplitLoad(std::string images, std::string labels)
      : images_path(images), labels_path(labels), images_reader(images), labels_reader(labels) {}

  // Reads on; a Dataset in `dataset` once done.
  absl::Status Continue(const v1::IdxDataset& spec, const std::atomic<bool>* stop);

  const std::string images_path, labels_path;
  IdxFileReader images_reader, labels_reader;
  std::optional<IdxArray> images, labels;
  std::optional<Dataset> dataset;  // allocated once both files are read
  size_t scaled = 0;               // images->data values scaled into dataset
  bool done = false;
  int64_t pieces = 0;
};

absl::Status DatasetLoader::SplitLoad::Continue(const v1::IdxDataset& spec,
                                                const std::atomic<bool>* stop) {
  if (!images) {
    ASSIGN_OR_RETURN(images, images_reader.Read(stop));
  }
  if (!labels) {
    ASSIGN_OR_RETURN(labels, labels_reader.Read(stop));
  }
  if (!dataset) {
    if (images->dims.size() != 3) {
      return absl::InvalidArgumentError(
          absl::StrCat(images_path, ": expected 3 dimensions [count, height, width], got ",
                       images->dims.size()));
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
    Dataset& d = dataset.emplace();
    d.sample_shape = {1, images->dims[1], images->dims[2]};
    // Uninitialized: the scaling below writes every value, in pieces
    // between which a stop is seen (a zero fill here is 0.5 s that is not).
    d.images = Tensor::Uninitialized(Shape{images->dims[0], 1, images->dims[1], images->dims[2]});
    d.labels.assign(labels->data.begin(), labels->data.end());
    d.num_classes = 0;
    for (int32_t l : d.labels) d.num_classes = std::max<int64_t>(d.num_classes, l + 1);
  }
  const float std = spec.normalize_std() > 0 ? spec.normalize_std() : 1.f;
  const float mean = spec.normalize_std() > 0 ? spec.normalize_mean() : 0.f;
  const std::vector<uint8_t>& in = images->data;
  float* out = dataset->images.data();
  constexpr size_t kScalePiece = 1 << 20;
  while (scaled < in.size()) {
    const size_t end = std::min(in.size(), scaled + kScalePiece);
    for (size_t i = scaled; i < end; ++i) out[i] = (in[i] / 255.f - mean) / std;
    scaled = end;
    ++pieces;
    if (scaled < in.size() && stop != nullptr && stop->load(std::memory_order_relaxed)) {
      return absl::CancelledError(absl::StrCat(images_path, ": scaling stopped at value ", scaled,
                                               " of ", in.size(), "; it goes on from there"));
    }
  }
  images.reset();  // the bytes are no longer needed
  done = true;
  return absl::OkStatus();
}

DatasetLoader::DatasetLoader(const v1::DatasetSpec& spec, uint64_t job_seed)
    : spec_(spec), job_seed_(job_seed) {
  if (spec.has_synthetic()) return;
  const v1::IdxDataset& idx = spec.idx();
  const std::string& dir = idx.dir();
  train_ =
      std::make_unique<SplitLoad>(Resolve(dir, idx.train_images(), "train-images-idx3-ubyte.gz"),
                                  Resolve(dir, idx.train_labels(), "train-labels-idx1-ubyte.gz"));
  test_ = std::make_unique<SplitLoad>(Resolve(dir, idx.test_images(), "t10k-images-idx3-ubyte.gz"),
                                      Resolve(dir, idx.test_labels(), "t10k-labels-idx1-ubyte.gz"));
}

DatasetLoader::~DatasetLoader() = default;

int64_t DatasetLoader::pieces() const {
  if (train_ == nullptr) return 0;
  int64_t n = 0;
  for (const SplitLoad* s : {train_.get(), test_.get()}) {
    n += s->pieces + s->images_reader.pieces() + s->labels_reader.pieces();
  }
  return n;
}

absl::StatusOr<DatasetSplits> DatasetLoader::Load(const std::atomic<bool>* stop) {
  if (!failed_.ok()) return failed_;
  if (returned_) return absl::FailedPreconditionError("the data set was already loaded");
  DatasetSplits splits;
  if (spec_.has_synthetic()) {
    const v1::SyntheticDataset& s = spec_.synthetic();
    const uint64_t seed = s.seed() != 0 ? s.seed() : job_seed_;
    const int64_t per = int64_t{s.channels()} * s.height() * s.width();
    Rng rng({seed, 0x9407});
    std::vector<std::vector<float>> prototypes(s.classes(), std::vector<float>(per));
    for (auto& p : prototypes)
      for (float& v : p) v = static_cast<float>(rng.Normal());
    splits.train = MakeSynthetic(s, seed, s.train_examples(), 1, prototypes);
    splits.test = MakeSynthetic(s, seed, s.test_examples(), 2, prototypes);
    returned_ = true;
    return splits;
  }
  for (SplitLoad* split : {train_.get(), test_.get()}) {
    if (split->done) continue;
    absl::Status status = split->Continue(spec_.idx(), stop);
    if (!status.ok()) {
      if (!absl::IsCancelled(status)) failed_ = status;
      return status;
    }
  }
  Dataset& train = *train_->dataset;
  Dataset& test = *test_->dataset;
  if (test.sample_shape != train.sample_shape) {
    failed_ = absl::InvalidArgumentError(
        absl::StrCat("test images are ", ShapeToString(test.sample_shape), " but train images are ",
                     ShapeToString(train.sample_shape)));
    return failed_;
  }
  const int64_t classes = std::max(train.num_classes, test.num_classes);
  train.num_classes = test.num_classes = classes;
  splits.train = std::move(train);
  splits.test = std::move(test);
  returned_ = true;
  return splits;
}

absl::StatusOr<DatasetSplits> LoadDataset(const v1::DatasetSpec& spec, uint64_t job_seed,
                                          const std::atomic<bool>* stop) {
  return DatasetLoader(spec, job_seed).Load(stop);
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
