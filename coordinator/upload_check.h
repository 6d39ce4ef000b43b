// CheckUpload: nothing unvalidated is stored. A checkpoint or model upload
// must be a well-formed safetensors file (checkpoint/safetensors.h checks
// every structural rule) that holds exactly the job's tensors — names,
// F32, shapes, from the spec alone (spec/tensors.h) — with the
// checkpoint format's metadata, within MaxUploadBytes. The error names the
// tensor, field or byte offset; the caller then stores nothing, so the
// previous checkpoint stays the latest.
#ifndef NIGHTSHIFT_COORDINATOR_UPLOAD_CHECK_H_
#define NIGHTSHIFT_COORDINATOR_UPLOAD_CHECK_H_

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "nightshift/v1/job.pb.h"

namespace nightshift::coordinator {

// `final`: the exported model (parameters only); otherwise a checkpoint
// (parameters and optimizer state).
absl::Status CheckUpload(const v1::JobSpec& spec, bool final, const std::string& bytes);

// The largest file a job's checkpoint can be: its tensors' bytes plus a
// header allowance.
size_t MaxUploadBytes(const v1::JobSpec& spec);

}  // namespace nightshift::coordinator

#endif  // NIGHTSHIFT_COORDINATOR_UPLOAD_CHECK_H_
