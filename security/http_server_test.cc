// HttpServer on loopback with the test certificates (deploy/certs.sh via
// the test_certs genrule), spoken to by a small blocking HTTP/1.1 client
// over OpenSSL: requests reach the handler as sent, keep-alive connections
// serve many requests, hundreds of idle connections hold no thread, only
// GET and HEAD are served, oversized headers and TLS from another CA are
// refused without hurting other clients, and Stop() closes everything.
#include "security/http_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace nightshift::security {
namespace {

using testing::HasSubstr;

std::string TestData(const std::string& name) {
  return std::string(std::getenv("TEST_SRCDIR")) + "/nightshift/security/testdata/" + name;
}

TransportSecurity Secure() {
  TransportSecurity s;
  s.tls = {TestData("ca.pem"), TestData("node.pem"), TestData("node.key")};
  return s;
}

struct Reply {
  int status = 0;
  std::map<std::string, std::string> headers;  // names in lower case
  std::string body;
};

// One client connection: TCP, and TLS when given a context (verifying the
// server against the CA it was loaded with).
class Client {
 public:
  // With `resume`, offers that earlier session to the server.
  static std::unique_ptr<Client> Dial(int port, SSL_CTX* tls, SSL_SESSION* resume = nullptr) {
    return Connect(socket(AF_INET, SOCK_STREAM, 0), port, tls, resume);
  }
  // The same with a socket made beforehand.
  static std::unique_ptr<Client> Connect(int fd, int port, SSL_CTX* tls,
                                         SSL_SESSION* resume = nullptr) {
    signal(SIGPIPE, SIG_IGN);  // writes to a refused connection fail, not kill the test
    auto c = std::unique_ptr<Client>(new Client());
    c->fd_ = fd;
    timeval limit{10, 0};  // a broken server fails the test instead of hanging it
    setsockopt(c->fd_, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof(limit));
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(static_cast<uint16_t>(port));
    inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    if (connect(c->fd_, reinterpret_cast<sockaddr*>(&to), sizeof(to)) != 0) return nullptr;
    if (tls != nullptr) {
      c->ssl_ = SSL_new(tls);
      SSL_set_fd(c->ssl_, c->fd_);
      SSL_set1_host(c->ssl_, "localhost");
      if (resume != nullptr) SSL_set_session(c->ssl_, resume);
      if (SSL_connect(c->ssl_) != 1) return nullptr;
    }
    return c;
  }
  ~Client() {
    if (ssl_ != nullptr) SSL_free(ssl_);
    close(fd_);
  }

  bool Send(const std::string& bytes) {
    const int n = ssl_ != nullptr ? SSL_write(ssl_, bytes.data(), static_cast<int>(bytes.size()))
                                  : static_cast<int>(send(fd_, bytes.data(), bytes.size(), 0));
    return n == static_cast<int>(bytes.size());
  }
  bool Get(const std::string& target, const std::string& token = "tok") {
    return Send(absl::StrCat("GET ", target, " HTTP/1.1\r\nHost: localhost\r\n",
                             token.empty() ? "" : "Authorization: Bearer " + token + "\r\n",
                             "\r\n"));
  }

  // One response; status 0 if the connection closed first.
  Reply Read(bool head = false) {
    Reply r;
    size_t end;
    while ((end = buffer_.find("\r\n\r\n")) == std::string::npos) {
      if (!Fill()) return r;
    }
    std::vector<std::string> lines = absl::StrSplit(buffer_.substr(0, end), "\r\n");
    std::vector<std::string> first = absl::StrSplit(lines[0], ' ');
    if (first.size() < 2 || !absl::SimpleAtoi(first[1], &r.status)) return r;
    for (size_t i = 1; i < lines.size(); ++i) {
      const size_t colon = lines[i].find(':');
      if (colon == std::string::npos) continue;
      r.headers[absl::AsciiStrToLower(lines[i].substr(0, colon))] =
          std::string(absl::StripAsciiWhitespace(lines[i].substr(colon + 1)));
    }
    buffer_.erase(0, end + 4);
    size_t length = 0;
    if (!head) (void)absl::SimpleAtoi(r.headers["content-length"], &length);
    while (buffer_.size() < length) {
      if (!Fill()) return Reply();
    }
    r.body = buffer_.substr(0, length);
    buffer_.erase(0, length);
    return r;
  }

