#include "coordinator/http_api.h"

#include <httplib.h>

#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status_macros.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "proto/job_state.h"
#include "security/https_server.h"
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

void SendJson(httplib::Response& res, const google::protobuf::Message& m) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.always_print_primitive_fields = true;  // empty lists and zeros too
  std::string json;
  // Our own well-formed messages: printing cannot fail.
  (void)google::protobuf::util::MessageToJsonString(m, &json, options);
  res.set_content(json, "application/json");
}

// {"code": "NOT_FOUND", "message": "..."}, escaped by protobuf's printer.
void SendStatus(httplib::Response& res, const absl::Status& s) {
  google::protobuf::Struct body;
  (*body.mutable_fields())["code"].set_string_value(absl::StatusCodeToString(s.code()));
  (*body.mutable_fields())["message"].set_string_value(std::string(s.message()));
  SendJson(res, body);
  res.status = HttpCode(s.code());
}

template <typename T>
void SendResult(httplib::Response& res, const absl::StatusOr<T>& result) {
  if (!result.ok()) return SendStatus(res, result.status());
  SendJson(res, *result);
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
  for (const auto& w : c->ListWorkers()) {
    std::string state = v1::WorkerState_Name(w.state()).substr(13);
    for (char& ch : state) ch = static_cast<char>(tolower(ch));
    ++workers[state];
  }
  out +=
      "# HELP nightshift_workers Registered workers by state.\n# TYPE nightshift_workers gauge\n";
  for (const auto& [state, n] : workers) {
    absl::StrAppendFormat(&out, "nightshift_workers{state=\"%s\"} %d\n", state, n);
  }
  return out;
}

std::string HttpApi::JobsJson(Coordinator* c) {
  const int64_t version = c->jobs_version();
  absl::MutexLock lock(&cache_mu_);
  if (jobs_json_version_ == version) return jobs_json_;
  // Each job printed again only when it changed (a running job reports
  // progress many times a second; the finished ones stay as they are).
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  std::string body = "{\"jobs\":[";
  bool first = true;
  for (const JobStore::VersionedJob& j : c->JobsSnapshot()) {
    auto& [job_version, json] = job_json_[j.job->id()];
    if (job_version != j.version || json.empty()) {
      json.clear();
      (void)google::protobuf::util::MessageToJsonString(*j.job, &json, options);
      job_version = j.version;
    }
    if (!first) body += ',';
    body += json;
    first = false;
  }
  body += "]}";
  jobs_json_ = std::move(body);
  jobs_json_version_ = version;
  return jobs_json_;
}

absl::StatusOr<std::unique_ptr<HttpApi>> HttpApi::Start(
    Coordinator* c, const std::string& address, const security::TransportSecurity& security) {
  std::unique_ptr<HttpApi> api(new HttpApi());
  ASSIGN_OR_RETURN(api->server_, security::NewHttpServer(security));
  httplib::Server& s = *api->server_;
  s.set_tcp_nodelay(true);  // keep-alive clients: no Nagle / delayed-ACK stall per reply
  // A thread per open connection (httplib serves a keep-alive connection
  // on one thread until it closes): enough for many keep-alive clients
  // (Prometheus, dashboards, wrk's 64) without queueing new ones behind
  // them, and connections kept for many requests.
  // (Each idle keep-alive connection costs ~90 wake-ups a second: cpp-
  // httplib 0.11 polls it every 10 ms. bench/README.md, "Status API".)
  s.new_task_queue = [] { return new httplib::ThreadPool(kHttpThreads); };
  s.set_keep_alive_max_count(100000);
  s.set_keep_alive_timeout(10);
  s.set_read_timeout(10);
  s.set_write_timeout(10);
  s.set_payload_max_length(64 << 10);  // a read-only API: no large bodies
  // Every path but /healthz needs a viewer (or admin) token.
  s.set_pre_routing_handler([c](const httplib::Request& req, httplib::Response& res) {
    if (req.path == "/healthz") return httplib::Server::HandlerResponse::Unhandled;
    absl::StatusOr<std::string> token =
        security::BearerToken(req.get_header_value("Authorization"));
    absl::StatusOr<security::Principal> caller =
        token.ok() ? c->Authenticate(*token) : absl::StatusOr<security::Principal>(token.status());
    absl::Status refused = caller.status();
    if (caller.ok() && !security::Allows(caller->role, security::Access::kRead)) {
      refused = absl::PermissionDeniedError(
          absl::StrCat("the status API needs a viewer or admin token; this one is a ",
                       security::RoleName(caller->role), " token"));
    }
    if (refused.ok()) return httplib::Server::HandlerResponse::Unhandled;
    if (refused.code() == absl::StatusCode::kUnauthenticated) {
      res.set_header("WWW-Authenticate", "Bearer realm=\"nightshift\"");
    }
    SendStatus(res, refused);
    return httplib::Server::HandlerResponse::Handled;
  });
  s.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok\n", "text/plain");
  });
  s.Get("/metrics", [c](const httplib::Request&, httplib::Response& res) {
    res.set_content(Metrics(c), "text/plain; version=0.0.4");
  });
  HttpApi* self = api.get();
  s.Get("/v1/jobs", [c, self](const httplib::Request&, httplib::Response& res) {
    res.set_content(self->JobsJson(c), "application/json");
  });
  s.Get(R"(/v1/jobs/([^/]+))", [c](const httplib::Request& req, httplib::Response& res) {
    SendResult(res, c->GetJob(req.matches[1]));
  });
  s.Get(R"(/v1/jobs/([^/]+)/history)", [c](const httplib::Request& req, httplib::Response& res) {
    SendResult(res, c->GetJobHistory(req.matches[1]));
  });
  s.Get("/v1/workers", [c](const httplib::Request&, httplib::Response& res) {
    v1::ListWorkersResponse list;
    for (auto& w : c->ListWorkers()) *list.add_workers() = std::move(w);
    SendJson(res, list);
  });
  s.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (res.status == 404 && res.body.empty()) {
      SendStatus(res, absl::NotFoundError(absl::StrCat("no such path: ", req.path)));
    }
  });
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("--http: '", address, "' is not HOST:PORT"));
  }
  const std::string host = address.substr(0, colon);
  const int port = std::atoi(address.substr(colon + 1).c_str());
  api->port_ = port == 0 ? s.bind_to_any_port(host) : (s.bind_to_port(host, port) ? port : -1);
  if (api->port_ <= 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", address));
  }
  api->thread_ = std::thread([&s] { s.listen_after_bind(); });
  return api;
}

void HttpApi::Stop() {
  if (server_ != nullptr) server_->stop();
  if (thread_.joinable()) thread_.join();
}

HttpApi::~HttpApi() { Stop(); }

}  // namespace nightshift::coordinator
