#include "security/http_server.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "glog/logging.h"

namespace nightshift::security {

// The TLS context of every connection: TLS 1.2 or newer, client
// certificates verified against the CA when presented, and our
// certificate given to each new connection from the files, re-read when
// either file's modification time changes (checked at most once per
// `refresh`). Sessions resume (a browser's later connections do).
class HttpServer::Tls {
 public:
  explicit Tls(const TransportSecurity& s) : files_(s.tls), refresh_(s.refresh) {}
  ~Tls() {
    Clear();
    SSL_CTX_free(ctx_);
  }

  absl::Status Init() {
    ctx_ = SSL_CTX_new(TLS_server_method());
    if (ctx_ == nullptr) return absl::InternalError("HTTP: cannot make a TLS context");
    SSL_CTX_set_min_proto_version(ctx_, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx_, SSL_OP_NO_RENEGOTIATION);
    if (SSL_CTX_load_verify_locations(ctx_, files_.ca.c_str(), nullptr) != 1) {
      return absl::InvalidArgumentError(absl::StrCat("HTTP: cannot read the CA ", files_.ca));
    }
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
    // A server that verifies client certificates must name the context its
    // sessions belong to, or OpenSSL answers every resumption (a browser's
    // second connection) with an internal_error alert.
    static constexpr unsigned char kSessionContext[] = "nightshift-http";
    SSL_CTX_set_session_id_context(ctx_, kSessionContext, sizeof(kSessionContext) - 1);
    {
      absl::MutexLock lock(&mu_);
      if (!LoadLocked()) {
        return absl::InvalidArgumentError(absl::StrCat("HTTP: cannot use the certificate ",
                                                       files_.cert, " and key ", files_.key));
      }
    }
    return absl::OkStatus();
  }

  // A connection's TLS state with the current certificate. (Set here, not
  // in a certificate callback: OpenSSL skips that callback when a session
  // resumes, and the handshake then fails with an internal_error alert.)
  // Null only when OpenSSL is out of memory.
  SSL* NewSession() {
    SSL* ssl = SSL_new(ctx_);
    if (ssl != nullptr && !Use(ssl)) LOG(WARNING) << "HTTP: cannot use the certificate";
    return ssl;
  }

 private:
  bool Use(SSL* ssl) {
    absl::MutexLock lock(&mu_);
    const auto now = std::chrono::steady_clock::now();
    if (now - checked_ >= absl::ToChronoNanoseconds(refresh_)) {
      checked_ = now;
      if (Stamp() != stamp_ && !LoadLocked()) {
        LOG(WARNING) << "HTTP: " << files_.cert << " changed but cannot be loaded; "
                     << "keeping the previous certificate";
      }
    }
    return SSL_use_cert_and_key(ssl, cert_, key_, chain_, 1) == 1;
  }

  std::pair<int64_t, int64_t> Stamp() const {
    struct stat a {
    }, b{};
    stat(files_.cert.c_str(), &a);
    stat(files_.key.c_str(), &b);
    return {a.st_mtim.tv_sec * 1000000000LL + a.st_mtim.tv_nsec,
            b.st_mtim.tv_sec * 1000000000LL + b.st_mtim.tv_nsec};
  }

  // Loads both files; on any failure keeps what it had.
  bool LoadLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const auto stamp = Stamp();
    FILE* f = std::fopen(files_.cert.c_str(), "r");
    if (f == nullptr) return false;
    X509* cert = PEM_read_X509(f, nullptr, nullptr, nullptr);
    STACK_OF(X509)* chain = sk_X509_new_null();
    while (X509* extra = PEM_read_X509(f, nullptr, nullptr, nullptr)) sk_X509_push(chain, extra);
    std::fclose(f);
    f = std::fopen(files_.key.c_str(), "r");
    EVP_PKEY* key = f != nullptr ? PEM_read_PrivateKey(f, nullptr, nullptr, nullptr) : nullptr;
    if (f != nullptr) std::fclose(f);
    if (cert == nullptr || key == nullptr || X509_check_private_key(cert, key) != 1) {
      X509_free(cert);
      EVP_PKEY_free(key);
      sk_X509_pop_free(chain, X509_free);
      return false;
    }
    Clear();
    cert_ = cert;
    key_ = key;
    chain_ = chain;
    stamp_ = stamp;
    return true;
  }

  void Clear() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    X509_free(cert_);
    EVP_PKEY_free(key_);
    if (chain_ != nullptr) sk_X509_pop_free(chain_, X509_free);
    cert_ = nullptr;
    key_ = nullptr;
    chain_ = nullptr;
  }

  const TlsFiles files_;
  const absl::Duration refresh_;
  SSL_CTX* ctx_ = nullptr;
  absl::Mutex mu_;
  X509* cert_ ABSL_GUARDED_BY(mu_) = nullptr;
  EVP_PKEY* key_ ABSL_GUARDED_BY(mu_) = nullptr;
  STACK_OF(X509) * chain_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::pair<int64_t, int64_t> stamp_ ABSL_GUARDED_BY(mu_);
  std::chrono::steady_clock::time_point checked_ ABSL_GUARDED_BY(mu_);
};

