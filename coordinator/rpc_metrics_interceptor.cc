#include "coordinator/rpc_metrics_interceptor.h"

#include <string>

#include "absl/strings/string_view.h"

namespace nightshift::coordinator {
namespace {

class TimingInterceptor final : public grpc::experimental::Interceptor {
 public:
  TimingInterceptor(RpcMetrics* metrics, absl::string_view method)
      : metrics_(metrics), method_(method), started_(metrics->Now()) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      metrics_->Record(method_, GrpcCodeName(methods->GetSendStatus().error_code()), started_);
    }
    methods->Proceed();
  }

 private:
  RpcMetrics* const metrics_;
  const std::string method_;
  const absl::Time started_;
};

}  // namespace

grpc::experimental::Interceptor* RpcMetricsInterceptorFactory::CreateServerInterceptor(
    grpc::experimental::ServerRpcInfo* info) {
  absl::string_view method = info->method() != nullptr ? info->method() : "unknown";
  const size_t slash = method.rfind('/');
  if (slash != absl::string_view::npos) method.remove_prefix(slash + 1);
  return new TimingInterceptor(metrics_, method);  // gRPC deletes it with the call
}

const char* GrpcCodeName(grpc::StatusCode code) {
  static constexpr const char* kNames[] = {"OK",
                                           "CANCELLED",
                                           "UNKNOWN",
                                           "INVALID_ARGUMENT",
                                           "DEADLINE_EXCEEDED",
                                           "NOT_FOUND",
                                           "ALREADY_EXISTS",
                                           "PERMISSION_DENIED",
                                           "RESOURCE_EXHAUSTED",
                                           "FAILED_PRECONDITION",
                                           "ABORTED",
                                           "OUT_OF_RANGE",
                                           "UNIMPLEMENTED",
                                           "INTERNAL",
                                           "UNAVAILABLE",
                                           "DATA_LOSS",
                                           "UNAUTHENTICATED"};
  const int i = static_cast<int>(code);
  return i >= 0 && i < static_cast<int>(std::size(kNames)) ? kNames[i] : "UNKNOWN";
}

}  // namespace nightshift::coordinator
