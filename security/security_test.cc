// Tokens and roles; TLS files checked at start; mutual TLS handshakes with
// certificates made by deploy/certs.sh (the test_certs genrule): the
// project CA's pass, another CA's and plaintext fail.
#include <cstdlib>

#include "absl/strings/match.h"
#include "gmock/gmock.h"
#include "grpcpp/generic/async_generic_service.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "security/channel.h"
#include "security/credentials.h"
#include "security/tokens.h"

namespace nightshift::security {
namespace {

using testing::HasSubstr;

std::string TestData(const std::string& name) {
  return std::string(std::getenv("TEST_SRCDIR")) + "/nightshift/security/testdata/" + name;
}

TlsFiles Ours() { return {TestData("ca.pem"), TestData("node.pem"), TestData("node.key")}; }
TlsFiles Theirs() {
  return {TestData("other/ca.pem"), TestData("other/node.pem"), TestData("other/node.key")};
}

TEST(TokensTest, AreRandomAndOnlyTheirHashIsKept) {
  const std::string a = NewToken(), b = NewToken();
  EXPECT_NE(a, b);
  EXPECT_TRUE(absl::StartsWith(a, "nst_"));
  EXPECT_EQ(a.size(), 4u + 43u);
  EXPECT_EQ(TokenHash(a).size(), 64u);
  EXPECT_EQ(TokenHash(a), TokenHash(a));
  EXPECT_NE(TokenHash(a), TokenHash(b));
  EXPECT_EQ(TokenHash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(RandomHex(8).size(), 16u);
}

TEST(TokensTest, BearerHeader) {
  EXPECT_EQ(*BearerToken("Bearer nst_x"), "nst_x");
  EXPECT_EQ(BearerToken("").status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(BearerToken("Basic abc").status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(BearerToken("Bearer ").status().code(), absl::StatusCode::kUnauthenticated);
}

TEST(TokensTest, RolesAllowWhatTheySay) {
  EXPECT_TRUE(Allows(Role::kViewer, Access::kRead));
  EXPECT_FALSE(Allows(Role::kViewer, Access::kAdmin));
  EXPECT_FALSE(Allows(Role::kViewer, Access::kWork));
  EXPECT_TRUE(Allows(Role::kWorker, Access::kWork));
  EXPECT_FALSE(Allows(Role::kWorker, Access::kRead));
  EXPECT_FALSE(Allows(Role::kWorker, Access::kAdmin));
  EXPECT_TRUE(Allows(Role::kAdmin, Access::kAdmin));
  EXPECT_TRUE(Allows(Role::kAdmin, Access::kRead));
  EXPECT_FALSE(Allows(Role::kAdmin, Access::kWork));
  EXPECT_EQ(*ParseRole("viewer"), Role::kViewer);
  EXPECT_THAT(std::string(ParseRole("root").status().message()), HasSubstr("'root'"));
}

TEST(TokenRegistryTest, AuthenticatesKnownTokensAndTracksEnrolledNames) {
  TokenRegistry registry;
  const std::string admin = NewToken(), credential = NewToken();
  registry.Add(TokenHash(admin), {Role::kAdmin, "", "ops"});
  registry.Add(TokenHash(credential), {Role::kWorker, "dc-0", ""});
  EXPECT_EQ(registry.Authenticate(admin)->role, Role::kAdmin);
  EXPECT_EQ(registry.Authenticate(credential)->subject, "dc-0");
  EXPECT_EQ(registry.Authenticate(NewToken()).status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_TRUE(registry.Enrolled("dc-0"));
  EXPECT_FALSE(registry.Enrolled("dc-1"));
  EXPECT_TRUE(registry.HasRole(Role::kAdmin));
  EXPECT_TRUE(registry.Remove(TokenHash(credential)));
  EXPECT_FALSE(registry.Enrolled("dc-0"));
  EXPECT_EQ(registry.Authenticate(credential).status().code(), absl::StatusCode::kUnauthenticated);
}

TEST(CredentialsTest, ChecksTlsFilesAtStart) {
  EXPECT_TRUE(CheckTlsFiles(Ours()).ok());
  TlsFiles mismatched = Ours();
  mismatched.key = Theirs().key;
  EXPECT_THAT(std::string(CheckTlsFiles(mismatched).message()),
              HasSubstr("does not match the certificate"));
  TlsFiles foreign = Ours();
  foreign.cert = Theirs().cert;
  foreign.key = Theirs().key;
  EXPECT_THAT(std::string(CheckTlsFiles(foreign).message()), HasSubstr("not signed by the CA"));
  TlsFiles missing = Ours();
  missing.cert = "/nonexistent.pem";
  EXPECT_THAT(std::string(CheckTlsFiles(missing).message()), HasSubstr("/nonexistent.pem"));
  TlsFiles garbage = Ours();
  garbage.cert = TestData("node.key");
  EXPECT_THAT(std::string(CheckTlsFiles(garbage).message()), HasSubstr("not a PEM certificate"));
}

TEST(CredentialsTest, NoTlsNeedsAnExplicitInsecure) {
  auto none = TransportSecurityFromFlags(false, {}, "test");
  EXPECT_EQ(none.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(none.status().message()), HasSubstr("--insecure"));
  EXPECT_EQ(TransportSecurityFromFlags(true, Ours(), "test").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(TransportSecurityFromFlags(true, {}, "test")->insecure);
  EXPECT_FALSE(TransportSecurityFromFlags(false, Ours(), "test")->insecure);
}

TEST(CredentialsTest, Loopback) {
  EXPECT_TRUE(IsLoopbackHost(HostOf("127.0.0.1:7070")));
  EXPECT_TRUE(IsLoopbackHost(HostOf("localhost:1")));
  EXPECT_TRUE(IsLoopbackHost(HostOf("[::1]:80")));
  EXPECT_FALSE(IsLoopbackHost(HostOf("0.0.0.0:7070")));
  EXPECT_FALSE(IsLoopbackHost(HostOf("10.1.2.3:7070")));
}

// A mutual-TLS server; whether a client with `client` security connects.
class HandshakeTest : public testing::Test {
 protected:
  void SetUp() override {
    TransportSecurity server;
    server.tls = Ours();
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", ServerCredentials(server, "127.0.0.1:0"), &port_);
    builder.RegisterCallbackGenericService(&no_methods_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
  }
  void TearDown() override { server_->Shutdown(); }
  bool Connects(const TransportSecurity& client) {
    auto channel = NewChannel("127.0.0.1:" + std::to_string(port_), client, nullptr);
    return channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(3));
  }
  int port_ = 0;
  grpc::CallbackGenericService no_methods_;  // a server needs one service
  std::unique_ptr<grpc::Server> server_;
};

TEST_F(HandshakeTest, TheProjectCaPasses) {
  TransportSecurity client;
  client.tls = Ours();
  EXPECT_TRUE(Connects(client));
}

TEST_F(HandshakeTest, AnotherCaIsRefused) {
  TransportSecurity client;
  client.tls = Theirs();
  EXPECT_FALSE(Connects(client));
}

TEST_F(HandshakeTest, OurCaButAnotherCasClientCertificateIsRefused) {
  TransportSecurity client;
  client.tls = {TestData("ca.pem"), TestData("other/node.pem"), TestData("other/node.key")};
  // The channel verifies the server, but the server refuses the client.
  EXPECT_FALSE(Connects(client));
}

TEST_F(HandshakeTest, PlaintextIsRefused) {
  TransportSecurity client;
  client.insecure = true;
  EXPECT_FALSE(Connects(client));
}

}  // namespace
}  // namespace nightshift::security
