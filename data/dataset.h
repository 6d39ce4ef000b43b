// Dataset: labelled images in memory, loaded from a DatasetSpec.
//
// Images are float32 [N, C, H, W] (IDX files give C = 1), scaled to [0, 1]
// and optionally standardized; labels are int32 in [0, num_classes).
// LoadDataset reads the train and test splits (IDX files, or the synthetic
// set generated from its seed) and checks that image and label counts match
// and that every label fits the class count, naming the file on failure.
// Immutable after loading; safe to read from many threads.
//
// DatasetLoader is the same load in pieces that survive a stop (an edge
// agent's start-up, preempted by its vehicle's owner, goes on from where
// it stopped instead of starting again).
#ifndef NIGHTSHIFT_DATA_DATASET_H_
#define NIGHTSHIFT_DATA_DATASET_H_

#include <atomic>
#include <cstdint>
#include <memory>
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
// a raised flag ends the load of IDX files with CANCELLED (DatasetLoader).
absl::StatusOr<DatasetSplits> LoadDataset(const v1::DatasetSpec& spec, uint64_t job_seed,
                                          const std::atomic<bool>* stop = nullptr);

// LoadDataset in pieces: the four IDX files read by IdxFileReader, then
// each split's images scaled 1 Mi values at a time, `stop` read after each
// piece. Load() goes on from where the last call ended; a raised flag
// returns CANCELLED with the work so far kept, any other error is final
// (returned again). The splits are returned once. A synthetic set is
// generated in one piece. Not thread-safe.
class DatasetLoader {
 public:
  DatasetLoader(const v1::DatasetSpec& spec, uint64_t job_seed);
  ~DatasetLoader();
  DatasetLoader(const DatasetLoader&) = delete;
  DatasetLoader& operator=(const DatasetLoader&) = delete;

  absl::StatusOr<DatasetSplits> Load(const std::atomic<bool>* stop);

  // Pieces done so far, for tests and logs.
  int64_t pieces() const;

 private:
  struct SplitLoad;  // one split's files and scaling progress (dataset.cc)
  const v1::DatasetSpec spec_;
  const uint64_t job_seed_;
  std::unique_ptr<SplitLoad> train_, test_;
  bool returned_ = false;
  absl::Status failed_;
};

// Copies the samples at `indices` into `images` ([n, sample_shape...]) and
// `labels`.
void GatherBatch(const Dataset& dataset, absl::Span<const int64_t> indices, Tensor* images,
                 std::vector<int32_t>* labels);

}  // namespace nightshift

#endif  // NIGHTSHIFT_DATA_DATASET_H_