  // True once the server has closed the connection.
  bool Closed() { return !Fill(); }

  // The TLS session, to resume on another connection (TLS 1.3 sends it
  // after the handshake: read a reply first). Owned by the caller.
  SSL_SESSION* Session() const { return SSL_get1_session(ssl_); }
  bool Resumed() const { return SSL_session_reused(ssl_) == 1; }

 private:
  Client() = default;
  bool Fill() {
    char chunk[16384];
    const int n = ssl_ != nullptr ? SSL_read(ssl_, chunk, sizeof(chunk))
                                  : static_cast<int>(recv(fd_, chunk, sizeof(chunk), 0));
    if (n <= 0) return false;
    buffer_.append(chunk, static_cast<size_t>(n));
    return true;
  }
  int fd_ = -1;
  SSL* ssl_ = nullptr;
  std::string buffer_;
};

// A client TLS context trusting `ca`, presenting `cert`/`key` if given.
std::unique_ptr<SSL_CTX, void (*)(SSL_CTX*)> ClientTls(const std::string& ca,
                                                       const std::string& cert = "",
                                                       const std::string& key = "") {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_load_verify_locations(ctx, ca.c_str(), nullptr);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  if (!cert.empty()) {
    SSL_CTX_use_certificate_chain_file(ctx, cert.c_str());
    SSL_CTX_use_PrivateKey_file(ctx, key.c_str(), SSL_FILETYPE_PEM);
  }
  return {ctx, SSL_CTX_free};
}

// Answers with what it was asked: "METHOD path ? query | authorization".
HttpResponse Echo(const HttpRequest& r) {
  HttpResponse out;
  out.content_type = "text/plain";
  out.body = std::make_shared<const std::string>(
      absl::StrCat(r.method, " ", r.path, " ? ", r.query, " | ", r.authorization));
  out.headers.emplace_back("X-Test", "yes");
  if (r.path == "/missing") out.status = 404;
  return out;
}

class HttpServerTest : public testing::Test {
 protected:
  void SetUp() override {
    auto server = HttpServer::Start("127.0.0.1:0", Secure(), Echo);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }
  std::unique_ptr<Client> Dial() { return Client::Dial(server_->port(), tls_.get()); }

