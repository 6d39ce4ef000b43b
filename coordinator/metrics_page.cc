#include "coordinator/metrics_page.h"

#include <cctype>
#include <map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "proto/job_state.h"

namespace nightshift::coordinator {
namespace {

// A label value as the text format wants it.
std::string Escape(absl::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char ch : value) {
    if (ch == '\\' || ch == '"') {
      out += '\\';
      out += ch;
    } else if (ch == '\n') {
      out += "\\n";
    } else {
      out += ch;
    }
  }
  return out;
}

std::string Lower(absl::string_view prefixed, absl::string_view prefix) {
  std::string s(prefixed.substr(std::min(prefix.size(), prefixed.size())));
  for (char& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

class Page {
 public:
  void Header(const char* name, const char* type, const char* help) {
    absl::StrAppendFormat(&out_, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
  }
  void Counter(const char* name, const char* help, int64_t v) {
    Header(name, "counter", help);
    absl::StrAppendFormat(&out_, "%s %d\n", name, v);
  }
  // One sample: name{labels} value.
  void Sample(const char* name, const std::string& labels, double v) {
    absl::StrAppendFormat(&out_, "%s{%s} %.9g\n", name, labels, v);
  }
  std::string& text() { return out_; }

 private:
  std::string out_;
};

// A gauge (or counter) with one sample per item of `items` that `value`
// gives one for (std::nullopt: none).
template <typename T, typename F>
void Series(Page& page, const char* name, const char* type, const char* help,
            const std::vector<std::pair<std::string, const T*>>& items, F value) {
  page.Header(name, type, help);
  for (const auto& [labels, item] : items) {
    if (std::optional<double> v = value(*item)) page.Sample(name, labels, *v);
  }
}

void JobSeries(Page& page, const std::vector<v1::JobStatus>& jobs) {
  std::map<std::string, int> by_state;
  for (v1::JobState s : kJobStates) by_state[JobStateLabel(s)] = 0;
  std::vector<std::pair<std::string, const v1::JobStatus*>> started;
  for (const auto& j : jobs) {
    ++by_state[JobStateLabel(j.state())];
    if (j.state() == v1::JOB_STATE_RUNNING || j.state() == v1::JOB_STATE_WAITING) {
      started.emplace_back(absl::StrCat("job_id=\"", Escape(j.id()), "\""), &j);
    }
  }
  page.Header("nightshift_jobs", "gauge", "Jobs by state.");
  for (const auto& [state, n] : by_state) {
    page.Sample("nightshift_jobs", absl::StrCat("state=\"", state, "\""), n);
  }
  using J = v1::JobStatus;
  Series(page, "nightshift_job_step", "gauge", "Steps a started job has completed.", started,
         [](const J& j) -> std::optional<double> { return j.progress().step(); });
  Series(page, "nightshift_job_total_steps", "gauge", "Steps a started job trains in all.", started,
         [](const J& j) -> std::optional<double> { return j.progress().total_steps(); });
  Series(page, "nightshift_job_samples_per_second", "gauge",
         "Training throughput of a started job (its last report).", started,
         [](const J& j) -> std::optional<double> { return j.progress().samples_per_second(); });
  Series(page, "nightshift_job_loss", "gauge",
         "Mean training loss of a started job over its last report window.", started,
         [](const J& j) -> std::optional<double> {
           if (j.progress().step() == 0) return std::nullopt;
           return j.progress().loss();
         });
  Series(page, "nightshift_job_test_accuracy_ratio", "gauge",
         "Test accuracy of a started job at its last evaluation, in [0, 1].", started,
         [](const J& j) -> std::optional<double> {
           if (j.progress().test_loss() == 0) return std::nullopt;  // not evaluated yet
           return j.progress().test_accuracy();
         });
  Series(page, "nightshift_job_test_loss", "gauge",
         "Test loss of a started job at its last evaluation.", started,
         [](const J& j) -> std::optional<double> {
           if (j.progress().test_loss() == 0) return std::nullopt;
           return j.progress().test_loss();
         });
  Series(page, "nightshift_job_workers", "gauge", "Workers a started job trains on.", started,
         [](const J& j) -> std::optional<double> { return j.workers_size(); });
  Series(page, "nightshift_job_generation", "gauge",
         "A started job's generation: its starts and changes of members.", started,
         [](const J& j) -> std::optional<double> { return j.generation(); });
  Series(page, "nightshift_job_rounds_completed_total", "counter",
         "DiLoCo rounds a started diloco job has closed.", started,
         [](const J& j) -> std::optional<double> {
           if (!j.spec().sync().has_diloco()) return std::nullopt;
           return j.round();
         });
}

// `counts` covers every worker; `workers` those with series of their own.
void WorkerSeries(Page& page, const Coordinator::WorkerCounts& counts,
                  const std::vector<v1::WorkerInfo>& workers) {
  std::map<std::string, int64_t> by_state;
  for (int s = v1::WORKER_STATE_IDLE; s <= v1::WORKER_STATE_LOST; ++s) {
    by_state[Lower(v1::WorkerState_Name(static_cast<v1::WorkerState>(s)), "WORKER_STATE_")] = 0;
  }
  for (const auto& [pool_and_state, n] : counts.by_pool_and_state) {
    by_state[Lower(v1::WorkerState_Name(pool_and_state.second), "WORKER_STATE_")] += n;
  }
  std::vector<std::pair<std::string, const v1::WorkerInfo*>> all, edge;
  for (const auto& w : workers) {
    all.emplace_back(absl::StrCat("worker=\"", Escape(w.name()), "\",pool=\"",
                                  Lower(v1::WorkerPool_Name(w.pool()), "WORKER_POOL_"), "\""),
                     &w);
    if (w.pool() == v1::WORKER_POOL_EDGE && w.state() != v1::WORKER_STATE_LOST) {
      edge.emplace_back(absl::StrCat("worker=\"", Escape(w.name()), "\""), &w);
    }
  }
  page.Header("nightshift_workers", "gauge", "Registered workers by state.");
  for (const auto& [state, n] : by_state) {
    page.Sample("nightshift_workers", absl::StrCat("state=\"", state, "\""), n);
  }
  page.Header("nightshift_edge_workers_eligible", "gauge",
              "Edge agents (not lost) whose vehicle lets them compute.");
  page.Sample("nightshift_edge_workers_eligible", "", counts.edge_eligible);
  page.Header("nightshift_worker_state", "gauge",
              "A worker's state: one series per worker, with value 1, labelled with it.");
  for (const auto& [labels, w] : all) {
    page.Sample("nightshift_worker_state",
                absl::StrCat(labels, ",state=\"",
                             Lower(v1::WorkerState_Name(w->state()), "WORKER_STATE_"), "\""),
                1);
  }
  using W = v1::WorkerInfo;
  Series(page, "nightshift_worker_samples_per_second", "gauge", "A worker's measured compute rate.",
         all, [](const W& w) -> std::optional<double> { return w.samples_per_second(); });
  Series(page, "nightshift_worker_last_heartbeat_timestamp_seconds", "gauge",
         "When a worker last heartbeated (Unix time).", all,
         [](const W& w) -> std::optional<double> {
           if (!w.has_last_heartbeat()) return std::nullopt;
           return w.last_heartbeat().seconds() + w.last_heartbeat().nanos() * 1e-9;
         });
  Series(page, "nightshift_edge_worker_eligible", "gauge",
         "Edge agents whose vehicle lets them compute (1) or not (0).", edge,
         [](const W& w) -> std::optional<double> { return w.eligibility().eligible() ? 1 : 0; });
  Series(page, "nightshift_edge_worker_preemptions_total", "counter",
         "Times an edge agent's compute stopped because its vehicle became ineligible.", edge,
         [](const W& w) -> std::optional<double> { return w.preemptions(); });
  page.Counter("nightshift_edge_preemptions_total",
               "Times edge agents' compute stopped because their vehicle became ineligible (as "
               "the registered agents report it).",
               counts.edge_preemptions);
}

}  // namespace

std::string MetricsPage(const MetricsSources& sources) {
  Coordinator* c = sources.coordinator;
  Page page;
  const CoordinatorMetrics m = c->metrics();
  page.Counter("nightshift_jobs_submitted_total", "Jobs accepted by SubmitJob.", m.jobs_submitted);
  page.Counter("nightshift_jobs_succeeded_total", "Jobs that ended SUCCEEDED.", m.jobs_succeeded);
  page.Counter("nightshift_jobs_failed_total", "Jobs that ended FAILED.", m.jobs_failed);
  page.Counter("nightshift_jobs_cancelled_total", "Jobs that ended CANCELLED.", m.jobs_cancelled);
  page.Counter("nightshift_heartbeats_total", "Worker heartbeats received.", m.heartbeats);
  page.Counter("nightshift_leases_expired_total", "Worker leases that ran out.", m.leases_expired);
  page.Counter("nightshift_job_generations_total",
               "Job generations formed: starts and every change of members.", m.generations);
  page.Counter("nightshift_job_recoveries_total", "Generations formed after a lost worker.",
               m.recoveries);
  page.Counter("nightshift_job_steps_redone_total", "Steps trained again from a commit point.",
               m.steps_redone);
  page.Counter("nightshift_rounds_closed_total", "DiLoCo rounds closed.", m.rounds_closed);
  page.Counter("nightshift_round_updates_accepted_total", "Replica updates a closed round took.",
               m.updates_accepted);
  page.Counter("nightshift_round_updates_refused_total",
               "Replica updates a closed round refused (stale, broken or screened out).",
               m.updates_refused);
  page.Counter("nightshift_models_published_total", "Model versions published.",
               m.models_published);
  absl::StatusOr<std::vector<v1::JobStatus>> jobs = c->ListJobs();
  JobSeries(page, jobs.ok() ? *jobs : std::vector<v1::JobStatus>());
  // Series per worker for every worker of a cluster; for a fleet, for the
  // data-center workers (a vehicle's are in its own agent's logs and the
  // paged /v1/workers; 100,000 of each would make the page tens of MB).
  const Coordinator::WorkerCounts counts = c->CountWorkers();
  std::vector<v1::WorkerInfo> own;
  v1::ListWorkersRequest request;
  request.set_page_size(kMaxWorkerPageSize);
  if (counts.total > kMaxWorkersWithOwnSeries) request.set_pool(v1::WORKER_POOL_DATACENTER);
  do {
    absl::StatusOr<v1::ListWorkersResponse> workers = c->ListWorkers(request);
    if (!workers.ok()) break;
    for (auto& w : *workers->mutable_workers()) own.push_back(std::move(w));
    request.set_page_token(workers->next_page_token());
  } while (!request.page_token().empty());
  WorkerSeries(page, counts, own);
  if (sources.grpc != nullptr) sources.grpc->AppendPrometheus(kGrpcSeries, &page.text());
  if (sources.http != nullptr) sources.http->AppendPrometheus(kHttpSeries, &page.text());
  return std::move(page.text());
}

}  // namespace nightshift::coordinator
