#include "cli/predict_command.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "checkpoint/model_file.h"
#include "data/idx_reader.h"
#include "kernels/threads.h"

namespace nightshift {
namespace {

struct Inputs {
  Tensor images;                // [N, input_shape...], scaled as in training
  std::vector<int32_t> labels;  // empty: none given
};

absl::StatusOr<Inputs> ReadInputs(const ModelDescription& d, int64_t classes,
                                  const std::string& images_path, const std::string& labels_path) {
  absl::StatusOr<IdxArray> images = ReadIdxFile(images_path);
  if (!images.ok()) return images.status();
  const int64_t per_sample = NumElements(d.input_shape);
  const int64_t n = images->dims.empty() ? 0 : images->dims[0];
  if (n == 0 || static_cast<int64_t>(images->data.size()) != n * per_sample) {
    return absl::InvalidArgumentError(
        absl::StrCat(images_path, ": holds an array of [", absl::StrJoin(images->dims, ", "),
                     "], not images the model takes: [N, ", absl::StrJoin(d.input_shape, ", "),
                     "] (", per_sample, " values per image)"));
  }
  Shape shape = {n};
  shape.insert(shape.end(), d.input_shape.begin(), d.input_shape.end());
  Inputs in{Tensor(shape), {}};
  const float std = d.normalize_std > 0 ? d.normalize_std : 1.f;
  const float mean = d.normalize_std > 0 ? d.normalize_mean : 0.f;
  float* out = in.images.data();
  for (size_t i = 0; i < images->data.size(); ++i) out[i] = (images->data[i] / 255.f - mean) / std;
  if (labels_path.empty()) return in;
  absl::StatusOr<IdxArray> labels = ReadIdxFile(labels_path);
  if (!labels.ok()) return labels.status();
  if (labels->dims.size() != 1 || labels->dims[0] != n) {
    return absl::InvalidArgumentError(
        absl::StrCat(labels_path, ": ", labels->dims.empty() ? 0 : labels->dims[0],
                     " labels for the ", n, " images of ", images_path));
  }
  for (size_t i = 0; i < labels->data.size(); ++i) {
    if (labels->data[i] >= classes) {
      return absl::InvalidArgumentError(absl::StrCat(labels_path, ": label ", labels->data[i],
                                                     " of sample ", i, " is not below the ",
                                                     classes, " classes of the model"));
    }
    in.labels.push_back(labels->data[i]);
  }
  return in;
}

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  const size_t k = std::min(v.size() - 1, static_cast<size_t>(q * (v.size() - 1) + 0.5));
  std::nth_element(v.begin(), v.begin() + k, v.end());
  return v[k];
}

}  // namespace

int RunPredict(const std::vector<std::string>& args, const PredictFlags& flags) {
  if (args.size() < 2 || args.size() > 3 || flags.batch_size < 1 || flags.repeat < 1) {
    std::fprintf(stderr,
                 "usage: nightshift predict MODEL.safetensors IDX_IMAGES [IDX_LABELS] "
                 "[--batch_size=N>=1] [--repeat=R>=1] [--threads=T]\n");
    return 2;
  }
  SetComputeThreads(flags.threads);
  absl::StatusOr<LoadedModel> loaded = LoadModelFile(args[0]);
  if (!loaded.ok()) {
    std::fprintf(stderr, "nightshift predict: %s\n", loaded.status().ToString().c_str());
    return 2;
  }
  Model& model = *loaded->model;
  const ModelDescription& d = loaded->description;
  absl::StatusOr<Inputs> in =
      ReadInputs(d, model.num_classes(), args[1], args.size() > 2 ? args[2] : "");
  if (!in.ok()) {
    std::fprintf(stderr, "nightshift predict: %s\n", in.status().ToString().c_str());
    return 2;
  }
  const int64_t n = in->images.shape()[0];
  const int64_t per_sample = NumElements(d.input_shape);
  std::printf("model %s: %d layers, %d parameters, input %s, %d classes\n", args[0].c_str(),
              d.model.layers_size(), static_cast<int>(model.num_parameters()),
              ShapeToString(d.input_shape).c_str(), static_cast<int>(model.num_classes()));

  const int64_t batch = std::min<int64_t>(flags.batch_size, n);
  auto view = [&](int64_t first, int64_t count) {
    Shape shape = {count};
    shape.insert(shape.end(), d.input_shape.begin(), d.input_shape.end());
    return Tensor::View(shape, in->images.data() + first * per_sample);
  };
  model.Forward(view(0, batch));  // primitives are created here, untimed

  std::vector<double> batch_seconds;
  int64_t correct = 0, samples = 0;
  const absl::Time start = absl::Now();
  for (int pass = 0; pass < flags.repeat; ++pass) {
    for (int64_t first = 0; first < n; first += batch) {
      const int64_t count = std::min(batch, n - first);
      const absl::Time t0 = absl::Now();
      const Tensor& logits = model.Forward(view(first, count));
      const double took = absl::ToDoubleSeconds(absl::Now() - t0);
      if (count == batch) batch_seconds.push_back(took);
      samples += count;
      if (in->labels.empty() || pass > 0) continue;
      const int64_t classes = model.num_classes();
      for (int64_t i = 0; i < count; ++i) {
        const float* row = logits.data() + i * classes;
        const int64_t best = std::max_element(row, row + classes) - row;
        correct += best == in->labels[first + i];
      }
    }
  }
  const double total = absl::ToDoubleSeconds(absl::Now() - start);
  if (!in->labels.empty()) {
    std::printf("accuracy %.2f%% (%d of %d images)\n", 100.0 * correct / n,
                static_cast<int>(correct), static_cast<int>(n));
  }
  std::printf(
      "batch %d: latency per batch p50 %.4f ms, p99 %.4f ms; %.3f us per sample; %.0f samples/s "
      "(%d images x %d passes, %d threads)\n",
      static_cast<int>(batch), 1e3 * Percentile(batch_seconds, 0.5),
      1e3 * Percentile(batch_seconds, 0.99), 1e6 * total / samples, samples / total,
      static_cast<int>(n), flags.repeat, ComputeThreads());
  return 0;
}

}  // namespace nightshift
