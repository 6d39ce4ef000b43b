// Dataset: labelled images in memory, loaded from a DatasetSpec.
//
// Images are float32 [N, C, H, W] (IDX files give C = 1), scaled to [0, 1]
// and optionally standardized; labels are int32 in [0, num_classes).
// LoadDataset reads the train and test splits (IDX files, or the synthetic
// set generated from its seed) and checks that image and label counts match
// and that every label fits the class count, naming the file on failure.
// Immutable after loading; safe to read from many threads.
#ifndef NIGHTSHIFT_DATA_DATASET_H_
#define NIGHTSHIFT_DATA_DATASET_H_

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "kernels/tensor.h"
#include "nightshift/v1/job.pb.h"
#include "spec/defaults.h"

namespace nightshift {

struct Dataset {
  Shape sample_shape;  // e.g. {1, 28, 28}
  int64_t num_classes = 0;
  Tensor images;  // [N, sample_shape...]
  std::vector<int32_t> labels;

  int64_t size() const { return static_cast<int64_t>(labels.size()); }
};

struct DatasetSplits {
  Dataset train;
  Dataset test;
};

// `job_seed` seeds the synthetic set when its own seed is 0. With `stop`,
// a raised flag ends the load of IDX files with CANCELLED (ReadIdxFile).
absl::StatusOr<DatasetSplits> LoadDataset(const v1::DatasetSpec& spec, uint64_t job_seed,
                                          const std::atomic<bool>* stop = nullptr);

// Copies the samples at `indices` into `images` ([n, sample_shape...]) and
// `labels`.
void GatherBatch(const Dataset& dataset, absl::Span<const int64_t> indices, Tensor* images,
                 std::vector<int32_t>* labels);

}  // namespace nightshift

#endif  // NIGHTSHIFT_DATA_DATASET_H_
