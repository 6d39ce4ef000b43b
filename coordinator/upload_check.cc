#include "coordinator/upload_check.h"

#include <set>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "checkpoint/safetensors.h"
#include "spec/tensors.h"

namespace nightshift::coordinator {
namespace {

constexpr size_t kHeaderAllowance = 1 << 20;
constexpr char kFormat[] = "nightshift.checkpoint.v1";

}  // namespace

size_t MaxUploadBytes(const v1::JobSpec& spec) {
  absl::StatusOr<std::vector<TensorSpec>> tensors = ExpectedCheckpointTensors(spec, false);
  size_t bytes = kHeaderAllowance;
  if (tensors.ok()) {
    for (const TensorSpec& t : *tensors) bytes += 4 * static_cast<size_t>(NumElements(t.shape));
  }
  return bytes;
}

absl::Status CheckUpload(const v1::JobSpec& spec, bool final, const std::string& bytes) {
  const char* what = final ? "model upload" : "checkpoint upload";
  if (bytes.size() > MaxUploadBytes(spec)) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": ", bytes.size(),
                                                   " bytes, over the job's largest checkpoint (",
                                                   MaxUploadBytes(spec), ")"));
  }
  absl::StatusOr<SafetensorsFile> file = SafetensorsFile::Parse(bytes, what);
  if (!file.ok()) return absl::InvalidArgumentError(file.status().message());
  auto format = file->metadata().find("format");
  if (format == file->metadata().end() || format->second != kFormat) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": __metadata__.format is not \"", kFormat, "\""));
  }
  absl::StatusOr<std::vector<TensorSpec>> expected = ExpectedCheckpointTensors(spec, final);
  if (!expected.ok()) return expected.status();
  std::set<std::string> seen;
  for (const TensorSpec& t : *expected) {
    auto it = file->tensors().find(t.name);
    if (it == file->tensors().end()) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": tensor ", t.name, " is missing"));
    }
    if (it->second.dtype != "F32") {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": tensor ", t.name, " is ", it->second.dtype, ", not F32"));
    }
    if (it->second.shape != t.shape) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": tensor ", t.name, " has shape ",
                                                     ShapeToString(it->second.shape),
                                                     ", the job's is ", ShapeToString(t.shape)));
    }
    seen.insert(t.name);
  }
  for (const auto& [name, info] : file->tensors()) {
    if (seen.count(name) == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": tensor ", name, " is not one of the job's"));
    }
  }
  return absl::OkStatus();
}

}  // namespace nightshift::coordinator
