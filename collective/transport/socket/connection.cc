#include "collective/transport/socket/connection.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace nightshift::collective {
namespace {

constexpr size_t kReadBufferBytes = 256 << 10;

std::string OpenSslErrors() {
  std::string out;
  while (const unsigned long e = ERR_get_error()) {
    char text[256];
    ERR_error_string_n(e, text, sizeof(text));
    if (!out.empty()) out += "; ";
    out += text;
  }
  return out.empty() ? "no detail" : out;
}

// A socket BIO that sends with MSG_NOSIGNAL: OpenSSL's own writes with
// write(2), and a write to a peer that died would raise SIGPIPE and end
// the process.
int SocketBioWrite(BIO* bio, const char* data, int n) {
  BIO_clear_retry_flags(bio);
  const int fd = static_cast<int>(reinterpret_cast<intptr_t>(BIO_get_data(bio)));
  ssize_t put;
  do {
    put = send(fd, data, n, MSG_NOSIGNAL);
  } while (put < 0 && errno == EINTR);
  if (put < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) BIO_set_retry_write(bio);
  return static_cast<int>(put);
}

int SocketBioRead(BIO* bio, char* data, int n) {
  BIO_clear_retry_flags(bio);
  const int fd = static_cast<int>(reinterpret_cast<intptr_t>(BIO_get_data(bio)));
  ssize_t got;
  do {
    got = recv(fd, data, n, 0);
  } while (got < 0 && errno == EINTR);
  if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) BIO_set_retry_read(bio);
  return static_cast<int>(got);
}

long SocketBioCtrl(BIO*, int cmd, long, void*) { return cmd == BIO_CTRL_FLUSH ? 1 : 0; }

int SocketBioCreate(BIO* bio) {
  BIO_set_init(bio, 1);
  return 1;
}

}  // namespace

absl::StatusOr<std::shared_ptr<TlsContext>> TlsContext::Load(const DataTlsFiles& files) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_method());
  if (ctx == nullptr) return absl::InternalError("SSL_CTX_new failed");
  BIO_METHOD* bio_method =
      BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "nightshift data socket");
  if (bio_method == nullptr) {
    SSL_CTX_free(ctx);
    return absl::InternalError("BIO_meth_new failed");
  }
  BIO_meth_set_write(bio_method, SocketBioWrite);
  BIO_meth_set_read(bio_method, SocketBioRead);
  BIO_meth_set_ctrl(bio_method, SocketBioCtrl);
  BIO_meth_set_create(bio_method, SocketBioCreate);
  std::shared_ptr<TlsContext> owned(new TlsContext(ctx, bio_method));
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_num_tickets(ctx, 0);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  // Read several records per read(2), not each record's 5-byte header and
  // then its body: half the receive side's system calls otherwise.
  SSL_CTX_set_read_ahead(ctx, 1);
  SSL_CTX_set_default_read_buffer_len(ctx, kReadBufferBytes);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  if (SSL_CTX_load_verify_locations(ctx, files.ca.c_str(), nullptr) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("TLS CA file ", files.ca, ": ", OpenSslErrors()));
  }
  if (SSL_CTX_use_certificate_chain_file(ctx, files.cert.c_str()) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("TLS certificate file ", files.cert, ": ", OpenSslErrors()));
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, files.key.c_str(), SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_check_private_key(ctx) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("TLS key file ", files.key, ": ", OpenSslErrors()));
  }
  return owned;
}

TlsContext::~TlsContext() {
  SSL_CTX_free(ctx_);
  BIO_meth_free(bio_method_);
}

absl::StatusOr<std::unique_ptr<Connection>> Connection::Start(int fd, Side side,
                                                              std::shared_ptr<TlsContext> tls,
                                                              const std::string& dialed_host) {
  SSL* ssl = nullptr;
  if (tls != nullptr) {
    ssl = SSL_new(tls->get());
    BIO* bio = ssl != nullptr ? BIO_new(tls->bio_method()) : nullptr;
    if (bio == nullptr) {
      if (ssl != nullptr) SSL_free(ssl);
      close(fd);
      return absl::InternalError(
          absl::StrCat("TLS state for a data connection: ", OpenSslErrors()));
    }
    BIO_set_data(bio, reinterpret_cast<void*>(static_cast<intptr_t>(fd)));
    SSL_set_bio(ssl, bio, bio);  // the SSL owns it
    if (side == Side::kDialing) {
      SSL_set_connect_state(ssl);
      X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
      in6_addr any;
      const bool is_ip = inet_pton(AF_INET, dialed_host.c_str(), &any) == 1 ||
                         inet_pton(AF_INET6, dialed_host.c_str(), &any) == 1;
      const int ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, dialed_host.c_str())
                           : SSL_set1_host(ssl, dialed_host.c_str());
      if (ok != 1) {
        SSL_free(ssl);
        close(fd);
        return absl::UnavailableError(
            absl::StrCat("cannot check a certificate against host ", dialed_host));
      }
    } else {
      SSL_set_accept_state(ssl);
    }
  }
  const State state = side == Side::kDialing ? State::kConnecting
                      : ssl != nullptr       ? State::kHandshaking
                                             : State::kReady;
  std::unique_ptr<Connection> c(new Connection(fd, ssl, state));
  c->want_ = side == Side::kDialing ? POLLOUT : POLLIN;
  return c;
}

