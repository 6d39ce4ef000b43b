#include "coordinator/job_store.h"

#include <sqlite3.h>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"

namespace nightshift::coordinator {
namespace {

constexpr char kSchema[] = R"sql(
  PRAGMA journal_mode = WAL;
  CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE NOT NULL,
    state INTEGER NOT NULL,
    status BLOB NOT NULL);
  CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state, seq);
  CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL,
    event BLOB NOT NULL);
  CREATE INDEX IF NOT EXISTS events_by_job ON events (job_id, seq);
  CREATE TABLE IF NOT EXISTS progress (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL,
    progress BLOB NOT NULL);
  CREATE INDEX IF NOT EXISTS progress_by_job ON progress (job_id, seq);
  CREATE TABLE IF NOT EXISTS workers (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE NOT NULL,
    info BLOB NOT NULL);
  CREATE TABLE IF NOT EXISTS rounds (
    job_id TEXT NOT NULL,
    round INTEGER NOT NULL,
    info BLOB NOT NULL,
    PRIMARY KEY (job_id, round));
  CREATE TABLE IF NOT EXISTS models (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    info BLOB NOT NULL,
    PRIMARY KEY (name, version));
  CREATE TABLE IF NOT EXISTS tokens (
    hash TEXT PRIMARY KEY,
    info BLOB NOT NULL);
)sql";

template <typename Message>
absl::StatusOr<std::vector<Message>> ParseAll(absl::StatusOr<std::vector<std::string>> blobs,
                                              const char* what) {
  if (!blobs.ok()) return blobs.status();
  std::vector<Message> out(blobs->size());
  for (size_t i = 0; i < blobs->size(); ++i) {
    if (!out[i].ParseFromString((*blobs)[i])) {
      return absl::DataLossError(absl::StrCat("corrupt ", what, " record"));
    }
  }
  return out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<JobStore>> JobStore::Open(const std::string& path) {
  sqlite3* db = nullptr;
  if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    return absl::FailedPreconditionError(absl::StrCat(path, ": cannot open state: ", msg));
  }
  sqlite3_busy_timeout(db, 5000);
  std::unique_ptr<JobStore> store(new JobStore(db));
  absl::MutexLock lock(&store->mu_);
  if (absl::Status s = store->Exec(kSchema); !s.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(path, ": ", s.message()));
  }
  auto jobs = ParseAll<v1::JobStatus>(
      store->ReadBlobs("SELECT status FROM jobs ORDER BY seq", nullptr), "job");
  if (!jobs.ok()) return absl::DataLossError(absl::StrCat(path, ": ", jobs.status().message()));
  for (v1::JobStatus& job : *jobs) store->RememberLocked(std::move(job));
  return store;
}

JobStore::~JobStore() {
  absl::MutexLock lock(&mu_);
  sqlite3_close(db_);
}

absl::Status JobStore::Exec(const std::string& sql) {
  char* error = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &error) != SQLITE_OK) {
    absl::Status s = absl::InternalError(absl::StrCat("sqlite: ", error ? error : "?"));
    sqlite3_free(error);
    return s;
  }
  return absl::OkStatus();
}

