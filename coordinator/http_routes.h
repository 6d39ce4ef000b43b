// The routes of the status API: a request target (path and query, as sent
// on the wire) to what it asks for. Pure parsing, no coordinator and no
// sockets, so that coordinator/http_api_fuzzer can feed it anything.
//
//   /                        ?token=T  (the dashboard; with a token: log in)
//   /assets/{name}           the dashboard's scripts, styles and charting library
//   /healthz
//   /metrics
//   /v1/jobs                 ?state=queued|running|waiting|succeeded|failed|cancelled
//   /v1/jobs/{id}
//   /v1/jobs/{id}/history
//   /v1/workers              ?pool=datacenter|edge  &state=idle|busy|draining|lost
//                            &page_size=N (1000; at most 10000) &page_token=T
//   /v1/models               ?name=MODEL_NAME (published versions)
//
// Percent-escapes are decoded in each path segment and in query names and
// values ('+' is a space in a query); one trailing '/' is ignored. Values
// are matched without regard to case. Errors: NOT_FOUND for a path that is
// none of these; INVALID_ARGUMENT naming the offset of a bad escape or
// control character, or the query parameter that is unknown for the path,
// repeated, or has a value it cannot take.
#ifndef NIGHTSHIFT_COORDINATOR_HTTP_ROUTES_H_
#define NIGHTSHIFT_COORDINATOR_HTTP_ROUTES_H_

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nightshift/v1/job.pb.h"
#include "nightshift/v1/status.pb.h"

namespace nightshift::coordinator {

enum class Endpoint {
  kDashboard,
  kAsset,
  kHealth,
  kMetrics,
  kJobs,
  kJob,
  kJobHistory,
  kWorkers,
  kModels
};

struct Route {
  Endpoint endpoint = Endpoint::kHealth;
  std::string job_id;       // kJob, kJobHistory
  std::string asset;        // kAsset
  std::string login_token;  // kDashboard: ?token=, "" if none
  std::string model_name;   // kModels: ?name=, "" for every model
  // Filters (kJobs: job_state; kWorkers: pool, worker_state).
  std::optional<v1::JobState> job_state;
  std::optional<v1::WorkerPool> pool;
  std::optional<v1::WorkerState> worker_state;
  int page_size = 0;       // kWorkers: 0 for the default
  std::string page_token;  // kWorkers
};

absl::StatusOr<Route> ParseRoute(absl::string_view path, absl::string_view query);

}  // namespace nightshift::coordinator

#endif  // NIGHTSHIFT_COORDINATOR_HTTP_ROUTES_H_
