#include "collective/transport/socket/socket_transport.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstring>
#include <deque>
#include <random>

#include "absl/base/internal/endian.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/status_macros.h"

namespace nightshift::collective {
namespace {

constexpr char kHelloMagic[8] = {'N', 'S', 'D', 'A', 'T', 'A', '1', '\0'};
constexpr size_t kNonceBytes = 16;
constexpr size_t kOfferBytes = 2 + kNonceBytes;
constexpr size_t kHelloBytes = sizeof(kHelloMagic) + 4 + kNonceBytes;
constexpr size_t kHeaderBytes = 16;
constexpr size_t kMaxSpareBuffers = 64;
// A header announcing more is a broken or hostile peer, not a message.
constexpr uint64_t kMaxMessageBytes = uint64_t{1} << 31;

absl::Status ErrnoStatus(absl::string_view what) {
  return absl::UnavailableError(absl::StrCat(what, ": ", std::strerror(errno)));
}

// "host:port" or "[v6]:port" -> host.
std::string HostOf(const std::string& address) {
  std::string host = address.substr(0, address.rfind(':'));
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  return host;
}

bool ConstantTimeEqual(const char* a, const char* b, size_t n) {
  unsigned char diff = 0;
  for (size_t i = 0; i < n; ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

// Marks `n` more bytes of iov[first..] done; returns the first entry with
// bytes left.
size_t Consume(std::vector<iovec>& iov, size_t first, size_t n) {
  while (n > 0) {
    iovec& v = iov[first];
    const size_t take = std::min(n, v.iov_len);
    v.iov_base = static_cast<char*>(v.iov_base) + take;
    v.iov_len -= take;
    n -= take;
    if (v.iov_len == 0) ++first;
  }
  return first;
}

void SetNoDelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

}  // namespace

struct SocketTransport::Buffer {
  std::unique_ptr<char[]> data;
  size_t capacity = 0;
  size_t size = 0;
};

// A connection accepted but not yet known: handshaking, then its hello.
struct SocketTransport::Accepting {
  std::unique_ptr<Connection> conn;
  absl::Time since;
  char hello[kHelloBytes];
  size_t got = 0;
};

struct SocketTransport::Peer {
  char offered_nonce[kNonceBytes];  // what this peer must present to us
  std::unique_ptr<Connection> out;  // we write; null until dialed
  std::unique_ptr<Connection> in;   // we read; null until accepted
  // Their fds, for TEST_DropConnections, which may come from any thread.
  std::atomic<int> out_fd{-1};
  std::atomic<int> in_fd{-1};
  // Out: the message Send is writing, as views of the caller's buffers
  // (the header in `out_header`, the hello before the first message);
  // iov[out_first..] is still to go.
  char out_header[kHeaderBytes];
  char hello[kHelloBytes];
  bool hello_sent = false;
  std::vector<iovec> out_iov;
  size_t out_first = 0;
  bool sending() const { return out_first < out_iov.size(); }
  // In: the message being read, and the complete ones. A body lands in
  // `body`, or straight in RecvInto's pieces (`body_direct`);
  // body_iov[body_first..] is what is still to read.
  char header[kHeaderBytes];
  size_t header_got = 0;
  bool in_body = false;
  uint64_t body_tag = 0;
  Buffer body;
  bool body_direct = false;
  std::vector<iovec> body_iov;
  size_t body_first = 0;
  // RecvInto's pieces, while it waits for the next message to land there.
  enum class Direct { kOff, kWaiting, kReading, kDone };
  Direct direct = Direct::kOff;
  std::vector<iovec> direct_iov;
  uint64_t direct_tag = 0;
  size_t direct_bytes = 0;
  struct Message {
    uint64_t tag;
    Buffer bytes;
  };
  std::deque<Message> received;
  // Why this peer's connections ended; sticky.
  absl::Status failed;

  void Fail(const absl::Status& why) {
    if (failed.ok()) failed = why;
  }
};

absl::StatusOr<std::unique_ptr<SocketTransport>> SocketTransport::Create(
    SocketGroup group, Transport* control, PeerLiveness liveness,
    std::function<absl::Status()> group_aborted) {
  const int size = static_cast<int>(group.peer_addresses.size());
  if (group.rank < 0 || group.rank >= size || static_cast<int>(group.served.size()) != size) {
    return absl::InvalidArgumentError(absl::StrCat("rank ", group.rank, " of a group of ", size,
                                                   " with ", group.served.size(), " served marks"));
  }
  std::shared_ptr<TlsContext> tls;
  if (group.tls.has_value()) {
    ASSIGN_OR_RETURN(tls, TlsContext::Load(*group.tls));
  }
  std::unique_ptr<SocketTransport> t(new SocketTransport(
      std::move(group), control, std::move(liveness), std::move(group_aborted)));
  t->tls_ = std::move(tls);
  t->wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (t->wake_fd_ < 0) return ErrnoStatus("eventfd");

  // Listen on every interface, dual stack where there is IPv6: peers dial
  // the host of our Peer address, whatever family it resolves to.
  uint16_t port = 0;
  int fd = socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd >= 0) {
    int zero = 0;
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_any;
    socklen_t len = sizeof(a);
    if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
        getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      close(fd);
      fd = -1;
    } else {
      port = ntohs(a.sin6_port);
    }
  }
  if (fd < 0) {
    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return ErrnoStatus("socket");
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    socklen_t len = sizeof(a);
    if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
        getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      const absl::Status s = ErrnoStatus("binding the data listener");
      close(fd);
      return s;
    }
    port = ntohs(a.sin_port);
  }
  t->listen_fd_ = fd;
  if (listen(fd, 64) != 0) return ErrnoStatus("listen");

