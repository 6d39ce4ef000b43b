#include "coordinator/jobs_wire_cache.h"

#include <set>

namespace nightshift::coordinator {
namespace {

// ListJobsResponse.jobs (field 1, length-delimited: proto/nightshift/v1/
// coordinator.proto; jobs_wire_cache_test parses the bytes back) holding `job`.
std::string JobsField(const v1::JobStatus& job) {
  constexpr char kJobsTag = (1 << 3) | 2;  // field 1, length-delimited
  std::string out(1, kJobsTag);
  for (uint64_t n = job.ByteSizeLong();; n >>= 7) {  // the length, a varint
    if (n < 0x80) {
      out.push_back(static_cast<char>(n));
      break;
    }
    out.push_back(static_cast<char>((n & 0x7f) | 0x80));
  }
  job.AppendToString(&out);
  return out;
}

}  // namespace

std::shared_ptr<const std::string> JobsWireCache::Get(
    int64_t version, const std::function<std::vector<JobStore::VersionedJob>()>& snapshot) {
  absl::MutexLock lock(&mu_);
  if (bytes_ != nullptr && version_ == version) return bytes_;
  std::string body;
  std::set<std::string> listed;
  for (const JobStore::VersionedJob& j : snapshot()) {
    auto& [job_version, field] = fields_[j.job->id()];
    if (job_version != j.version || field.empty()) {
      field = JobsField(*j.job);
      job_version = j.version;
    }
    listed.insert(j.job->id());
    body += field;
  }
  for (auto it = fields_.begin(); it != fields_.end();) {  // jobs no longer listed
    it = listed.count(it->first) > 0 ? std::next(it) : fields_.erase(it);
  }
  bytes_ = std::make_shared<const std::string>(std::move(body));
  version_ = version;
  return bytes_;
}

}  // namespace nightshift::coordinator
