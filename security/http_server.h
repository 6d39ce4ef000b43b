// HttpServer: the HTTP/1.1 server of the status API, secured like the gRPC
// links: TLS with the component's certificate (re-read when its files
// change: new connections get the new certificate), or plaintext under
// --insecure.
//
// HTTP is TLS with bearer tokens, not mutual TLS: browsers, Prometheus,
// curl and wrk reach it with the CA and a token. A client certificate is
// verified against the CA when one is presented, but not required.
//
// Built on libevent's evhttp: `threads` event loops, each accepting on the
// one listening socket and serving the connections it accepted with epoll. An idle keep-alive
// connection costs nothing until it speaks (cpp-httplib 0.11, used before, held a thread per
// connection and polled it every 10 ms: 64 idle keep-alive clients cost a training job on the same
// machine a fifth of its speed; bench/README.md, "Status API").
//
// The handler runs on a loop thread and must be thread-safe and quick: a
// slow handler delays the other connections of its loop. Only GET and HEAD
// are served (501 Not Implemented otherwise); bodies over `max_body_bytes` and headers
// over `max_header_bytes` are refused by the parser; a connection silent
// for `timeout` (while idle, reading or writing) is closed.
#ifndef NIGHTSHIFT_SECURITY_HTTP_SERVER_H_
#define NIGHTSHIFT_SECURITY_HTTP_SERVER_H_

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "security/credentials.h"

struct evhttp_request;

namespace nightshift::security {

struct HttpRequest {
  std::string method;         // "GET" or "HEAD"
  std::string path;           // as sent, percent-escapes not decoded
  std::string query;          // after the first '?', not decoded; "" if none
  std::string authorization;  // the Authorization header; "" if none
  std::string cookie;         // the Cookie header; "" if none
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  // Shared, so that a cached body goes out without a copy.
  std::shared_ptr<const std::string> body;
  std::vector<std::pair<std::string, std::string>> headers;
};

using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

struct HttpServerOptions {
  int threads = 2;  // event loops
  absl::Duration timeout = absl::Seconds(10);
  int max_header_bytes = 16 << 10;
  int max_body_bytes = 64 << 10;
};

class HttpServer {
 public:
  // `address` like "127.0.0.1:8080", "[::1]:8080" or "localhost:0" (port 0:
  // a free one). Serves until Stop() or destruction.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(const std::string& address,
                                                           const TransportSecurity& security,
                                                           HttpHandler handler,
                                                           const HttpServerOptions& options = {});
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Closes the listening sockets and every connection; idempotent.
  void Stop();
  int port() const { return port_; }

 private:
  struct Loop;
  class Tls;
  HttpServer() = default;
  void Serve(evhttp_request* req);  // on a loop thread
  HttpHandler handler_;
  std::unique_ptr<Tls> tls_;
  std::vector<std::unique_ptr<Loop>> loops_;
  int port_ = 0;
};

}  // namespace nightshift::security

#endif  // NIGHTSHIFT_SECURITY_HTTP_SERVER_H_
