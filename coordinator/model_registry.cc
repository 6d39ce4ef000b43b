#include "coordinator/model_registry.h"

#include <algorithm>
#include <fstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/filesystem.h"
#include "base/status_macros.h"
#include "checkpoint/model_description.h"
#include "checkpoint/safetensors.h"
#include "google/protobuf/util/time_util.h"
#include "proto/job_state.h"
#include "security/tokens.h"
#include "spec/job_spec.h"

namespace nightshift::coordinator {
namespace {

// The whole file at `path`, at most `limit` bytes.
absl::StatusOr<std::string> ReadBounded(const std::string& path, int64_t limit) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return absl::FailedPreconditionError(absl::StrCat(path, ": cannot open the model file"));
  const int64_t size = in.tellg();
  if (size > limit) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": ", size, " bytes, over the ", limit, "-byte bound of a model"));
  }
  std::string bytes(static_cast<size_t>(size), '\0');
  in.seekg(0);
  in.read(bytes.data(), size);
  if (in.gcount() != size) return absl::DataLossError(absl::StrCat(path, ": short read"));
  return bytes;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ModelRegistry>> ModelRegistry::Create(JobStore* store,
                                                                     std::string models_dir) {
  std::unique_ptr<ModelRegistry> r(new ModelRegistry(store, std::move(models_dir)));
  ASSIGN_OR_RETURN(std::vector<v1::ModelVersion> versions, store->ModelVersions());
  absl::MutexLock lock(&r->mu_);
  for (v1::ModelVersion& v : versions) {  // by name, then version
    std::vector<v1::ModelVersion>& list = r->models_[v.name()];
    if (v.version() != static_cast<int64_t>(list.size()) + 1) {
      return absl::DataLossError(absl::StrCat("model ", v.name(), ": version ", v.version(),
                                              " follows version ", list.size()));
    }
    list.push_back(std::move(v));
  }
  return r;
}

std::string ModelRegistry::FilePath(const std::string& name, int64_t version) const {
  return absl::StrCat(models_dir_, "/", name, "/v", version, ".safetensors");
}

absl::StatusOr<ModelRegistry::Published> ModelRegistry::Publish(const v1::JobStatus& job,
                                                                const std::string& name,
                                                                const std::string& model_path,
                                                                absl::Time now) {
  RETURN_IF_ERROR(ValidateModelName(name, "model_name"));
  if (job.state() != v1::JOB_STATE_SUCCEEDED) {
    return absl::FailedPreconditionError(
        absl::StrCat("job ", job.id(), " is ", JobStateName(job.state()),
                     ": only a job that succeeded can be published"));
  }
  absl::MutexLock publishing(&publish_mu_);
  int64_t version = 1;
  {
    absl::MutexLock lock(&mu_);
    auto it = models_.find(name);
    if (it != models_.end()) {
      for (const v1::ModelVersion& v : it->second) {
        if (v.job_id() == job.id()) return Published{v, false};  // a retried publish
      }
      version = static_cast<int64_t>(it->second.size()) + 1;
    }
  }
  ASSIGN_OR_RETURN(std::string bytes, ReadBounded(model_path, kMaxModelBytes));
  ASSIGN_OR_RETURN(SafetensorsFile file, SafetensorsFile::Parse(bytes, model_path));
  RETURN_IF_ERROR(CheckModelFile(file, model_path).status());

  v1::ModelVersion v;
  v.set_name(name);
  v.set_version(version);
  v.set_job_id(job.id());
  v.set_test_accuracy(job.progress().test_accuracy());
  v.set_sha256(security::Sha256Hex(bytes));
  v.set_size_bytes(static_cast<int64_t>(bytes.size()));
  *v.mutable_create_time() =
      google::protobuf::util::TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(now));
  RETURN_IF_ERROR(MakeDirectories(absl::StrCat(models_dir_, "/", name)));
  RETURN_IF_ERROR(WriteFileDurably(FilePath(name, version), bytes));
  RETURN_IF_ERROR(store_->InsertModelVersion(v));  // the commit
  absl::MutexLock lock(&mu_);
  models_[name].push_back(v);
  return Published{v, true};
}

std::vector<v1::ModelVersion> ModelRegistry::List(const std::string& name) const {
  absl::MutexLock lock(&mu_);
  std::vector<v1::ModelVersion> out;
  for (const auto& [model, versions] : models_) {
    if (name.empty() || model == name) out.insert(out.end(), versions.begin(), versions.end());
  }
  return out;
}

std::vector<v1::ModelVersion> ModelRegistry::Newer(
    const google::protobuf::RepeatedPtrField<v1::FollowedModel>& followed) const {
  std::vector<v1::ModelVersion> out;
  if (followed.empty()) return out;
  absl::MutexLock lock(&mu_);
  for (const v1::FollowedModel& f : followed) {
    auto it = models_.find(f.name());
    if (it == models_.end() || it->second.back().version() <= f.version()) continue;
    out.push_back(it->second.back());
  }
  return out;
}

absl::StatusOr<v1::FetchModelResponse> ModelRegistry::Read(
    const v1::FetchModelRequest& request) const {
  v1::FetchModelResponse response;
  {
    absl::MutexLock lock(&mu_);
    auto it = models_.find(request.model_name());
    if (it == models_.end()) {
      return absl::NotFoundError(absl::StrCat("no model named '", request.model_name(), "'"));
    }
    const int64_t newest = it->second.back().version();
    if (request.version() < 0 || request.version() > newest) {
      return absl::NotFoundError(absl::StrCat("model ", request.model_name(), " has no version ",
                                              request.version(), " (newest: ", newest, ")"));
    }
    *response.mutable_version() =
        it->second[(request.version() == 0 ? newest : request.version()) - 1];
  }
  const v1::ModelVersion& v = response.version();
  if (request.offset() < 0 || request.offset() > v.size_bytes()) {
    return absl::OutOfRangeError(absl::StrCat("offset ", request.offset(), " is outside model ",
                                              v.name(), " v", v.version(), "'s ", v.size_bytes(),
                                              " bytes"));
  }
  int64_t want = request.max_bytes() <= 0 ? kDefaultModelChunkBytes
                                          : std::min(request.max_bytes(), kMaxModelChunkBytes);
  want = std::min(want, v.size_bytes() - request.offset());
  const std::string path = FilePath(v.name(), v.version());
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::DataLossError(absl::StrCat(path, ": cannot open"));
  std::string data(static_cast<size_t>(want), '\0');
  in.seekg(request.offset());
  in.read(data.data(), want);
  if (in.gcount() != want) {
    return absl::DataLossError(absl::StrCat(path, ": short read at byte ", request.offset()));
  }
  response.set_data(std::move(data));
  response.set_offset(request.offset());
  return response;
}

}  // namespace nightshift::coordinator
