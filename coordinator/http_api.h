// HttpApi: the coordinator's HTTP status API (read-only), bodies in the
// proto3 JSON of the same messages the gRPC API returns:
//   GET /v1/jobs                 ListJobsResponse (compact: pollers read it)
//   GET /v1/jobs/{id}            JobStatus
//   GET /v1/jobs/{id}/history    GetJobHistoryResponse
//   GET /v1/workers              ListWorkersResponse
//   GET /healthz                 "ok"
//   GET /metrics                 Prometheus text format (base units, _total counters)
// Errors come back as {"code": "NOT_FOUND", "message": "..."} with the
// matching HTTP status. Every path but /healthz needs
// `Authorization: Bearer TOKEN` of a viewer or admin (401 without a known
// token, 403 with another role). HTTPS with the component's certificate
// unless --insecure (security/https_server.h). Serves on its own thread
// until Stop().
#ifndef NIGHTSHIFT_COORDINATOR_HTTP_API_H_
#define NIGHTSHIFT_COORDINATOR_HTTP_API_H_

#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "coordinator/coordinator.h"
#include "security/credentials.h"

namespace httplib {
class Server;
}

namespace nightshift::coordinator {

class HttpApi {
 public:
  // `address` like "127.0.0.1:8080" (port 0: a free one).
  static absl::StatusOr<std::unique_ptr<HttpApi>> Start(
      Coordinator* coordinator, const std::string& address,
      const security::TransportSecurity& security);
  ~HttpApi();
  void Stop();
  int port() const { return port_; }

  // The /metrics page (exposed for tests).
  static std::string Metrics(Coordinator* coordinator);

  // Connections served at once (a thread each).
  static constexpr int kHttpThreads = 256;

 private:
  HttpApi() = default;
  // The /v1/jobs body (compact JSON), rebuilt when a job changes, from
  // each job's JSON, printed again only when that job changed.
  std::string JobsJson(Coordinator* c);
  absl::Mutex cache_mu_;
  std::string jobs_json_ ABSL_GUARDED_BY(cache_mu_);
  int64_t jobs_json_version_ ABSL_GUARDED_BY(cache_mu_) = -1;
  std::map<std::string, std::pair<int64_t, std::string>> job_json_ ABSL_GUARDED_BY(cache_mu_);
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace nightshift::coordinator

#endif  // NIGHTSHIFT_COORDINATOR_HTTP_API_H_