absl::Status JobStore::Write(const char* sql, const std::string& key, const std::string& blob,
                             int64_t number) {
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db_, sql, -1, &stmt, nullptr) != SQLITE_OK) {
    return absl::InternalError(absl::StrCat("sqlite: ", sqlite3_errmsg(db_)));
  }
  sqlite3_bind_text(stmt, 1, key.data(), static_cast<int>(key.size()), SQLITE_TRANSIENT);
  sqlite3_bind_blob(stmt, 2, blob.data(), static_cast<int>(blob.size()), SQLITE_TRANSIENT);
  sqlite3_bind_int64(stmt, 3, number);  // ignored by statements without ?3
  const int rc = sqlite3_step(stmt);
  sqlite3_finalize(stmt);
  if (rc == SQLITE_CONSTRAINT) return absl::AlreadyExistsError(key);
  if (rc != SQLITE_DONE) return absl::InternalError(absl::StrCat("sqlite: ", sqlite3_errmsg(db_)));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> JobStore::ReadBlobs(const char* sql,
                                                             const std::string* key,
                                                             int64_t number) {
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db_, sql, -1, &stmt, nullptr) != SQLITE_OK) {
    return absl::InternalError(absl::StrCat("sqlite: ", sqlite3_errmsg(db_)));
  }
  if (key != nullptr) {
    sqlite3_bind_text(stmt, 1, key->data(), static_cast<int>(key->size()), SQLITE_TRANSIENT);
  }
  sqlite3_bind_int64(stmt, 2, number);  // ignored by statements without ?2
  std::vector<std::string> out;
  int rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    const void* data = sqlite3_column_blob(stmt, 0);
    out.emplace_back(static_cast<const char*>(data), sqlite3_column_bytes(stmt, 0));
  }
  sqlite3_finalize(stmt);
  if (rc != SQLITE_DONE) return absl::InternalError(absl::StrCat("sqlite: ", sqlite3_errmsg(db_)));
  return out;
}

void JobStore::RememberLocked(v1::JobStatus job) {
  const int64_t version = jobs_version_.fetch_add(1, std::memory_order_acq_rel) + 1;
  auto [it, added] = latest_.try_emplace(job.id());
  if (added) order_.push_back(job.id());
  it->second = {version, std::make_shared<const v1::JobStatus>(std::move(job))};
}

absl::Status JobStore::InsertJob(const v1::JobStatus& job) {
  absl::MutexLock lock(&mu_);
  absl::Status s = Write("INSERT INTO jobs (id, status, state) VALUES (?1, ?2, ?3)", job.id(),
                         job.SerializeAsString(), job.state());
  if (s.code() == absl::StatusCode::kAlreadyExists) {
    return absl::AlreadyExistsError(absl::StrCat("job ", job.id(), " already exists"));
  }
  if (s.ok()) RememberLocked(job);
  return s;
}

absl::Status JobStore::UpdateJob(const v1::JobStatus& job) {
  absl::MutexLock lock(&mu_);
  if (latest_.count(job.id()) == 0) return absl::NotFoundError(absl::StrCat("no job ", job.id()));
  RETURN_IF_ERROR(Write("UPDATE jobs SET status = ?2, state = ?3 WHERE id = ?1", job.id(),
                        job.SerializeAsString(), job.state()));
  RememberLocked(job);
  return absl::OkStatus();
}

absl::StatusOr<v1::JobStatus> JobStore::GetJob(const std::string& id) {
  absl::MutexLock lock(&mu_);
  auto it = latest_.find(id);
  if (it == latest_.end()) return absl::NotFoundError(absl::StrCat("no job ", id));
  return *it->second.job;
}

std::vector<JobStore::VersionedJob> JobStore::Snapshot() {
  absl::MutexLock lock(&mu_);
  std::vector<VersionedJob> out;
  out.reserve(order_.size());
  for (const std::string& id : order_) out.push_back(latest_.at(id));
  return out;
}

absl::StatusOr<std::vector<v1::JobStatus>> JobStore::ListJobs() {
  std::vector<v1::JobStatus> out;
  for (const VersionedJob& j : Snapshot()) out.push_back(*j.job);
  return out;
}

absl::StatusOr<std::vector<v1::JobStatus>> JobStore::ListJobsInState(v1::JobState state) {
  std::vector<v1::JobStatus> out;
  for (const VersionedJob& j : Snapshot()) {
    if (j.job->state() == state) out.push_back(*j.job);
  }
  return out;
}

absl::Status JobStore::AppendEvent(const std::string& job_id, const v1::JobEvent& event) {
  absl::MutexLock lock(&mu_);
  return Write("INSERT INTO events (job_id, event) VALUES (?1, ?2)", job_id,
               event.SerializeAsString());
}

absl::StatusOr<std::vector<v1::JobEvent>> JobStore::Events(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  return ParseAll<v1::JobEvent>(
      ReadBlobs("SELECT event FROM events WHERE job_id = ?1 ORDER BY seq", &job_id), "event");
}

