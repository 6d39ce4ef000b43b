// HttpApi: the coordinator's HTTP status API (read-only), bodies in the
// proto3 JSON of the same messages the gRPC API returns:
//   GET /v1/jobs[?state=S]               ListJobsResponse (compact: pollers read it)
//   GET /v1/jobs/{id}                    JobStatus
//   GET /v1/jobs/{id}/history            GetJobHistoryResponse
//   GET /v1/workers[?pool=P&state=S]     ListWorkersResponse
//   GET /healthz                         "ok"
//   GET /metrics                         Prometheus text format (base units, _total counters)
// (Routes and their query parameters: coordinator/http_routes.h.) Errors
// come back as {"code": "NOT_FOUND", "message": "..."} with the matching
// HTTP status. Every path but /healthz needs `Authorization: Bearer TOKEN`
// of a viewer or admin (401 without a known token, 403 with another role);
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
#include "coordinator/coordinator.h"
#include "security/credentials.h"
#include "security/http_server.h"

namespace nightshift::coordinator {

class HttpApi {
 public:
  // `address` like "127.0.0.1:8080" (port 0: a free one).
  static absl::StatusOr<std::unique_ptr<HttpApi>> Start(
      Coordinator* coordinator, const std::string& address,
      const security::TransportSecurity& security);
  // Without a server: Handle() only (tests, coordinator/http_api_fuzzer).
  explicit HttpApi(Coordinator* coordinator) : coordinator_(coordinator) {}
  ~HttpApi();
  void Stop();
  int port() const { return server_ != nullptr ? server_->port() : 0; }

  // One request, start to end: the token, the route, the reply. Thread-
  // safe; no sockets.
  security::HttpResponse Handle(const security::HttpRequest& request);

  // The /metrics page (exposed for tests).
  static std::string Metrics(Coordinator* coordinator);

  // Event loops serving connections (each with epoll; an idle keep-alive
  // connection costs nothing).
  static constexpr int kHttpThreads = 2;

 private:
  // The /v1/jobs body (compact JSON) of the jobs in `state` (all: nullopt).
  // Unfiltered it is cached and rebuilt when a job changes, from each
  // job's JSON, printed again only when that job changed.
  std::shared_ptr<const std::string> JobsJson(std::optional<v1::JobState> state);
  Coordinator* const coordinator_;
  absl::Mutex cache_mu_;
  std::shared_ptr<const std::string> jobs_json_ ABSL_GUARDED_BY(cache_mu_);
  int64_t jobs_json_version_ ABSL_GUARDED_BY(cache_mu_) = -1;
  std::map<std::string, std::pair<int64_t, std::string>> job_json_ ABSL_GUARDED_BY(cache_mu_);
  std::unique_ptr<security::HttpServer> server_;
};

}  // namespace nightshift::coordinator

#endif  // NIGHTSHIFT_COORDINATOR_HTTP_API_H_
