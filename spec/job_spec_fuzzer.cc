// Fuzz target: job spec text (protobuf text format) and proto3 JSON
// parsing, then validation and the tensors a spec predicts. The first byte
// picks the format. Nothing may crash, hang or allocate without bound.
#include <cstdint>
#include <string>

#include "spec/job_spec.h"
#include "spec/tensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  absl::StatusOr<nightshift::v1::JobSpec> spec =
      nightshift::ParseJobSpec(text, data[0] % 2 ? "fuzz.json" : "fuzz.textproto");
  if (!spec.ok()) return 0;
  if (nightshift::ValidateJobSpec(*spec).ok()) {
    (void)nightshift::ExpectedCheckpointTensors(*spec, false);
  }
  return 0;
}