absl::Status JobStore::AppendProgress(const std::string& job_id, const v1::Progress& progress) {
  absl::MutexLock lock(&mu_);
  return Write("INSERT INTO progress (job_id, progress) VALUES (?1, ?2)", job_id,
               progress.SerializeAsString());
}

absl::StatusOr<std::vector<v1::Progress>> JobStore::ProgressHistory(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  return ParseAll<v1::Progress>(
      ReadBlobs("SELECT progress FROM progress WHERE job_id = ?1 ORDER BY seq", &job_id),
      "progress");
}

absl::Status JobStore::PutRound(const std::string& job_id, const v1::RoundInfo& info) {
  absl::MutexLock lock(&mu_);
  return Write("INSERT OR REPLACE INTO rounds (job_id, info, round) VALUES (?1, ?2, ?3)", job_id,
               info.SerializeAsString(), info.round());
}

absl::StatusOr<std::vector<v1::RoundInfo>> JobStore::Rounds(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  return ParseAll<v1::RoundInfo>(
      ReadBlobs("SELECT info FROM rounds WHERE job_id = ?1 ORDER BY round", &job_id), "round");
}

absl::Status JobStore::InsertModelVersion(const v1::ModelVersion& version) {
  absl::MutexLock lock(&mu_);
  return Write("INSERT INTO models (name, info, version) VALUES (?1, ?2, ?3)", version.name(),
               version.SerializeAsString(), version.version());
}

absl::StatusOr<std::vector<v1::ModelVersion>> JobStore::ModelVersions() {
  absl::MutexLock lock(&mu_);
  return ParseAll<v1::ModelVersion>(
      ReadBlobs("SELECT info FROM models ORDER BY name, version", nullptr), "model version");
}

absl::Status JobStore::PutWorkers(const std::vector<v1::WorkerInfo>& workers) {
  if (workers.empty()) return absl::OkStatus();
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(Exec("BEGIN"));
  for (const v1::WorkerInfo& worker : workers) {
    absl::Status s = Write(
        "INSERT INTO workers (id, info) VALUES (?1, ?2) "
        "ON CONFLICT (id) DO UPDATE SET info = excluded.info",
        worker.id(), worker.SerializeAsString());
    if (!s.ok()) {
      Exec("ROLLBACK").IgnoreError();  // the batch is all or nothing
      return s;
    }
  }
  return Exec("COMMIT");
}

absl::StatusOr<std::vector<v1::WorkerInfo>> JobStore::ListWorkers() {
  absl::MutexLock lock(&mu_);
  return ParseAll<v1::WorkerInfo>(ReadBlobs("SELECT info FROM workers ORDER BY seq", nullptr),
                                  "worker");
}

absl::Status JobStore::PutToken(const std::string& hash, const v1::TokenInfo& info) {
  absl::MutexLock lock(&mu_);
  return Write("INSERT INTO tokens (hash, info) VALUES (?1, ?2)", hash, info.SerializeAsString());
}

absl::Status JobStore::DeleteToken(const std::string& hash) {
  absl::MutexLock lock(&mu_);
  return Write("DELETE FROM tokens WHERE hash = ?1", hash, "");
}

absl::StatusOr<std::vector<std::pair<std::string, v1::TokenInfo>>> JobStore::ListTokens() {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(std::vector<std::string> hashes,
                   ReadBlobs("SELECT hash FROM tokens ORDER BY rowid", nullptr));
  ASSIGN_OR_RETURN(std::vector<v1::TokenInfo> infos,
                   ParseAll<v1::TokenInfo>(
                       ReadBlobs("SELECT info FROM tokens ORDER BY rowid", nullptr), "token"));
  std::vector<std::pair<std::string, v1::TokenInfo>> out;
  for (size_t i = 0; i < hashes.size() && i < infos.size(); ++i) {
    out.emplace_back(std::move(hashes[i]), std::move(infos[i]));
  }
  return out;
}

}  // namespace nightshift::coordinator
