#include "coordinator/http_api.h"

#include <map>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "base/status_macros.h"
#include "coordinator/dashboard/assets.h"
#include "coordinator/http_routes.h"
#include "coordinator/metrics_page.h"
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

namespace {

// The handler label of a request's metrics: its route, not its path (ids
// would make a series per job, and a scanner's paths one per probe).
const char* EndpointLabel(const absl::StatusOr<Route>& route) {
  if (!route.ok()) return "unknown";
  switch (route->endpoint) {
    case Endpoint::kDashboard:
      return "/";
    case Endpoint::kAsset:
      return "/assets/{name}";
    case Endpoint::kHealth:
      return "/healthz";
    case Endpoint::kMetrics:
      return "/metrics";
    case Endpoint::kJobs:
      return "/v1/jobs";
    case Endpoint::kJob:
      return "/v1/jobs/{id}";
    case Endpoint::kJobHistory:
      return "/v1/jobs/{id}/history";
    case Endpoint::kWorkers:
      return "/v1/workers";
    case Endpoint::kModels:
      return "/v1/models";
  }
  return "unknown";
}

constexpr absl::string_view kTokenCookie = "nightshift_token";

// The dashboard's token from a Cookie header ("a=1; nightshift_token=T");
// "" if it holds none.
std::string CookieToken(absl::string_view header) {
  for (absl::string_view pair : absl::StrSplit(header, ';')) {
    pair = absl::StripAsciiWhitespace(pair);
    if (absl::ConsumePrefix(&pair, kTokenCookie) && absl::ConsumePrefix(&pair, "=")) {
      return std::string(pair);
    }
  }
  return "";
}

// A dashboard file, with headers that keep it to this origin's scripts and
// out of other sites' frames.
HttpResponse AssetResponse(const dashboard::Asset& asset) {
  HttpResponse r = Body(std::string(asset.data), std::string(asset.content_type));
  r.headers = {{"Cache-Control", "no-cache"},
               {"X-Content-Type-Options", "nosniff"},
               {"Content-Security-Policy",
                "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                "frame-ancestors 'none'"}};
  return r;
}

}  // namespace

HttpResponse HttpApi::LogIn(const std::string& token) {
  absl::StatusOr<security::Principal> caller = coordinator_->Authenticate(token);
  if (!caller.ok() || !security::Allows(caller->role, security::Access::kRead)) {
    HttpResponse r = AssetResponse(*dashboard::FindAsset("login.html"));
    r.status = 401;
    return r;
  }
  // The token goes into a cookie only this origin's requests carry (not
  // readable by scripts), and out of the address bar.
  HttpResponse r = Body("", "text/plain");
  r.status = 303;
  r.headers = {
      {"Location", "/"},
      {"Cache-Control", "no-store"},
      {"Set-Cookie", absl::StrCat(kTokenCookie, "=", token, "; Path=/; HttpOnly; SameSite=Strict",
                                  options_.secure_cookie ? "; Secure" : "")}};
  return r;
}

HttpResponse HttpApi::Handle(const HttpRequest& request) {
  const absl::Time started = http_metrics_.Now();
  const absl::StatusOr<Route> route = ParseRoute(request.path, request.query);
  HttpResponse response = Serve(request, route);
  http_metrics_.Record(EndpointLabel(route), absl::StrCat(response.status), started);
  return response;
}

HttpResponse HttpApi::Serve(const HttpRequest& request, const absl::StatusOr<Route>& route) {
  Coordinator* c = coordinator_;
  if (route.ok() && route->endpoint == Endpoint::kHealth) return Body("ok\n", "text/plain");
  const bool page = route.ok() && route->endpoint == Endpoint::kDashboard;
  if (page && !route->login_token.empty()) return LogIn(route->login_token);
  // Every other path needs a viewer (or admin) token, checked first: from
  // the Authorization header, or from the dashboard's cookie.
  const std::string cookie_token = CookieToken(request.cookie);
  absl::StatusOr<std::string> token = request.authorization.empty() && !cookie_token.empty()
                                          ? absl::StatusOr<std::string>(cookie_token)
                                          : security::BearerToken(request.authorization);
  absl::StatusOr<security::Principal> caller =
      token.ok() ? c->Authenticate(*token) : absl::StatusOr<security::Principal>(token.status());
  if (caller.ok() && !security::Allows(caller->role, security::Access::kRead)) {
    caller = absl::PermissionDeniedError(
        absl::StrCat("the status API needs a viewer or admin token; this one is a ",
                     security::RoleName(caller->role), " token"));
  }
  if (!caller.ok()) {
    if (!page) return Error(caller.status());
    HttpResponse r = AssetResponse(*dashboard::FindAsset("login.html"));
    r.status = 401;
    return r;
  }
  if (!route.ok()) return Error(route.status());
  switch (route->endpoint) {
    case Endpoint::kHealth:
      return Body("ok\n", "text/plain");
    case Endpoint::kDashboard:
      return AssetResponse(*dashboard::FindAsset("index.html"));
    case Endpoint::kAsset: {
      const dashboard::Asset* asset = dashboard::FindAsset(route->asset);
      if (asset == nullptr) {
        return Error(absl::NotFoundError(absl::StrCat("no such asset: ", route->asset)));
      }
      return AssetResponse(*asset);
    }
    case Endpoint::kMetrics:
      return Body(MetricsPage({c, options_.grpc_metrics, &http_metrics_}),
                  "text/plain; version=0.0.4");
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
      v1::ListWorkersRequest request;
      if (route->pool.has_value()) request.set_pool(*route->pool);
      if (route->worker_state.has_value()) request.set_state(*route->worker_state);
      request.set_page_size(route->page_size);
      request.set_page_token(route->page_token);
      return Result(c->ListWorkers(request));
    }
    case Endpoint::kModels: {
      v1::ListModelsResponse list;
      for (auto& v : c->ListModels(route->model_name)) *list.add_versions() = std::move(v);
      return Json(list);
    }
  }
  return Error(absl::InternalError("unrouted endpoint"));
}

absl::StatusOr<std::unique_ptr<HttpApi>> HttpApi::Start(Coordinator* c, const std::string& address,
                                                        const security::TransportSecurity& security,
                                                        HttpApiOptions api_options) {
  api_options.secure_cookie = !security.insecure;
  auto api = std::make_unique<HttpApi>(c, api_options);
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
