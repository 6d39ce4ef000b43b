// The HTTP server of the status API, secured like the gRPC links: TLS with
// the component's certificate (re-read when its files change: new
// connections get the new certificate), or plaintext under --insecure.
//
// HTTP is TLS with bearer tokens, not mutual TLS: browsers, Prometheus,
// curl and wrk reach it with the CA and a token. A client certificate is
// verified against the CA when one is presented, but not required.
#ifndef NIGHTSHIFT_SECURITY_HTTPS_SERVER_H_
#define NIGHTSHIFT_SECURITY_HTTPS_SERVER_H_

#include <memory>

#include "absl/status/statusor.h"
#include "security/credentials.h"

namespace httplib {
class Server;
}

namespace nightshift::security {

absl::StatusOr<std::unique_ptr<httplib::Server>> NewHttpServer(const TransportSecurity& security);

}  // namespace nightshift::security

#endif  // NIGHTSHIFT_SECURITY_HTTPS_SERVER_H_
