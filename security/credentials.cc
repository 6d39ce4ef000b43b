#include "security/credentials.h"

#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include <cstdio>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "glog/logging.h"
#include "grpcpp/security/tls_certificate_provider.h"
#include "grpcpp/security/tls_credentials_options.h"

namespace nightshift::security {
namespace {

// OpenSSL objects freed at scope exit.
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct KeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct StoreFree {
  void operator()(X509_STORE* s) const { X509_STORE_free(s); }
};
struct StoreCtxFree {
  void operator()(X509_STORE_CTX* s) const { X509_STORE_CTX_free(s); }
};

absl::StatusOr<std::unique_ptr<X509, X509Free>> ReadCertificate(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "r");
  if (f == nullptr) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::unique_ptr<X509, X509Free> cert(PEM_read_X509(f, nullptr, nullptr, nullptr));
  std::fclose(f);
  if (cert == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a PEM certificate"));
  }
  return cert;
}

std::shared_ptr<grpc::experimental::CertificateProviderInterface> Provider(
    const TransportSecurity& s) {
  return std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      s.tls.key, s.tls.cert, s.tls.ca,
      static_cast<unsigned>(std::max<int64_t>(1, absl::ToInt64Seconds(s.refresh))));
}

}  // namespace

absl::Status CheckTlsFiles(const TlsFiles& files) {
  for (const auto& [flag, path] : {std::pair<const char*, const std::string&>{"--tls_ca", files.ca},
                                   {"--tls_cert", files.cert},
                                   {"--tls_key", files.key}}) {
    if (path.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(flag, " is missing: TLS needs --tls_ca, --tls_cert and --tls_key"));
    }
  }
  auto ca = ReadCertificate(files.ca);
  if (!ca.ok()) return ca.status();
  auto cert = ReadCertificate(files.cert);
  if (!cert.ok()) return cert.status();
  FILE* f = std::fopen(files.key.c_str(), "r");
  if (f == nullptr) return absl::NotFoundError(absl::StrCat(files.key, ": cannot open"));
  std::unique_ptr<EVP_PKEY, KeyFree> key(PEM_read_PrivateKey(f, nullptr, nullptr, nullptr));
  std::fclose(f);
  if (key == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(files.key, ": not a PEM private key"));
  }
  if (X509_check_private_key(cert->get(), key.get()) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(files.key, ": does not match the certificate in ", files.cert));
  }
  std::unique_ptr<X509_STORE, StoreFree> store(X509_STORE_new());
  X509_STORE_add_cert(store.get(), ca->get());
  std::unique_ptr<X509_STORE_CTX, StoreCtxFree> ctx(X509_STORE_CTX_new());
  X509_STORE_CTX_init(ctx.get(), store.get(), cert->get(), nullptr);
  if (X509_verify_cert(ctx.get()) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(files.cert, ": not signed by the CA in ", files.ca, " (",
                     X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx.get())), ")"));
  }
  return absl::OkStatus();
}

absl::StatusOr<TransportSecurity> TransportSecurityFromFlags(bool insecure, TlsFiles files,
                                                             absl::string_view who) {
  TransportSecurity s;
  if (insecure) {
    if (!files.empty()) {
      return absl::InvalidArgumentError(
          "--insecure and --tls_ca/--tls_cert/--tls_key exclude "
          "each other");
    }
    LOG(WARNING) << who
                 << ": --insecure: TLS is OFF. Traffic, including tokens, crosses the "
                    "network in plaintext, and peers are not authenticated by certificate. "
                    "Use this for development on one machine only.";
    s.insecure = true;
    return s;
  }
  if (files.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        who,
        " needs TLS: pass --tls_ca, --tls_cert and --tls_key (deploy/certs.sh makes them), or "
        "--insecure to run without TLS (development only)"));
  }
  if (absl::Status ok = CheckTlsFiles(files); !ok.ok()) return ok;
  s.tls = std::move(files);
  return s;
}

absl::string_view HostOf(absl::string_view address) {
  const size_t colon = address.rfind(':');
  if (colon == absl::string_view::npos) return address;
  return address.substr(0, colon);
}

bool IsLoopbackHost(absl::string_view host) {
  if (absl::ConsumePrefix(&host, "[")) absl::ConsumeSuffix(&host, "]");
  return host == "localhost" || host == "::1" || absl::StartsWith(host, "127.");
}

std::shared_ptr<grpc::ServerCredentials> ServerCredentials(const TransportSecurity& s,
                                                           absl::string_view address) {
  if (s.insecure) {
    if (!IsLoopbackHost(HostOf(address))) {
      LOG(WARNING) << "--insecure: listening on " << address
                   << " without TLS: anyone who can reach it reads every token and model";
    }
    return grpc::InsecureServerCredentials();
  }
  grpc::experimental::TlsServerCredentialsOptions options(Provider(s));
  options.watch_root_certs();
  options.watch_identity_key_cert_pairs();
  options.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  return grpc::experimental::TlsServerCredentials(options);
}

std::shared_ptr<grpc::ChannelCredentials> ChannelCredentials(const TransportSecurity& s) {
  if (s.insecure) return grpc::InsecureChannelCredentials();
  grpc::experimental::TlsChannelCredentialsOptions options;
  options.set_certificate_provider(Provider(s));
  options.watch_root_certs();
  options.watch_identity_key_cert_pairs();
  return grpc::experimental::TlsCredentials(options);
}

}  // namespace nightshift::security