  std::random_device entropy;  // the kernel's CSPRNG on Linux
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  for (int r = 0; r < size; ++r) {
    if (t->peers_[r] == nullptr) continue;
    char offer[kOfferBytes];
    absl::little_endian::Store16(offer, port);
    for (size_t i = 0; i < kNonceBytes; i += 4) {
      const uint32_t word = entropy();
      std::memcpy(t->peers_[r]->offered_nonce + i, &word, 4);
    }
    std::memcpy(offer + 2, t->peers_[r]->offered_nonce, kNonceBytes);
    RETURN_IF_ERROR(control->Send(r, kOfferTag, absl::string_view(offer, kOfferBytes), deadline));
  }
  return t;
}

SocketTransport::SocketTransport(SocketGroup group, Transport* control, PeerLiveness liveness,
                                 std::function<absl::Status()> group_aborted)
    : group_(std::move(group)),
      control_(control),
      liveness_(std::move(liveness)),
      group_aborted_(std::move(group_aborted)) {
  peers_.resize(group_.peer_addresses.size());
  for (size_t r = 0; r < peers_.size(); ++r) {
    if (group_.served[r] && static_cast<int>(r) != group_.rank) {
      peers_[r] = std::make_unique<Peer>();
    }
  }
}

SocketTransport::~SocketTransport() {
  if (listen_fd_ >= 0) close(listen_fd_);
  if (wake_fd_ >= 0) close(wake_fd_);
}

absl::Status SocketTransport::Named(int peer, const absl::Status& s) {
  if (s.ok()) return s;
  return absl::Status(s.code(), absl::StrCat("rank ", peer, ": ", s.message()));
}

absl::Status SocketTransport::Served(int peer) const {
  if (peer < 0 || peer >= size() || peers_[peer] == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("rank ", peer, " is not reached through this rank's data sockets"));
  }
  return absl::OkStatus();
}

absl::Status SocketTransport::AbortedStatus() {
  absl::MutexLock lock(&mu_);
  return aborted_;
}

SocketTransport::Buffer SocketTransport::TakeBuffer(size_t bytes) {
  for (size_t i = spare_.size(); i-- > 0;) {
    if (spare_[i].capacity >= bytes) {
      Buffer b = std::move(spare_[i]);
      spare_.erase(spare_.begin() + i);
      b.size = bytes;
      return b;
    }
  }
  Buffer b;
  b.data.reset(new char[bytes > 0 ? bytes : 1]);
  b.capacity = bytes;
  b.size = bytes;
  return b;
}

void SocketTransport::GiveBack(Buffer b) {
  if (spare_.size() < kMaxSpareBuffers) spare_.push_back(std::move(b));
}

