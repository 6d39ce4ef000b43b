// Reading and validating JobSpecs.
//
// LoadJobSpec reads a `nightshift.v1.JobSpec` from a `.textproto` (protobuf
// text format) or `.json` (proto3 JSON) file. ValidateJobSpec checks every
// field and the model's shapes against the data set's input shape, and
// returns INVALID_ARGUMENT whose message starts with the offending field's
// path, e.g. "optimizer.sgd.lr: must be > 0". Both are pure functions.
#ifndef NIGHTSHIFT_SPEC_JOB_SPEC_H_
#define NIGHTSHIFT_SPEC_JOB_SPEC_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nightshift/v1/job.pb.h"

namespace nightshift {

// Bounds every spec is held to, so that a valid-looking spec cannot make a
// worker (or the coordinator, storing and serving it) allocate without
// limit; each error names its bound.
inline constexpr size_t kMaxSpecBytes = 64 << 10;    // serialized
inline constexpr size_t kMaxSpecStringBytes = 4096;  // any string field
inline constexpr int kMaxLayers = 256;
// Parameters, a batch's largest activation, a synthetic data set.
inline constexpr int64_t kMaxTensorElements = int64_t{1} << 28;

absl::StatusOr<v1::JobSpec> LoadJobSpec(const std::string& path);
// The same from the file's contents; `path` says the format (.json or
// text) and names the source in errors.
absl::StatusOr<v1::JobSpec> ParseJobSpec(const std::string& text, const std::string& path);
absl::Status ValidateJobSpec(const v1::JobSpec& spec);

// A published model's name (JobSpec.publish_as, `nightshift publish`):
// [a-z0-9][a-z0-9._-]{0,63}, so it is also a folder name. INVALID_ARGUMENT
// naming `field`.
absl::Status ValidateModelName(absl::string_view name, absl::string_view field);

// Optimizer steps the job runs, given the training set size.
int64_t TotalSteps(const v1::JobSpec& spec, int64_t train_size);

}  // namespace nightshift

#endif  // NIGHTSHIFT_SPEC_JOB_SPEC_H_
