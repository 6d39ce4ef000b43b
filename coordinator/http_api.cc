#include "coordinator/http_api.h"

#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status_macros.h"
#include "coordinator/http_routes.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "proto/job_state.h"
#include "security/tokens.h"

namespace nightshift::coordinator {
namespace {

int HttpCode(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return 200;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kInvalidArgument:
      return 400;
    case absl::StatusCode::kFailedPrecondition:
      return 412;
    case absl::StatusCode::kUnavailable:
      return 503;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kResourceExhausted:
      return 429;
    default:
      return 500;
  }
}

using security::HttpRequest;
using security::HttpResponse;

HttpResponse Body(std::string body, std::string content_type) {
  HttpResponse r;
  r.body = std::make_shared<const std::string>(std::move(body));
  r.content_type = std::move(content_type);
  return r;
}

HttpResponse Json(const google::protobuf::Message& m) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.always_print_primitive_fields = true;  // empty lists and zeros too
  std::string json;
  // Our own well-formed messages: printing cannot fail.
  (void)google::protobuf::util::MessageToJsonString(m, &json, options);
  return Body(std::move(json), "application/json");
}

// {"code": "NOT_FOUND", "message": "..."}, escaped by protobuf's printer.
HttpResponse Error(const absl::Status& s) {
  google::protobuf::Struct body;
  (*body.mutable_fields())["code"].set_string_value(absl::StatusCodeToString(s.code()));
  (*body.mutable_fields())["message"].set_string_value(std::string(s.message()));
  HttpResponse r = Json(body);
  r.status = HttpCode(s.code());
  if (s.code() == absl::StatusCode::kUnauthenticated) {
    r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"nightshift\"");
  }
  return r;
}

template <typename T>
HttpResponse Result(const absl::StatusOr<T>& result) {
  return result.ok() ? Json(*result) : Error(result.status());
}

}  // namespace

std::string HttpApi::Metrics(Coordinator* c) {
  std::string out;
  const CoordinatorMetrics m = c->metrics();
  auto counter = [&](const char* name, const char* help, int64_t v) {
    absl::StrAppendFormat(&out, "# HELP %s %s\n# TYPE %s counter\n%s %d\n", name, help, name, name,
                          v);
  };
  counter("nightshift_jobs_submitted_total", "Jobs accepted by SubmitJob.", m.jobs_submitted);
  counter("nightshift_jobs_succeeded_total", "Jobs that ended SUCCEEDED.", m.jobs_succeeded);
  counter("nightshift_jobs_failed_total", "Jobs that ended FAILED.", m.jobs_failed);
  counter("nightshift_jobs_cancelled_total", "Jobs that ended CANCELLED.", m.jobs_cancelled);
  counter("nightshift_heartbeats_total", "Worker heartbeats received.", m.heartbeats);
  counter("nightshift_leases_expired_total", "Worker leases that ran out.", m.leases_expired);
  counter("nightshift_job_generations_total",
          "Job generations formed: starts and every change of members.", m.generations);
  counter("nightshift_job_recoveries_total", "Generations formed after a lost worker.",
          m.recoveries);
  counter("nightshift_job_steps_redone_total", "Steps trained again from a commit point.",
          m.steps_redone);
  counter("nightshift_rounds_closed_total", "DiLoCo rounds closed.", m.rounds_closed);
  counter("nightshift_round_updates_accepted_total", "Replica updates a closed round took.",
          m.updates_accepted);
  counter("nightshift_round_updates_refused_total",
          "Replica updates a closed round refused (stale, broken or screened out).",
          m.updates_refused);
  std::map<std::string, int> by_state;
  for (v1::JobState s : kJobStates) {
    by_state[JobStateLabel(s)] = 0;
  }
  absl::StatusOr<std::vector<v1::JobStatus>> jobs = c->ListJobs();
  out += "# HELP nightshift_jobs Jobs by state.\n# TYPE nightshift_jobs gauge\n";
  if (jobs.ok()) {
    for (const auto& j : *jobs) ++by_state[JobStateLabel(j.state())];
  }
  for (const auto& [state, n] : by_state) {
    absl::StrAppendFormat(&out, "nightshift_jobs{state=\"%s\"} %d\n", state, n);
  }
  out +=
      "# HELP nightshift_job_samples_per_second Training throughput of running jobs.\n"
      "# TYPE nightshift_job_samples_per_second gauge\n";
  out += "# HELP nightshift_job_step Steps completed by running jobs.\n";
  if (jobs.ok()) {
    for (const auto& j : *jobs) {
      if (j.state() != v1::JOB_STATE_RUNNING) continue;
      absl::StrAppendFormat(&out, "nightshift_job_samples_per_second{job=\"%s\"} %g\n", j.id(),
                            j.progress().samples_per_second());
    }
  }
  std::map<std::string, int> workers;
  std::string eligible;
  int64_t preemptions = 0;
  const std::vector<v1::WorkerInfo> listed = c->ListWorkers();
  for (const auto& w : listed) {
    if (w.pool() == v1::WORKER_POOL_EDGE && w.state() != v1::WORKER_STATE_LOST) {
      absl::StrAppendFormat(&eligible, "nightshift_edge_worker_eligible{worker=\"%s\"} %d\n",
                            w.name(), w.eligibility().eligible() ? 1 : 0);
      preemptions += w.preemptions();
    }
  }
  for (const auto& w : listed) {
    std::string state = v1::WorkerState_Name(w.state()).substr(13);
    for (char& ch : state) ch = static_cast<char>(tolower(ch));
    ++workers[state];
  }
  out +=
      "# HELP nightshift_workers Registered workers by state.\n# TYPE nightshift_workers gauge\n";
  for (const auto& [state, n] : workers) {
    absl::StrAppendFormat(&out, "nightshift_workers{state=\"%s\"} %d\n", state, n);
  }
  out +=
      "# HELP nightshift_edge_worker_eligible Edge agents whose vehicle lets them compute (1) or "
      "not (0).\n# TYPE nightshift_edge_worker_eligible gauge\n";
  out += eligible;
  counter("nightshift_edge_preemptions_total",
          "Times edge agents' compute stopped because their vehicle became ineligible (as the "
          "registered agents report it).",
          preemptions);
  return out;
}