absl::Status SocketTransport::Dial(int peer, absl::Time deadline) {
  Peer& p = *peers_[peer];
  char offer[kOfferBytes];
  RETURN_IF_ERROR(control_->Recv(peer, kOfferTag, absl::MakeSpan(offer, kOfferBytes), deadline));
  const uint16_t port = absl::little_endian::Load16(offer);
  const std::string host = HostOf(group_.peer_addresses[peer]);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const int gai = getaddrinfo(host.c_str(), absl::StrCat(port).c_str(), &hints, &found);
  if (gai != 0) {
    return Named(peer,
                 absl::UnavailableError(absl::StrCat("resolving ", host, ": ", gai_strerror(gai))));
  }
  // The first address: the one gRPC's channel to this peer would use too.
  const int fd = socket(found->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  const bool started =
      fd >= 0 && (connect(fd, found->ai_addr, found->ai_addrlen) == 0 || errno == EINPROGRESS);
  const absl::Status why = ErrnoStatus(absl::StrCat("connecting to ", host, " port ", port));
  freeaddrinfo(found);
  if (!started) {
    if (fd >= 0) close(fd);
    return Named(peer, why);
  }
  SetNoDelay(fd);
  absl::StatusOr<std::unique_ptr<Connection>> out =
      Connection::Start(fd, Connection::Side::kDialing, tls_, host);
  if (!out.ok()) return Named(peer, absl::UnavailableError(out.status().message()));
  p.out = *std::move(out);
  p.out_fd = fd;
  std::memcpy(p.hello, kHelloMagic, sizeof(kHelloMagic));
  absl::little_endian::Store32(p.hello + sizeof(kHelloMagic), static_cast<uint32_t>(rank()));
  std::memcpy(p.hello + sizeof(kHelloMagic) + 4, offer + 2, kNonceBytes);
  return absl::OkStatus();
}

absl::Status SocketTransport::Send(int to, uint64_t tag, absl::Span<const absl::string_view> parts,
                                   absl::Time deadline) {
  RETURN_IF_ERROR(Served(to));
  RETURN_IF_ERROR(AbortedStatus());
  Peer& p = *peers_[to];
  RETURN_IF_ERROR(p.failed);
  if (p.out == nullptr) {
    if (absl::Status s = Dial(to, deadline); !s.ok()) {
      p.Fail(s);
      return s;
    }
  }
  size_t bytes = 0;
  for (absl::string_view part : parts) bytes += part.size();
  absl::little_endian::Store64(p.out_header, tag);
  absl::little_endian::Store64(p.out_header + 8, bytes);
  p.out_iov.clear();
  if (!p.hello_sent) p.out_iov.push_back({p.hello, kHelloBytes});
  p.hello_sent = true;
  p.out_iov.push_back({p.out_header, kHeaderBytes});
  for (absl::string_view part : parts) {
    if (!part.empty()) p.out_iov.push_back({const_cast<char*>(part.data()), part.size()});
  }
  p.out_first = 0;
  WriteTo(to);
  if (p.sending() && p.failed.ok()) {
    const absl::Status waited =
        Progress(to, deadline, [&p] { return !p.sending() || !p.failed.ok(); });
    if (!waited.ok()) {
      // Part of the message may be out: the stream to this peer is cut, and
      // nothing may be written from the caller's buffers after we return.
      p.Fail(waited);
      p.out_first = p.out_iov.size();
      return waited;
    }
  }
  if (p.sending()) {
    p.out_first = p.out_iov.size();  // nothing of this message is sent after a failure
    return p.failed;
  }
  return absl::OkStatus();
}

absl::Status SocketTransport::RecvWith(int from, uint64_t tag, size_t expected_bytes,
                                       absl::Time deadline, const ConsumeParts& consume) {
  RETURN_IF_ERROR(Served(from));
  RETURN_IF_ERROR(AbortedStatus());
  Peer& p = *peers_[from];
  if (p.received.empty() && p.failed.ok()) {
    if (p.in != nullptr) ReadFrom(from);  // often already there: no poll
    if (p.received.empty()) {
      RETURN_IF_ERROR(
          Progress(from, deadline, [&p] { return !p.received.empty() || !p.failed.ok(); }));
    }
  }
  if (p.received.empty()) return p.failed;
  Peer::Message m = std::move(p.received.front());
  p.received.pop_front();
  if (m.tag != tag || m.bytes.size != expected_bytes) {
    const absl::Status s = absl::InternalError(
        absl::StrCat("rank ", from, " sent tag ", m.tag, " of ", m.bytes.size, " bytes where tag ",
                     tag, " of ", expected_bytes, " bytes was expected"));
    GiveBack(std::move(m.bytes));
    return s;
  }
  const absl::string_view bytes(m.bytes.data.get(), m.bytes.size);
  consume(absl::MakeConstSpan(&bytes, 1));
  GiveBack(std::move(m.bytes));
  return absl::OkStatus();
}

absl::Status SocketTransport::RecvInto(int from, uint64_t tag,
                                       absl::Span<const absl::Span<char>> into,
                                       absl::Time deadline) {
  RETURN_IF_ERROR(Served(from));
  RETURN_IF_ERROR(AbortedStatus());
  Peer& p = *peers_[from];
  if (p.received.empty() && !p.in_body && p.failed.ok()) {
    // The next message is not here yet: let it land in `into` itself.
    p.direct_iov.clear();
    p.direct_bytes = 0;
    for (absl::Span<char> piece : into) {
      if (!piece.empty()) p.direct_iov.push_back({piece.data(), piece.size()});
      p.direct_bytes += piece.size();
    }
    p.direct_tag = tag;
    p.direct = Peer::Direct::kWaiting;
    if (p.in != nullptr) ReadFrom(from);
    absl::Status waited;
    if (p.direct != Peer::Direct::kDone && p.received.empty() && p.failed.ok()) {
      waited = Progress(from, deadline, [&p] {
        return p.direct == Peer::Direct::kDone || !p.received.empty() || !p.failed.ok();
      });
    }
    const Peer::Direct state = p.direct;
    p.direct = Peer::Direct::kOff;
    if (state == Peer::Direct::kDone) return absl::OkStatus();
    if (state == Peer::Direct::kReading) {
      // Cut off inside the caller's buffers: nothing more may land there.
      p.Fail(Named(from, absl::UnavailableError("a message was cut off")));
      return waited.ok() ? p.failed : waited;
    }
    RETURN_IF_ERROR(waited);
  }
  return Transport::RecvInto(from, tag, into, deadline);  // from the queue, copied
}

// Send returns once its bytes are in the kernel: nothing is queued here.
absl::Status SocketTransport::Flush(absl::Time deadline) { return AbortedStatus(); }

void SocketTransport::Abort(const absl::Status& reason) {
  {
    absl::MutexLock lock(&mu_);
    if (aborted_.ok()) aborted_ = reason.ok() ? absl::CancelledError("aborted") : reason;
  }
  const uint64_t one = 1;
  if (write(wake_fd_, &one, sizeof(one)) < 0) {
    // The counter is full: a wake-up is pending anyway.
  }
}

void SocketTransport::TEST_DropConnections(const absl::Status& reason) {
  Abort(reason);
  // shutdown, not close: the caller's thread may be polling these fds.
  for (auto& p : peers_) {
    if (p == nullptr) continue;
    if (const int fd = p->out_fd; fd >= 0) shutdown(fd, SHUT_RDWR);
    if (const int fd = p->in_fd; fd >= 0) shutdown(fd, SHUT_RDWR);
  }
}

std::set<int> SocketTransport::AwaitAborts(int count, absl::Time deadline) {
  std::set<int> gone;
  while (true) {
    for (size_t r = 0; r < peers_.size(); ++r) {
      if (peers_[r] != nullptr && !liveness_(static_cast<int>(r)).ok()) gone.insert(r);
    }
    if (static_cast<int>(gone.size()) >= count || absl::Now() >= deadline) return gone;
    absl::SleepFor(kLivenessCheck);
  }
}

void SocketTransport::WriteTo(int peer) {
  Peer& p = *peers_[peer];
  if (!p.out->ready()) {
    if (absl::Status s = p.out->Advance(); !s.ok()) p.Fail(Named(peer, s));
    if (!p.out->ready()) return;
  }
  while (p.sending() && p.failed.ok()) {
    absl::StatusOr<size_t> n =
        p.out->Write(p.out_iov.data() + p.out_first,
                     static_cast<int>(std::min<size_t>(p.out_iov.size() - p.out_first, IOV_MAX)));
    if (!n.ok()) {
      p.Fail(Named(peer, n.status()));
      return;
    }
    if (*n == 0) return;  // the socket is full
    p.out_first = Consume(p.out_iov, p.out_first, *n);
  }
}

void SocketTransport::ReadFrom(int peer) {
  Peer& p = *peers_[peer];
  while (p.failed.ok()) {
    if (!p.in_body) {
      absl::StatusOr<size_t> got = p.in->Read(p.header + p.header_got, kHeaderBytes - p.header_got);
      if (!got.ok()) {
        p.Fail(Named(peer, got.status()));
        return;
      }
      if (*got == 0) return;  // nothing more for now
      p.header_got += *got;
      if (p.header_got < kHeaderBytes) continue;
      p.header_got = 0;
      p.in_body = true;
      p.body_tag = absl::little_endian::Load64(p.header);
      const uint64_t length = absl::little_endian::Load64(p.header + 8);
      if (length > kMaxMessageBytes) {
        p.Fail(Named(peer, absl::InternalError(absl::StrCat("announced a message of ", length,
                                                            " bytes; at most ", kMaxMessageBytes,
                                                            " are sent"))));
        return;
      }
      p.body_first = 0;
      p.body_direct = p.direct == Peer::Direct::kWaiting && p.received.empty() &&
                      p.body_tag == p.direct_tag && length == p.direct_bytes;
      if (p.body_direct) {
        p.direct = Peer::Direct::kReading;
        p.body_iov = p.direct_iov;
      } else {
        p.body = TakeBuffer(length);
        p.body_iov.assign(1, {p.body.data.get(), p.body.size});
        if (length == 0) p.body_iov.clear();
      }
    }
    if (p.body_first < p.body_iov.size()) {
      absl::StatusOr<size_t> got = p.in->ReadV(
          p.body_iov.data() + p.body_first,
          static_cast<int>(std::min<size_t>(p.body_iov.size() - p.body_first, IOV_MAX)));
      if (!got.ok()) {
        p.Fail(Named(peer, got.status()));
        return;
      }
      if (*got == 0) return;
      p.body_first = Consume(p.body_iov, p.body_first, *got);
      if (p.body_first < p.body_iov.size()) continue;
    }
    p.in_body = false;
    if (p.body_direct) {
      p.direct = Peer::Direct::kDone;
    } else {
      p.received.push_back({p.body_tag, std::move(p.body)});
    }
    return;  // one message at a time: the caller may be waiting for it
  }
}

void SocketTransport::AcceptAll() {
  while (true) {
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      // Out of descriptors: the connection stays in the backlog, and the
      // listener would poll readable at once again.
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        accept_paused_until_ = absl::Now() + kLivenessCheck;
      }
      return;
    }
    size_t waiting = 0;
    for (const auto& a : accepting_) waiting += a->conn != nullptr;
    if (waiting >= kMaxAccepting) {
      // Close the oldest (positions stay: Progress is iterating by them).
      for (auto& a : accepting_) {
        if (a->conn != nullptr) {
          a->conn.reset();
          break;
        }
      }
    }
    SetNoDelay(fd);
    absl::StatusOr<std::unique_ptr<Connection>> conn =
        Connection::Start(fd, Connection::Side::kAccepted, tls_, "");
    if (!conn.ok()) continue;  // Start closed it
    auto a = std::make_unique<Accepting>();
    a->conn = *std::move(conn);
    a->since = absl::Now();
    accepting_.push_back(std::move(a));
  }
}

