// JobsWireCache: the serialized `ListJobsResponse` that the gRPC ListJobs
// call sends, kept between calls. A status poller asks for the same list
// many times a second while the jobs change far less often; building and
// serializing every JobStatus per call cost ~0.7 ms with 20 jobs and
// slowed a running job by 12–24% under paced load (bench/README.md,
// "Status API"). So:
//   - the whole reply's bytes are rebuilt only when the store's
//     jobs_version moved since the last build;
//   - a rebuild serializes again only the jobs whose own version moved;
//     the others' bytes are reused (a ListJobsResponse on the wire is the
//     concatenation of its `jobs` fields: tag 1, length, JobStatus bytes);
//   - callers share the bytes (a shared_ptr): no copy per call.
// The bytes parse to exactly what JobStore::ListJobs returns, in its order.
// Thread-safe.
#ifndef NIGHTSHIFT_COORDINATOR_JOBS_WIRE_CACHE_H_
#define NIGHTSHIFT_COORDINATOR_JOBS_WIRE_CACHE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "coordinator/job_store.h"

namespace nightshift::coordinator {

class JobsWireCache {
 public:
  // `version`: the store's jobs_version when `snapshot` was taken (or
  // earlier: a version read before the snapshot never hides a change).
  std::shared_ptr<const std::string> Get(
      int64_t version, const std::function<std::vector<JobStore::VersionedJob>()>& snapshot);

 private:
  absl::Mutex mu_;
  std::shared_ptr<const std::string> bytes_ ABSL_GUARDED_BY(mu_);
  int64_t version_ ABSL_GUARDED_BY(mu_) = -1;
  // By job id: the job's version and its `jobs` field on the wire.
  std::map<std::string, std::pair<int64_t, std::string>> fields_ ABSL_GUARDED_BY(mu_);
};

}  // namespace nightshift::coordinator

#endif  // NIGHTSHIFT_COORDINATOR_JOBS_WIRE_CACHE_H_