std::shared_ptr<const std::string> HttpApi::JobsJson(std::optional<v1::JobState> state) {
  const int64_t version = coordinator_->jobs_version();
  absl::MutexLock lock(&cache_mu_);
  if (!state.has_value() && jobs_json_version_ == version) return jobs_json_;
  // Each job printed again only when it changed (a running job reports
  // progress many times a second; the finished ones stay as they are).
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  std::string body = "{\"jobs\":[";
  bool first = true;
  for (const JobStore::VersionedJob& j : coordinator_->JobsSnapshot()) {
    auto& [job_version, json] = job_json_[j.job->id()];
    if (job_version != j.version || json.empty()) {
      json.clear();
      (void)google::protobuf::util::MessageToJsonString(*j.job, &json, options);
      job_version = j.version;
    }
    if (state.has_value() && j.job->state() != *state) continue;
    if (!first) body += ',';
    body += json;
    first = false;
  }
  body += "]}";
  auto shared = std::make_shared<const std::string>(std::move(body));
  if (state.has_value()) return shared;
  jobs_json_ = shared;
  jobs_json_version_ = version;
  return shared;
}

HttpResponse HttpApi::Handle(const HttpRequest& request) {
  Coordinator* c = coordinator_;
  absl::StatusOr<Route> route = ParseRoute(request.path, request.query);
  if (route.ok() && route->endpoint == Endpoint::kHealth) return Body("ok\n", "text/plain");
  // Every other path needs a viewer (or admin) token, checked first.
  absl::StatusOr<std::string> token = security::BearerToken(request.authorization);
  absl::StatusOr<security::Principal> caller =
      token.ok() ? c->Authenticate(*token) : absl::StatusOr<security::Principal>(token.status());
  if (!caller.ok()) return Error(caller.status());
  if (!security::Allows(caller->role, security::Access::kRead)) {
    return Error(absl::PermissionDeniedError(
        absl::StrCat("the status API needs a viewer or admin token; this one is a ",
                     security::RoleName(caller->role), " token")));
  }
  if (!route.ok()) return Error(route.status());
  switch (route->endpoint) {
    case Endpoint::kHealth:
      return Body("ok\n", "text/plain");
    case Endpoint::kMetrics:
      return Body(Metrics(c), "text/plain; version=0.0.4");
    case Endpoint::kJobs: {
      HttpResponse r;
      r.body = JobsJson(route->job_state);
      return r;
    }
    case Endpoint::kJob:
      return Result(c->GetJob(route->job_id));
    case Endpoint::kJobHistory:
      return Result(c->GetJobHistory(route->job_id));
    case Endpoint::kWorkers: {
      v1::ListWorkersResponse list;
      for (auto& w : c->ListWorkers()) {
        if (route->pool.has_value() && w.pool() != *route->pool) continue;
        if (route->worker_state.has_value() && w.state() != *route->worker_state) continue;
        *list.add_workers() = std::move(w);
      }
      return Json(list);
    }
  }
  return Error(absl::InternalError("unrouted endpoint"));
}

absl::StatusOr<std::unique_ptr<HttpApi>> HttpApi::Start(
    Coordinator* c, const std::string& address, const security::TransportSecurity& security) {
  auto api = std::make_unique<HttpApi>(c);
  security::HttpServerOptions options;
  options.threads = kHttpThreads;
  ASSIGN_OR_RETURN(
      api->server_,
      security::HttpServer::Start(
          address, security, [self = api.get()](const HttpRequest& r) { return self->Handle(r); },
          options));
  return api;
}

void HttpApi::Stop() {
  if (server_ != nullptr) server_->Stop();
}

HttpApi::~HttpApi() { Stop(); }

}  // namespace nightshift::coordinator