// One event loop: its event base, evhttp, listening socket (owned by the
// evhttp once accepted on) and the eventfd that Stop() writes to wake it.
struct HttpServer::Loop {
  ~Loop() {
    if (wake_event != nullptr) event_free(wake_event);
    if (http != nullptr) evhttp_free(http);  // closes the socket and every connection
    if (base != nullptr) event_base_free(base);
    if (wake_fd >= 0) close(wake_fd);
  }
  event_base* base = nullptr;
  evhttp* http = nullptr;
  event* wake_event = nullptr;
  int wake_fd = -1;
  std::thread thread;
};

namespace {

const char* Reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 303:
      return "See Other";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 412:
      return "Precondition Failed";
    case 429:
      return "Too Many Requests";
    case 503:
      return "Service Unavailable";
    default:
      return status < 500 ? "Client Error" : "Server Error";
  }
}

// "HOST:PORT" or "[V6]:PORT" into its parts, brackets dropped.
absl::Status SplitAddress(const std::string& address, std::string* host, int* port) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos || !absl::SimpleAtoi(address.substr(colon + 1), port) ||
      *port < 0 || *port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("--http: '", address, "' is not HOST:PORT"));
  }
  *host = address.substr(0, colon);
  if (host->size() >= 2 && host->front() == '[' && host->back() == ']') {
    *host = host->substr(1, host->size() - 2);
  }
  return absl::OkStatus();
}

// The listening socket on `addr`, port `port`. (Not SO_REUSEPORT: a second
// server on a taken port must fail, not share its connections.)
absl::StatusOr<int> Listen(const addrinfo& addr, int port, const std::string& address) {
  sockaddr_storage where{};
  std::memcpy(&where, addr.ai_addr, addr.ai_addrlen);
  if (addr.ai_family == AF_INET6) {
    reinterpret_cast<sockaddr_in6*>(&where)->sin6_port = htons(static_cast<uint16_t>(port));
  } else {
    reinterpret_cast<sockaddr_in*>(&where)->sin_port = htons(static_cast<uint16_t>(port));
  }
  const int fd = socket(addr.ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::UnavailableError(absl::StrCat("cannot listen on ", address));
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  // Inherited by accepted sockets: keep-alive replies go out at once, not
  // after the client's delayed ACK (a 40 ms stall per request).
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (bind(fd, reinterpret_cast<sockaddr*>(&where), addr.ai_addrlen) != 0 ||
      listen(fd, 1024) != 0) {
    const int error = errno;
    close(fd);
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", address, ": ", std::strerror(error)));
  }
  return fd;
}

int BoundPort(int fd) {
  sockaddr_storage where{};
  socklen_t size = sizeof(where);
  getsockname(fd, reinterpret_cast<sockaddr*>(&where), &size);
  return where.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&where)->sin6_port)
                                     : ntohs(reinterpret_cast<sockaddr_in*>(&where)->sin_port);
}

