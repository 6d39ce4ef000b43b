// Client channels: every gRPC channel this project dials to a coordinator
// (worker daemons, the CLI) is made here, with the process's transport
// security and a bearer token on every call, and messages of any size
// allowed (models and checkpoints travel whole; the server bounds them).
//
// The token is attached by a client interceptor rather than call
// credentials, so that it travels the same way over TLS and under
// --insecure (gRPC sends call credentials only over TLS).
#ifndef NIGHTSHIFT_SECURITY_CHANNEL_H_
#define NIGHTSHIFT_SECURITY_CHANNEL_H_

#include <memory>
#include <string>

#include "absl/synchronization/mutex.h"
#include "grpcpp/channel.h"
#include "grpcpp/support/channel_arguments.h"
#include "security/credentials.h"

namespace nightshift::security {

// The bearer token a client presents; replaceable at any time (a worker
// swaps its join token for its own credential once enrolled).
class TokenSource {
 public:
  explicit TokenSource(std::string token = "") : token_(std::move(token)) {}
  std::string Get() const {
    absl::MutexLock lock(&mu_);
    return token_;
  }
  void Set(std::string token) {
    absl::MutexLock lock(&mu_);
    token_ = std::move(token);
  }

 private:
  mutable absl::Mutex mu_;
  std::string token_ ABSL_GUARDED_BY(mu_);
};

// `token` may be null: no authorization header (the Peer service, which
// authenticates by group key instead).
std::shared_ptr<grpc::Channel> NewChannel(const std::string& address,
                                          const TransportSecurity& security,
                                          std::shared_ptr<TokenSource> token,
                                          grpc::ChannelArguments args = {});

}  // namespace nightshift::security

#endif  // NIGHTSHIFT_SECURITY_CHANNEL_H_
