// Connection: one nonblocking TCP connection of the socket transport,
// plaintext or mutual TLS, driven by its owner's poll loop.
//
// A connection starts connecting (the dialing side) or handshaking (TLS)
// and is ready once Advance says so; Read and Write then move bytes. Any
// call that cannot go on returns 0 and sets what the connection waits for
// (PollEvents: POLLIN or POLLOUT), which the owner polls before calling
// again. A failure or an orderly close is UNAVAILABLE saying which.
//
// TLS (TlsContext): both sides present a certificate signed by the group's
// CA, as the gRPC Peer service's mutual TLS does; the dialing side also
// checks the listener's certificate names the host it dialed (a DNS name
// or an IP address), as gRPC checks its target. TLS 1.2 at least, no
// session tickets (a connection lives as long as its group).
//
// TLS buffers decrypted bytes the socket no longer shows as readable:
// HasBufferedInput says so, and the owner must read before it polls.
//
// Writes use MSG_NOSIGNAL: a peer that died is an error, never SIGPIPE.
// Not thread-safe, except Shutdown (any thread).
#ifndef NIGHTSHIFT_COLLECTIVE_TRANSPORT_SOCKET_CONNECTION_H_
#define NIGHTSHIFT_COLLECTIVE_TRANSPORT_SOCKET_CONNECTION_H_

#include <sys/uio.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "collective/transport/membership.h"

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;
typedef struct bio_method_st BIO_METHOD;

namespace nightshift::collective {

class TlsContext {
 public:
  // Reads the files now (so a rotated certificate counts from the next
  // group on); a file that cannot be used is named in the error.
  static absl::StatusOr<std::shared_ptr<TlsContext>> Load(const DataTlsFiles& files);
  ~TlsContext();
  SSL_CTX* get() const { return ctx_; }
  // How connections reach their sockets (send with MSG_NOSIGNAL).
  const BIO_METHOD* bio_method() const { return bio_method_; }

 private:
  TlsContext(SSL_CTX* ctx, BIO_METHOD* bio_method) : ctx_(ctx), bio_method_(bio_method) {}
  SSL_CTX* ctx_;
  BIO_METHOD* bio_method_;
};

class Connection {
 public:
  enum class Side { kDialing, kAccepted };
  // Takes `fd` (nonblocking; for kDialing, connect() was started). `tls`
  // null: plaintext. `dialed_host`: what a dialing TLS side checks.
  static absl::StatusOr<std::unique_ptr<Connection>> Start(int fd, Side side,
                                                           std::shared_ptr<TlsContext> tls,
                                                           const std::string& dialed_host);
  ~Connection();

  int fd() const { return fd_; }
  bool ready() const { return state_ == State::kReady; }
  // Connects and handshakes as far as it can: OK (check ready()), or why
  // the connection failed.
  absl::Status Advance();
  // Bytes read (> 0), or 0: wait for PollEvents(). Never 0 for n > 0 on a
  // ready connection with HasBufferedInput().
  absl::StatusOr<size_t> Read(char* into, size_t n);
  // Read into iov[0..count) in order: bytes read (> 0), or 0: wait.
  absl::StatusOr<size_t> ReadV(const iovec* iov, int count);
  // Bytes written from the front of iov[0..count), or 0: wait.
  absl::StatusOr<size_t> Write(const iovec* iov, int count);
  short PollEvents() const { return want_; }
  bool HasBufferedInput() const;
  // Ends the connection under whoever uses it (tests: a crash).
  void Shutdown();

 private:
  enum class State { kConnecting, kHandshaking, kReady };
  Connection(int fd, SSL* ssl, State state) : fd_(fd), ssl_(ssl), state_(state) {}
  absl::StatusOr<size_t> PlainReadV(const iovec* iov, int count);
  // After an SSL call returned `rc`: 0 with want_ set, or the failure.
  absl::Status TlsRetryOrFail(int rc, const char* what);

  const int fd_;
  SSL* const ssl_;  // null: plaintext
  State state_;
  short want_ = 0;
  bool starved_ = false;  // the last TLS read wanted more from the socket
};

}  // namespace nightshift::collective

#endif  // NIGHTSHIFT_COLLECTIVE_TRANSPORT_SOCKET_CONNECTION_H_
