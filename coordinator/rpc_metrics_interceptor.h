// RpcMetricsInterceptorFactory: a gRPC server interceptor that times every
// call of the server it is installed in (ServerBuilder::experimental().
// SetInterceptorCreators) from the moment gRPC matched it to a method to
// the moment its status goes out, and records it in an RpcMetrics under
// the method's short name ("Heartbeat") and the status code's name
// ("OK", "NOT_FOUND"). Unary and streaming calls alike; a call cancelled
// before it sent a status is not recorded.
#ifndef NIGHTSHIFT_COORDINATOR_RPC_METRICS_INTERCEPTOR_H_
#define NIGHTSHIFT_COORDINATOR_RPC_METRICS_INTERCEPTOR_H_

#include <grpcpp/support/server_interceptor.h>

#include "coordinator/rpc_metrics.h"

namespace nightshift::coordinator {

class RpcMetricsInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit RpcMetricsInterceptorFactory(RpcMetrics* metrics) : metrics_(metrics) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override;

 private:
  RpcMetrics* const metrics_;
};

// The name Prometheus series use for a gRPC status code ("DEADLINE_EXCEEDED").
const char* GrpcCodeName(grpc::StatusCode code);

}  // namespace nightshift::coordinator

#endif  // NIGHTSHIFT_COORDINATOR_RPC_METRICS_INTERCEPTOR_H_
