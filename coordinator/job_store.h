// JobStore: the coordinator's durable state in one SQLite file — jobs with
// their status, each job's history of state changes and progress samples,
// a diloco job's closed rounds, the workers last seen, the published model
// versions, and the hashes of the bearer tokens it accepts. A restarted coordinator opens the same
// file and finds everything as it was.
//
// Records are the API's own protobuf messages, stored serialized, keyed by
// id and kept in insertion order. Every write is one transaction. Jobs are
// also kept parsed in memory (written through), so reads of them never
// touch SQLite.
// Thread-safe (one connection, serialized by a mutex).
#ifndef NIGHTSHIFT_COORDINATOR_JOB_STORE_H_
#define NIGHTSHIFT_COORDINATOR_JOB_STORE_H_

#include <atomic>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "nightshift/v1/status.pb.h"

struct sqlite3;

namespace nightshift::coordinator {

class JobStore {
 public:
  // Creates the file and its tables if missing.
  static absl::StatusOr<std::unique_ptr<JobStore>> Open(const std::string& path);
  ~JobStore();
  JobStore(const JobStore&) = delete;
  JobStore& operator=(const JobStore&) = delete;

  // Inserts a new job; ALREADY_EXISTS if the id is taken.
  absl::Status InsertJob(const v1::JobStatus& job);
  absl::Status UpdateJob(const v1::JobStatus& job);  // NOT_FOUND if absent
  absl::StatusOr<v1::JobStatus> GetJob(const std::string& id);
  absl::StatusOr<std::vector<v1::JobStatus>> ListJobs();  // submission order
  // Jobs in `state`, in submission order, found through an index (the
  // scheduler asks for the queued ones on every heartbeat).
  absl::StatusOr<std::vector<v1::JobStatus>> ListJobsInState(v1::JobState state);

  absl::Status AppendEvent(const std::string& job_id, const v1::JobEvent& event);
  absl::StatusOr<std::vector<v1::JobEvent>> Events(const std::string& job_id);
  absl::Status AppendProgress(const std::string& job_id, const v1::Progress& progress);
  absl::StatusOr<std::vector<v1::Progress>> ProgressHistory(const std::string& job_id);

  // Goes up with every write of a job: readers cache what they built from
  // the jobs while it stays the same.
  int64_t jobs_version() const { return jobs_version_.load(std::memory_order_acquire); }
  // Every job as last written, in submission order, each with the version
  // of its last write; from memory (jobs are read far more often than
  // written: every heartbeat schedules, every status poll lists).
  struct VersionedJob {
    int64_t version;
    std::shared_ptr<const v1::JobStatus> job;
  };
  std::vector<VersionedJob> Snapshot();

  // A diloco job's closed rounds, by round number (a round closed again
  // after a restart replaces its row). The round's checkpoint file is
  // written before its row (checkpoint/file_names.h names it), so a row
  // always has its file.
  absl::Status PutRound(const std::string& job_id, const v1::RoundInfo& info);
  absl::StatusOr<std::vector<v1::RoundInfo>> Rounds(const std::string& job_id);

  // Published model versions (coordinator/model_registry.h): ALREADY_EXISTS
  // if the name has that version; all of them by name, then version.
  absl::Status InsertModelVersion(const v1::ModelVersion& version);
  absl::StatusOr<std::vector<v1::ModelVersion>> ModelVersions();

  // In one transaction (the coordinator batches a fleet's changes).
  absl::Status PutWorkers(const std::vector<v1::WorkerInfo>& workers);
  absl::StatusOr<std::vector<v1::WorkerInfo>> ListWorkers();

  // Bearer tokens, by the hex SHA-256 of the token (never the token).
  absl::Status PutToken(const std::string& hash, const v1::TokenInfo& info);
  absl::Status DeleteToken(const std::string& hash);
  // (hash, info), in creation order.
  absl::StatusOr<std::vector<std::pair<std::string, v1::TokenInfo>>> ListTokens();

 private:
  explicit JobStore(sqlite3* db) : db_(db) {}
  absl::Status Exec(const std::string& sql) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Binds ?1 = key, ?2 = blob, ?3 = number.
  absl::Status Write(const char* sql, const std::string& key, const std::string& blob,
                     int64_t number = 0) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Binds ?1 = *key (if given), ?2 = number; returns column 0 of each row.
  absl::StatusOr<std::vector<std::string>> ReadBlobs(const char* sql, const std::string* key,
                                                     int64_t number = 0)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  void RememberLocked(v1::JobStatus job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  sqlite3* db_ ABSL_GUARDED_BY(mu_);
  std::atomic<int64_t> jobs_version_{0};
  // The jobs table's rows, parsed: written through, never read back.
  std::vector<std::string> order_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, VersionedJob> latest_ ABSL_GUARDED_BY(mu_);
};

}  // namespace nightshift::coordinator

#endif  // NIGHTSHIFT_COORDINATOR_JOB_STORE_H_