Connection::~Connection() {
  if (ssl_ != nullptr) SSL_free(ssl_);
  close(fd_);
}

void Connection::Shutdown() { shutdown(fd_, SHUT_RDWR); }

bool Connection::HasBufferedInput() const {
  // With read-ahead, buffered bytes may be a record's start only; once a
  // read has said it needs more, only the socket can bring it.
  return ssl_ != nullptr && !starved_ && SSL_has_pending(ssl_) == 1;
}

absl::Status Connection::TlsRetryOrFail(int rc, const char* what) {
  const int saved_errno = errno;
  switch (SSL_get_error(ssl_, rc)) {
    case SSL_ERROR_WANT_READ:
      want_ = POLLIN;
      return absl::OkStatus();
    case SSL_ERROR_WANT_WRITE:
      want_ = POLLOUT;
      return absl::OkStatus();
    case SSL_ERROR_ZERO_RETURN:
      return absl::UnavailableError(absl::StrCat("the connection closed while ", what));
    case SSL_ERROR_SYSCALL: {
      const std::string detail = OpenSslErrors();
      return absl::UnavailableError(
          saved_errno == 0
              ? absl::StrCat("the connection closed while ", what)
              : absl::StrCat(what, ": ", std::strerror(saved_errno), " (", detail, ")"));
    }
    default:
      return absl::UnavailableError(absl::StrCat(what, ": ", OpenSslErrors()));
  }
}

absl::Status Connection::Advance() {
  if (state_ == State::kConnecting) {
    pollfd p{fd_, POLLOUT, 0};
    if (poll(&p, 1, 0) != 1) {
      want_ = POLLOUT;
      return absl::OkStatus();
    }
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    if (err != 0) return absl::UnavailableError(absl::StrCat("connecting: ", std::strerror(err)));
    state_ = ssl_ != nullptr ? State::kHandshaking : State::kReady;
  }
  if (state_ == State::kHandshaking) {
    ERR_clear_error();  // SSL_get_error reads the thread's queue
    const int rc = SSL_do_handshake(ssl_);
    if (rc != 1) {
      absl::Status s = TlsRetryOrFail(rc, "in the TLS handshake");
      ERR_clear_error();
      return s;
    }
    state_ = State::kReady;
  }
  want_ = 0;
  return absl::OkStatus();
}

absl::StatusOr<size_t> Connection::Read(char* into, size_t n) {
  if (n == 0) return 0;
  if (ssl_ == nullptr) {
    const iovec one{into, n};
    return PlainReadV(&one, 1);
  }
  size_t got = 0;
  ERR_clear_error();
  const int rc = SSL_read_ex(ssl_, into, n, &got);
  starved_ = rc != 1;
  if (rc == 1) return got;
  absl::Status s = TlsRetryOrFail(rc, "receiving");
  ERR_clear_error();
  if (!s.ok()) return s;
  return 0;
}

absl::StatusOr<size_t> Connection::PlainReadV(const iovec* iov, int count) {
  while (true) {
    const ssize_t got = readv(fd_, iov, count);
    if (got > 0) return static_cast<size_t>(got);
    if (got == 0) return absl::UnavailableError("its data connection closed");
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      want_ = POLLIN;
      return 0;
    }
    return absl::UnavailableError(absl::StrCat("receiving: ", std::strerror(errno)));
  }
}

absl::StatusOr<size_t> Connection::ReadV(const iovec* iov, int count) {
  if (ssl_ == nullptr) return PlainReadV(iov, count);
  size_t total = 0;
  for (int i = 0; i < count; ++i) {
    absl::StatusOr<size_t> got = Read(static_cast<char*>(iov[i].iov_base), iov[i].iov_len);
    if (!got.ok()) return total > 0 ? absl::StatusOr<size_t>(total) : got;
    total += *got;
    if (*got < iov[i].iov_len) break;
  }
  return total;
}

absl::StatusOr<size_t> Connection::Write(const iovec* iov, int count) {
  if (ssl_ == nullptr) {
    while (true) {
      msghdr message{};
      message.msg_iov = const_cast<iovec*>(iov);
      message.msg_iovlen = count;
      // MSG_NOSIGNAL: a peer that died is an error here, not SIGPIPE.
      const ssize_t put = sendmsg(fd_, &message, MSG_NOSIGNAL);
      if (put >= 0) return static_cast<size_t>(put);
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        want_ = POLLOUT;
        return 0;
      }
      return absl::UnavailableError(absl::StrCat("sending: ", std::strerror(errno)));
    }
  }
  size_t total = 0;
  for (int i = 0; i < count; ++i) {
    size_t put = 0;
    ERR_clear_error();
    const int rc = SSL_write_ex(ssl_, iov[i].iov_base, iov[i].iov_len, &put);
    if (rc == 1) {
      total += put;
      if (put < iov[i].iov_len) return total;  // a partial write: the socket is full
      continue;
    }
    absl::Status s = TlsRetryOrFail(rc, "sending");
    ERR_clear_error();
    if (!s.ok()) return s;
    return total;
  }
  return total;
}

}  // namespace nightshift::collective
