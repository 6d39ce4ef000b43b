// HttpApi: the coordinator's HTTP status API (read-only), bodies in the
// proto3 JSON of the same messages the gRPC API returns, and the
// dashboard that shows them:
//   GET /                                the dashboard (coordinator/dashboard/)
//   GET /?token=T                        signs in: 303 to / with T in an HttpOnly cookie
//   GET /assets/{name}                   its script, styles and uPlot
//   GET /v1/jobs[?state=S]               ListJobsResponse (compact: pollers read it)
//   GET /v1/jobs/{id}                    JobStatus
//   GET /v1/jobs/{id}/history            GetJobHistoryResponse
//   GET /v1/workers[?pool=P&state=S]     ListWorkersResponse
//   GET /healthz                         "ok"
//   GET /metrics                         Prometheus text format (coordinator/metrics_page.h)
// (Routes and their query parameters: coordinator/http_routes.h.) Errors
// come back as {"code": "NOT_FOUND", "message": "..."} with the matching
// HTTP status. Every path but /healthz needs `Authorization: Bearer TOKEN`
// of a viewer or admin, or the dashboard's cookie holding one (401
// without a known token, at / the sign-in page; 403 with another role);
// the token is checked before the path, so a caller without one learns
// nothing about what exists. HTTPS with the component's certificate unless
// --insecure, on the event loops of security/http_server.h.
#ifndef NIGHTSHIFT_COORDINATOR_HTTP_API_H_
#define NIGHTSHIFT_COORDINATOR_HTTP_API_H_

#include <map>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "base/clock.h"
#include "coordinator/coordinator.h"
#include "coordinator/http_routes.h"
#include "coordinator/rpc_metrics.h"
#include "security/credentials.h"
#include "security/http_server.h"

namespace nightshift::coordinator {

struct HttpApiOptions {
  // The gRPC service's call metrics, for /metrics (null: none).
  const RpcMetrics* grpc_metrics = nullptr;
  // Times requests for /metrics (null: the wall clock).
  Clock* clock = nullptr;
  // The dashboard's cookie is sent over HTTPS only (Start sets it from
  // the transport: false under --insecure).
  bool secure_cookie = true;
};

class HttpApi {
 public:
  // `address` like "127.0.0.1:8080" (port 0: a free one).
  static absl::StatusOr<std::unique_ptr<HttpApi>> Start(Coordinator* coordinator,
                                                        const std::string& address,
                                                        const security::TransportSecurity& security,
                                                        HttpApiOptions options = {});
  // Without a server: Handle() only (tests, coordinator/http_api_fuzzer).
  explicit HttpApi(Coordinator* coordinator, HttpApiOptions options = {})
      : coordinator_(coordinator),
        options_(options),
        http_metrics_(options.clock != nullptr ? options.clock : &wall_clock_) {}
  ~HttpApi();
  void Stop();
  int port() const { return server_ != nullptr ? server_->port() : 0; }

  // One request, start to end: the token, the route, the reply. Thread-
  // safe; no sockets.
  security::HttpResponse Handle(const security::HttpRequest& request);

  // Event loops serving connections (each with epoll; an idle keep-alive
  // connection costs nothing).
  static constexpr int kHttpThreads = 2;

 private:
  // GET /?token=T: a viewer or admin token becomes the dashboard's
  // cookie (303 to /); any other gets the sign-in page (401).
  security::HttpResponse LogIn(const std::string& token);
  // Handle() but for the metrics of the request.
  security::HttpResponse Serve(const security::HttpRequest& request,
                               const absl::StatusOr<Route>& route);
  // The /v1/jobs body (compact JSON) of the jobs in `state` (all: nullopt).
  // Unfiltered it is cached and rebuilt when a job changes, from each
  // job's JSON, printed again only when that job changed.
  std::shared_ptr<const std::string> JobsJson(std::optional<v1::JobState> state);
  Coordinator* const coordinator_;
  const HttpApiOptions options_;
  RealClock wall_clock_;
  RpcMetrics http_metrics_;  // this API's own requests
  absl::Mutex cache_mu_;
  std::shared_ptr<const std::string> jobs_json_ ABSL_GUARDED_BY(cache_mu_);
  int64_t jobs_json_version_ ABSL_GUARDED_BY(cache_mu_) = -1;
  std::map<std::string, std::pair<int64_t, std::string>> job_json_ ABSL_GUARDED_BY(cache_mu_);
  std::unique_ptr<security::HttpServer> server_;
};

}  // namespace nightshift::coordinator

#endif  // NIGHTSHIFT_COORDINATOR_HTTP_API_H_