void SocketTransport::AdvanceAccepting(Accepting& a) {
  if (a.conn == nullptr) return;  // closed as the oldest
  bool refuse = false;
  if (!a.conn->ready()) refuse = !a.conn->Advance().ok();  // a failed handshake
  while (!refuse && a.conn->ready() && a.got < kHelloBytes) {
    absl::StatusOr<size_t> n = a.conn->Read(a.hello + a.got, kHelloBytes - a.got);
    if (!n.ok()) refuse = true;
    if (!n.ok() || *n == 0) break;
    a.got += *n;
  }
  if (!refuse && a.got < kHelloBytes) return;  // more to come
  int keep_for = -1;
  if (!refuse && std::memcmp(a.hello, kHelloMagic, sizeof(kHelloMagic)) == 0) {
    const uint32_t from = absl::little_endian::Load32(a.hello + sizeof(kHelloMagic));
    if (from < peers_.size() && peers_[from] != nullptr && peers_[from]->in == nullptr &&
        ConstantTimeEqual(a.hello + sizeof(kHelloMagic) + 4, peers_[from]->offered_nonce,
                          kNonceBytes)) {
      keep_for = static_cast<int>(from);
    }
  }
  if (keep_for >= 0) {
    peers_[keep_for]->in_fd = a.conn->fd();
    peers_[keep_for]->in = std::move(a.conn);
  }
  a.conn.reset();  // closes a refused connection unread
}