  std::unique_ptr<SSL_CTX, void (*)(SSL_CTX*)> tls_ = ClientTls(TestData("ca.pem"));
  std::unique_ptr<HttpServer> server_;
};

TEST_F(HttpServerTest, AKeepAliveConnectionServesManyRequestsAsSent) {
  auto c = Dial();
  ASSERT_NE(c, nullptr);
  for (int i = 0; i < 200; ++i) {
    ASSERT_TRUE(c->Get(absl::StrCat("/v1/jobs/j", i, "?a=b%20c&d"), "nst_x"));
    const Reply r = c->Read();
    ASSERT_EQ(r.status, 200) << "request " << i;
    EXPECT_EQ(r.body, absl::StrCat("GET /v1/jobs/j", i, " ? a=b%20c&d | Bearer nst_x"));
    EXPECT_EQ(r.headers.at("content-type"), "text/plain");
    EXPECT_EQ(r.headers.at("x-test"), "yes");
  }
  ASSERT_TRUE(c->Get("/missing", ""));
  const Reply missing = c->Read();
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(missing.body, "GET /missing ?  | ");
}

TEST_F(HttpServerTest, AClientResumesItsTlsSession) {
  // Browsers resume on every new connection to a server they know; a
  // server that verifies client certificates must name its session
  // context for that, or OpenSSL ends each resumption with an alert
  // (Chromium: net::ERR_SSL_PROTOCOL_ERROR).
  for (const int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
    SCOPED_TRACE(version == TLS1_2_VERSION ? "TLS 1.2" : "TLS 1.3");
    auto tls = ClientTls(TestData("ca.pem"));
    SSL_CTX_set_min_proto_version(tls.get(), version);
    SSL_CTX_set_max_proto_version(tls.get(), version);
    auto first = Client::Dial(server_->port(), tls.get());
    ASSERT_NE(first, nullptr);
    ASSERT_TRUE(first->Get("/first"));
    ASSERT_EQ(first->Read().status, 200);
    std::unique_ptr<SSL_SESSION, void (*)(SSL_SESSION*)> session(first->Session(),
                                                                 SSL_SESSION_free);
    ASSERT_NE(session, nullptr);
    // (`first` stays open: OpenSSL forgets a session whose connection is
    // freed without a TLS goodbye.)
    auto again = Client::Dial(server_->port(), tls.get(), session.get());
    ASSERT_NE(again, nullptr);
    ASSERT_TRUE(again->Get("/again"));
    EXPECT_EQ(again->Read().status, 200);
    EXPECT_TRUE(again->Resumed());
  }
}

TEST_F(HttpServerTest, HundredsOfIdleKeepAliveConnectionsHoldNoThread) {
  // More than any thread-per-connection pool would hold: each is served
  // once, then sits idle and open while the next ones are served.
  std::vector<std::unique_ptr<Client>> idle;
  for (int i = 0; i < 300; ++i) {
    idle.push_back(Dial());
    ASSERT_NE(idle.back(), nullptr) << "connection " << i;
    ASSERT_TRUE(idle.back()->Get("/first"));
    ASSERT_EQ(idle.back()->Read().status, 200) << "connection " << i;
  }
  auto late = Dial();
  ASSERT_NE(late, nullptr);
  ASSERT_TRUE(late->Get("/late"));
  EXPECT_EQ(late->Read().status, 200);
  for (auto& c : idle) {
    ASSERT_TRUE(c->Get("/again"));
    EXPECT_EQ(c->Read().status, 200);
  }
}

TEST_F(HttpServerTest, OnlyGetAndHeadAreServed) {
  auto c = Dial();
  ASSERT_TRUE(c->Send("HEAD /x HTTP/1.1\r\nHost: localhost\r\n\r\n"));
  Reply head = c->Read(/*head=*/true);
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.headers["content-type"], "text/plain");
  EXPECT_EQ(head.headers["content-length"], "13") << "the length of \"HEAD /x ?  | \", no body";
  ASSERT_TRUE(c->Get("/after-head"));
  EXPECT_EQ(c->Read().body, "GET /after-head ?  | Bearer tok") << "no stray body bytes";
  auto post = Dial();
  ASSERT_TRUE(
      post->Send("POST /v1/jobs HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\n\r\n{}"));
  EXPECT_EQ(post->Read().status, 501) << "evhttp: 501 Not Implemented";
}

TEST_F(HttpServerTest, AnOversizedUploadIsReadToItsEndAndGetsIts413) {
  // Closing at the first byte over the limit would reset the connection
  // under a client still sending: it would never read why.
  auto c = Dial();
  ASSERT_TRUE(c->Send(absl::StrCat("POST /v1/jobs HTTP/1.1\r\nHost: localhost\r\n",
                                   "Content-Length: 1000000\r\n\r\n", std::string(1000000, 'x'))));
  EXPECT_EQ(c->Read().status, 413);
}

TEST_F(HttpServerTest, OversizedOrMalformedRequestsAreRefusedAndOthersGoOn) {
  auto big = Dial();
  ASSERT_TRUE(big->Send(absl::StrCat(
      "GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: ", std::string(20 << 10, 'a'), "\r\n\r\n")));
  const Reply refused = big->Read();
  EXPECT_TRUE(refused.status == 0 || refused.status >= 400) << refused.status;
  auto garbage = Dial();
  ASSERT_TRUE(garbage->Send("NOT HTTP AT ALL\r\n\r\n"));
  const Reply bad = garbage->Read();
  EXPECT_TRUE(bad.status == 0 || bad.status == 400) << bad.status;
  // Plaintext HTTP to the TLS port: the handshake fails, nothing else.
  auto plain = Client::Dial(server_->port(), nullptr);
  ASSERT_NE(plain, nullptr);
  ASSERT_TRUE(plain->Get("/plain"));
  EXPECT_EQ(plain->Read().status, 0);
  auto good = Dial();
  ASSERT_TRUE(good->Get("/still"));
  EXPECT_EQ(good->Read().status, 200);
}