std::string MethodName(evhttp_cmd_type command) {
  return command == EVHTTP_REQ_HEAD ? "HEAD" : "GET";
}

}  // namespace

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(const std::string& address,
                                                              const TransportSecurity& security,
                                                              HttpHandler handler,
                                                              const HttpServerOptions& options) {
  std::unique_ptr<HttpServer> server(new HttpServer());
  server->handler_ = std::move(handler);
  if (!security.insecure) {
    server->tls_ = std::make_unique<Tls>(security);
    if (absl::Status s = server->tls_->Init(); !s.ok()) return s;
  }
  std::string host;
  int port = 0;
  if (absl::Status s = SplitAddress(address, &host, &port); !s.ok()) return s;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.empty() ? nullptr : host.c_str(), nullptr, &hints, &found) != 0 ||
      found == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("--http: cannot resolve '", host, "'"));
  }
  absl::StatusOr<int> listening = Listen(*found, port, address);
  freeaddrinfo(found);
  if (!listening.ok()) return listening.status();
  server->port_ = BoundPort(*listening);
  // Every loop accepts on its own descriptor of the one socket: a new
  // connection wakes the loops, the first to accept it serves it.
  for (int i = 0; i < std::max(1, options.threads); ++i) {
    const int fd = i == 0 ? *listening : fcntl(*listening, F_DUPFD_CLOEXEC, 0);
    auto loop = std::make_unique<Loop>();
    loop->base = event_base_new();
    loop->http = loop->base != nullptr ? evhttp_new(loop->base) : nullptr;
    evhttp_bound_socket* bound = fd >= 0 && loop->http != nullptr
                                     ? evhttp_accept_socket_with_handle(loop->http, fd)
                                     : nullptr;
    if (bound == nullptr) {
      if (fd >= 0) close(fd);
      return absl::InternalError("HTTP: cannot start an event loop");
    }
    // accept() failing (out of descriptors: many clients at once) leaves
    // the listening socket readable: accepting pauses for 100 ms instead
    // of spinning on it, and the open connections are served meanwhile.
    evconnlistener_set_error_cb(
        evhttp_bound_socket_get_listener(bound), [](evconnlistener* listener, void*) {
          LOG_EVERY_N(WARNING, 100) << "HTTP: cannot accept a connection: " << std::strerror(errno)
                                    << "; pausing new connections";
          evconnlistener_disable(listener);
          const timeval pause{0, 100'000};
          event_base_once(
              evconnlistener_get_base(listener), -1, EV_TIMEOUT,
              [](evutil_socket_t, short, void* l) {
                evconnlistener_enable(static_cast<evconnlistener*>(l));
              },
              listener, &pause);
        });
    evhttp* http = loop->http;
    evhttp_set_timeout(http, static_cast<int>(absl::ToInt64Seconds(options.timeout)));
    evhttp_set_max_headers_size(http, options.max_header_bytes);
    evhttp_set_max_body_size(http, options.max_body_bytes);
    evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
    // A body over the limit is read and dropped after the 413, not cut off
    // mid-upload: closing at once resets the connection under a client
    // still sending, which then never reads its 413.
    evhttp_set_flags(http, EVHTTP_SERVER_LINGERING_CLOSE);
    if (server->tls_ != nullptr) {
      evhttp_set_bevcb(
          http,
          [](event_base* base, void* tls) -> bufferevent* {
            bufferevent* bev =
                bufferevent_openssl_socket_new(base, -1, static_cast<Tls*>(tls)->NewSession(),
                                               BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
            // Clients (wrk, curl on ^C) often close without a TLS goodbye.
            if (bev != nullptr) bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
            return bev;
          },
          server->tls_.get());
    }
    evhttp_set_gencb(
        http, [](evhttp_request* req, void* self) { static_cast<HttpServer*>(self)->Serve(req); },
        server.get());
    loop->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    loop->wake_event = event_new(
        loop->base, loop->wake_fd, EV_READ | EV_PERSIST,
        [](evutil_socket_t, short, void* base) {
          event_base_loopbreak(static_cast<event_base*>(base));
        },
        loop->base);
    event_add(loop->wake_event, nullptr);
    server->loops_.push_back(std::move(loop));
  }
  for (auto& loop : server->loops_) {
    loop->thread = std::thread([base = loop->base] {
      // A write to a connection the client closed must fail with EPIPE,
      // not kill the process: SIGPIPE is thread-directed, so blocking it
      // here changes nothing for the rest of the process.
      sigset_t pipe;
      sigemptyset(&pipe);
      sigaddset(&pipe, SIGPIPE);
      pthread_sigmask(SIG_BLOCK, &pipe, nullptr);
      event_base_dispatch(base);
    });
  }
  return server;
}

void HttpServer::Serve(evhttp_request* req) {
  HttpRequest request;
  request.method = MethodName(evhttp_request_get_command(req));
  const char* uri = evhttp_request_get_uri(req);
  const std::string target = uri != nullptr ? uri : "";
  const size_t question = target.find('?');
  request.path = target.substr(0, question);
  if (question != std::string::npos) request.query = target.substr(question + 1);
  if (const char* auth =
          evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization")) {
    request.authorization = auth;
  }
  if (const char* cookie = evhttp_find_header(evhttp_request_get_input_headers(req), "Cookie")) {
    request.cookie = cookie;
  }
  HttpResponse response = handler_(request);
  evkeyvalq* headers = evhttp_request_get_output_headers(req);
  evhttp_add_header(headers, "Content-Type", response.content_type.c_str());
  for (const auto& [name, value] : response.headers) {
    evhttp_add_header(headers, name.c_str(), value.c_str());
  }
  const size_t length = response.body != nullptr ? response.body->size() : 0;
  if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
    // The GET reply's length (evhttp drops HEAD bodies but adds no length:
    // without one it would close the connection).
    evhttp_add_header(headers, "Content-Length", std::to_string(length).c_str());
    response.body = nullptr;
  }
  evbuffer* body = evbuffer_new();
  if (response.body != nullptr && !response.body->empty()) {
    // The buffer refers to the body and keeps it alive until it is sent.
    auto* keep = new std::shared_ptr<const std::string>(std::move(response.body));
    evbuffer_add_reference(
        body, (*keep)->data(), (*keep)->size(),
        [](const void*, size_t, void* keep) {
          delete static_cast<std::shared_ptr<const std::string>*>(keep);
        },
        keep);
  }
  evhttp_send_reply(req, response.status, Reason(response.status), body);
  evbuffer_free(body);
}

void HttpServer::Stop() {
  for (auto& loop : loops_) {
    const uint64_t one = 1;
    if (loop->thread.joinable()) {
      (void)!write(loop->wake_fd, &one, sizeof(one));
      loop->thread.join();
    }
  }
  loops_.clear();
}

HttpServer::~HttpServer() { Stop(); }

}  // namespace nightshift::security