absl::Status SocketTransport::Progress(int focus, absl::Time deadline,
                                       const std::function<bool()>& done) {
  enum class Kind { kWake, kListener, kIn, kOut, kAccepting };
  struct Watched {
    Kind kind;
    size_t index;  // rank, or position in accepting_
  };
  std::vector<pollfd> fds;
  std::vector<Watched> watched;
  absl::Time next_check = absl::Now() + kLivenessCheck;
  while (!done()) {
    RETURN_IF_ERROR(AbortedStatus());
    RETURN_IF_ERROR(peers_[focus]->failed);
    // Bytes TLS decrypted already do not show on the socket: read them first.
    bool buffered = false;
    for (size_t r = 0; r < peers_.size(); ++r) {
      Peer* p = peers_[r].get();
      if (p != nullptr && p->failed.ok() && p->in != nullptr && p->in->HasBufferedInput()) {
        ReadFrom(static_cast<int>(r));
        buffered = true;
      }
    }
    if (done()) break;
    fds.clear();
    watched.clear();
    auto watch = [&](int fd, short events, Kind kind, size_t index) {
      fds.push_back({fd, events, 0});
      watched.push_back({kind, index});
    };
    watch(wake_fd_, POLLIN, Kind::kWake, 0);
    bool all_in = true;
    for (size_t r = 0; r < peers_.size(); ++r) {
      Peer* p = peers_[r].get();
      if (p == nullptr || !p->failed.ok()) continue;
      if (p->in != nullptr) {
        watch(p->in->fd(), p->in->PollEvents() != 0 ? p->in->PollEvents() : POLLIN, Kind::kIn, r);
      } else {
        all_in = false;
      }
      if (p->sending()) {
        watch(p->out->fd(), p->out->PollEvents() != 0 ? p->out->PollEvents() : POLLOUT, Kind::kOut,
              r);
      }
    }
    if (!all_in && absl::Now() >= accept_paused_until_) {
      watch(listen_fd_, POLLIN, Kind::kListener, 0);
    }
    for (size_t i = 0; i < accepting_.size(); ++i) {
      const short events = accepting_[i]->conn->PollEvents();
      watch(accepting_[i]->conn->fd(), events != 0 ? events : POLLIN, Kind::kAccepting, i);
    }
    const absl::Time now = absl::Now();
    if (now >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("rank ", focus, " did not exchange data before the deadline"));
    }
    const absl::Time wake = std::min(deadline, next_check);
    const int ms =
        buffered ? 0
                 : static_cast<int>(std::clamp<int64_t>(
                       absl::ToInt64Milliseconds(wake - now + absl::Microseconds(999)), 0, 1000));
    const int ready = poll(fds.data(), fds.size(), ms);
    if (ready < 0 && errno != EINTR) return Named(focus, ErrnoStatus("waiting (poll)"));
    for (size_t i = 0; ready > 0 && i < fds.size(); ++i) {
      if (fds[i].revents == 0) continue;
      const Watched& w = watched[i];
      switch (w.kind) {
        case Kind::kIn:
          ReadFrom(static_cast<int>(w.index));
          break;
        case Kind::kOut:
          WriteTo(static_cast<int>(w.index));
          break;
        case Kind::kListener:
          AcceptAll();
          break;
        case Kind::kAccepting:
          AdvanceAccepting(*accepting_[w.index]);
          break;
        case Kind::kWake:
          break;  // AbortedStatus says why, at the top
      }
    }
    const absl::Time too_old = absl::Now() - kHelloTimeout;
    accepting_.erase(std::remove_if(accepting_.begin(), accepting_.end(),
                                    [too_old](const auto& a) {
                                      return a->conn == nullptr || a->since < too_old;
                                    }),
                     accepting_.end());
    if (absl::Now() >= next_check) {
      next_check = absl::Now() + kLivenessCheck;
      // While a connection with the peer stands, its end says the peer is
      // gone (after every byte it sent); only an abort notice is news.
      Peer& f = *peers_[focus];
      const bool connected = f.sending() ? f.out != nullptr && f.out->ready() : f.in != nullptr;
      if (absl::Status s = connected ? group_aborted_() : liveness_(focus); !s.ok()) f.Fail(s);
    }
  }
  return absl::OkStatus();
}

}  // namespace nightshift::collective