TEST_F(HttpServerTest, ClientCertificatesAreOptionalButMustBeOurCAs) {
  auto ours = ClientTls(TestData("ca.pem"), TestData("node.pem"), TestData("node.key"));
  auto with_ours = Client::Dial(server_->port(), ours.get());
  ASSERT_NE(with_ours, nullptr);
  ASSERT_TRUE(with_ours->Get("/ours"));
  EXPECT_EQ(with_ours->Read().status, 200);
  auto theirs =
      ClientTls(TestData("ca.pem"), TestData("other/node.pem"), TestData("other/node.key"));
  auto with_theirs = Client::Dial(server_->port(), theirs.get());
  // TLS 1.3 reports the refusal on the first read, not in SSL_connect.
  if (with_theirs != nullptr) {
    (void)with_theirs->Get("/theirs");
    EXPECT_EQ(with_theirs->Read().status, 0);
  }
  // A client that trusts another CA refuses our server.
  auto wrong_ca = ClientTls(TestData("other/ca.pem"));
  EXPECT_EQ(Client::Dial(server_->port(), wrong_ca.get()), nullptr);
}

TEST_F(HttpServerTest, StopClosesEveryConnection) {
  auto c = Dial();
  ASSERT_TRUE(c->Get("/before"));
  ASSERT_EQ(c->Read().status, 200);
  server_->Stop();
  EXPECT_TRUE(c->Closed());
  EXPECT_EQ(Dial(), nullptr) << "nothing listens any more";
  server_->Stop();  // idempotent
}

TEST(HttpServerPlainTest, RunningOutOfDescriptorsHangsNoOneAndServesEveryoneAfter) {
  TransportSecurity insecure;
  insecure.insecure = true;
  auto server = HttpServer::Start("127.0.0.1:0", insecure, Echo);
  ASSERT_TRUE(server.ok()) << server.status();
  // (Liveness only: that accepting pauses instead of spinning meanwhile
  // shows in the log, "pausing new connections", not in an assertion.)
  // The clients' sockets first, then no descriptor left: they connect
  // (the kernel's backlog takes them) but the server cannot accept them.
  std::vector<int> sockets;
  for (int i = 0; i < 20; ++i) sockets.push_back(socket(AF_INET, SOCK_STREAM, 0));
  rlimit original{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &original), 0);
  rlimit none = original;
  none.rlim_cur = static_cast<rlim_t>(*std::max_element(sockets.begin(), sockets.end()) + 1);
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &none), 0);
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < 20; ++i) {
    clients.push_back(Client::Connect(sockets[i], (*server)->port(), nullptr));
    ASSERT_NE(clients.back(), nullptr);
    ASSERT_TRUE(clients.back()->Get(absl::StrCat("/c", i)));
  }
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &original), 0);
  for (size_t i = 0; i < clients.size(); ++i) {
    EXPECT_EQ(clients[i]->Read().status, 200) << "client " << i << " of " << clients.size();
  }
}

TEST(HttpServerPlainTest, InsecureServesPlaintextAndBadAddressesAreNamed) {
  TransportSecurity insecure;
  insecure.insecure = true;
  auto server = HttpServer::Start("localhost:0", insecure, Echo);
  ASSERT_TRUE(server.ok()) << server.status();
  auto c = Client::Dial((*server)->port(), nullptr);
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->Get("/plain?x=1"));
  EXPECT_EQ(c->Read().body, "GET /plain ? x=1 | Bearer tok");
  EXPECT_THAT(HttpServer::Start("nocolon", insecure, Echo).status().message(),
              HasSubstr("'nocolon' is not HOST:PORT"));
  auto taken = HttpServer::Start(absl::StrCat("127.0.0.1:", (*server)->port()), insecure, Echo);
  EXPECT_THAT(taken.status().message(), HasSubstr("Address already in use"));
  TransportSecurity bad = Secure();
  bad.tls.cert = TestData("other/node.pem");
  EXPECT_THAT(HttpServer::Start("127.0.0.1:0", bad, Echo).status().message(),
              HasSubstr("cannot use the certificate"));
}

}  // namespace
}  // namespace nightshift::security
