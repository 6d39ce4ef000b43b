// ModelRegistry: the published models, the loop from training back to the
// vehicles. A model is a name with versions 1, 2, ...; each version is a
// succeeded job's model file, kept at models_dir/<name>/v<version>.safetensors
// with its row (v1.ModelVersion: job, test accuracy, size, SHA-256) in
// the job store.
//
// The protocol:
//  1. Publish(job, name): the job SUCCEEDED and its model file parses as
//     safetensors, describes itself and holds every tensor its
//     description needs (checkpoint/model_description.h: CheckModelFile),
//     within kMaxModelBytes. The file is written durably under the next
//     version number, then its row is inserted: the row is the commit (a
//     crash between the two leaves a file that no row names, overwritten
//     by the next publish of that name). Publishing the same job under the
//     same name again returns the version it already is, so a retried
//     publish adds nothing. The job's own model file may go afterwards:
//     the version has its own copy.
//  2. Followers (edge agents, worker/edge/model_follower.h) say in every
//     heartbeat which version of each followed name they hold; Newer()
//     answers with the newest version where it is newer.
//  3. Read(name, version, offset, max_bytes) serves the file from any
//     offset (a resumable download); the follower checks the whole file's
//     SHA-256 against the row's before it keeps it.
//
// Thread-safe. The index has its own mutex, taken after the
// coordinator's (heartbeats ask Newer() under it: a map lookup per
// followed name); publishes are serialized by a second one, never taken
// under either, held across the file write, so two publishes of one name
// never take the same number while reads go on.
#ifndef NIGHTSHIFT_COORDINATOR_MODEL_REGISTRY_H_
#define NIGHTSHIFT_COORDINATOR_MODEL_REGISTRY_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "coordinator/job_store.h"
#include "nightshift/v1/coordinator.pb.h"

namespace nightshift::coordinator {

// The largest model file published (a job's own uploads are bounded
// tighter, by its spec: upload_check.h).
inline constexpr int64_t kMaxModelBytes = int64_t{1} << 30;
// The most bytes one Read returns, and the default.
inline constexpr int32_t kMaxModelChunkBytes = 2 << 20;
inline constexpr int32_t kDefaultModelChunkBytes = 1 << 20;

class ModelRegistry {
 public:
  // Loads the index from `store` (which must outlive it).
  static absl::StatusOr<std::unique_ptr<ModelRegistry>> Create(JobStore* store,
                                                               std::string models_dir);
  ModelRegistry(const ModelRegistry&) = delete;
  ModelRegistry& operator=(const ModelRegistry&) = delete;

  // Step 1. `model_path`: the job's model file on this machine.
  // INVALID_ARGUMENT for a bad name (spec/job_spec.h's rule) or a model
  // file that does not check (naming the file and what is wrong);
  // FAILED_PRECONDITION for a job that did not succeed, naming its state.
  struct Published {
    v1::ModelVersion version;
    bool created = false;  // false: the job was that version already
  };
  absl::StatusOr<Published> Publish(const v1::JobStatus& job, const std::string& name,
                                    const std::string& model_path, absl::Time now);
  // Every version of `name` (empty: of every model), by name then version.
  std::vector<v1::ModelVersion> List(const std::string& name) const;
  // Step 2: for each followed model with a version newer than the one
  // held, the newest; unknown names are skipped.
  std::vector<v1::ModelVersion> Newer(
      const google::protobuf::RepeatedPtrField<v1::FollowedModel>& followed) const;
  // Step 3. version 0: the newest. NOT_FOUND for an unknown name or
  // version; OUT_OF_RANGE for an offset past the end; an offset at the
  // end gives no data.
  absl::StatusOr<v1::FetchModelResponse> Read(const v1::FetchModelRequest& request) const;

 private:
  ModelRegistry(JobStore* store, std::string models_dir)
      : store_(store), models_dir_(std::move(models_dir)) {}
  std::string FilePath(const std::string& name, int64_t version) const;

  JobStore* const store_;
  const std::string models_dir_;
  absl::Mutex publish_mu_;  // before mu_
  mutable absl::Mutex mu_;
  // By name: its versions, oldest first (version i+1 at index i).
  std::map<std::string, std::vector<v1::ModelVersion>> models_ ABSL_GUARDED_BY(mu_);
};

}  // namespace nightshift::coordinator

#endif  // NIGHTSHIFT_COORDINATOR_MODEL_REGISTRY_H_
