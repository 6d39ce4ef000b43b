// Transport security of every link: the one place that builds gRPC server
// and channel credentials (coordinator, Peer service, worker and CLI
// channels; the HTTP server's TLS is in http_server.h, from the same
// files).
//
// Mutual TLS with the project's CA (deploy/certs.sh makes it and every
// component's certificate): servers require a client certificate signed
// by the CA, channels verify the server's certificate and present their
// own. Certificate files are re-read when they change (gRPC's file
// watcher, every `refresh`), so a rotated certificate takes effect on new
// connections without a restart.
//
// Without TLS files a process refuses to start unless it was given
// --insecure, an explicit opt-out that is logged loudly (plaintext; tokens
// still apply). Insecure listening off loopback logs a second warning.
#ifndef NIGHTSHIFT_SECURITY_CREDENTIALS_H_
#define NIGHTSHIFT_SECURITY_CREDENTIALS_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/server_credentials.h"

namespace nightshift::security {

// PEM files: the CA that signs every component, this component's
// certificate chain and its private key.
struct TlsFiles {
  std::string ca;
  std::string cert;
  std::string key;
  bool empty() const { return ca.empty() && cert.empty() && key.empty(); }
};

struct TransportSecurity {
  bool insecure = false;  // plaintext (--insecure)
  TlsFiles tls;
  absl::Duration refresh = absl::Seconds(10);  // how often files are re-read
};

// From a process's flags: exactly one of `insecure` and a complete set of
// readable, matching TLS files. `who` names the process in messages.
// Logs the --insecure warning.
absl::StatusOr<TransportSecurity> TransportSecurityFromFlags(bool insecure, TlsFiles files,
                                                             absl::string_view who);

// Credentials to listen on `address` (HOST:PORT): mutual TLS, or plaintext
// under `insecure` (with a warning when HOST is not a loopback address).
std::shared_ptr<grpc::ServerCredentials> ServerCredentials(const TransportSecurity& security,
                                                           absl::string_view address);

// Credentials for channels this process dials.
std::shared_ptr<grpc::ChannelCredentials> ChannelCredentials(const TransportSecurity& security);

// "127.0.0.1", "::1", "[::1]", "localhost" and the rest of 127/8.
bool IsLoopbackHost(absl::string_view host);
// HOST of "HOST:PORT" (brackets of an IPv6 literal kept).
absl::string_view HostOf(absl::string_view address);

// Checks that `files` are PEM, that the key matches the certificate, and
// that the certificate is signed by the CA; the error names the file.
absl::Status CheckTlsFiles(const TlsFiles& files);

}  // namespace nightshift::security

#endif  // NIGHTSHIFT_SECURITY_CREDENTIALS_H_
