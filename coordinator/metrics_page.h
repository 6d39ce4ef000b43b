// MetricsPage: the coordinator's /metrics, in Prometheus text format 0.0.4,
// named by Prometheus conventions (nightshift_ prefix, base units: seconds
// and ratios in [0, 1], counters end in _total).
//
// Cluster-wide: jobs by state and job events (submitted, succeeded, ...,
// generations, recoveries, rounds, updates, models published) as
// counters; workers by state.
// Per started job (RUNNING or WAITING; label job_id — not `job`, which
// Prometheus gives every scraped series itself): step and total steps,
// samples/s, training loss, test accuracy and loss (once evaluated),
// workers, generation, DiLoCo rounds completed. Per worker (labels
// worker, pool): its state (one series with value 1, label state),
// samples/s, last heartbeat as a Unix time; edge agents' eligibility and
// preemptions — every worker's up to kMaxWorkersWithOwnSeries workers,
// then only the data-center workers' (a fleet's vehicles are counted:
// nightshift_workers by state, nightshift_edge_workers_eligible). Latency histograms and call
// counters of the gRPC methods (grpc_method, grpc_code: heartbeats are grpc_method="Heartbeat") and
// of the HTTP endpoints (handler, code).
//
// Label values are escaped as the format requires (\\, \", \n). Reads
// jobs from the store's memory and workers under the coordinator's lock
// once; per-worker series grow with the fleet (about 4 per worker).
#ifndef NIGHTSHIFT_COORDINATOR_METRICS_PAGE_H_
#define NIGHTSHIFT_COORDINATOR_METRICS_PAGE_H_

#include <string>

#include "coordinator/coordinator.h"
#include "coordinator/rpc_metrics.h"

namespace nightshift::coordinator {

struct MetricsSources {
  Coordinator* coordinator = nullptr;
  const RpcMetrics* grpc = nullptr;  // the gRPC service's calls; null: none
  const RpcMetrics* http = nullptr;  // the HTTP API's requests; null: none
};

// Above this many workers, only data-center workers have series of their
// own (a fleet's vehicles are counted, not listed).
inline constexpr int64_t kMaxWorkersWithOwnSeries = 1000;

std::string MetricsPage(const MetricsSources& sources);

// The series of the two RpcMetrics.
inline constexpr RpcSeriesNames kGrpcSeries = {
    "nightshift_grpc_server_handling_seconds",
    "Time from a gRPC call's arrival to its status, by method.",
    "nightshift_grpc_server_handled_total",
    "gRPC calls answered, by method and status code.",
    "grpc_method",
    "grpc_code"};
inline constexpr RpcSeriesNames kHttpSeries = {
    "nightshift_http_request_duration_seconds",
    "Time the status API took to answer a request, by endpoint.",
    "nightshift_http_requests_total",
    "Status API requests answered, by endpoint and HTTP status.",
    "handler",
    "code"};

}  // namespace nightshift::coordinator

#endif  // NIGHTSHIFT_COORDINATOR_METRICS_PAGE_H_
