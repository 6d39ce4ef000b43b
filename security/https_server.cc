#include "security/https_server.h"

#include <httplib.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <sys/stat.h>

#include <chrono>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "glog/logging.h"

namespace nightshift::security {
namespace {

// The certificate chain and key of the files, re-read when either file's
// modification time changes (checked at most once per `refresh`).
class CertificateReloader {
 public:
  explicit CertificateReloader(const TransportSecurity& s) : files_(s.tls), refresh_(s.refresh) {}
  ~CertificateReloader() { Clear(); }

  // Sets up `ctx`: TLS 1.2 or newer, client certificates verified against
  // the CA when presented, and our certificate chosen per handshake.
  bool Install(SSL_CTX& ctx) {
    SSL_CTX_set_min_proto_version(&ctx, TLS1_2_VERSION);
    if (SSL_CTX_load_verify_locations(&ctx, files_.ca.c_str(), nullptr) != 1) return false;
    SSL_CTX_set_verify(&ctx, SSL_VERIFY_PEER, nullptr);
    {
      absl::MutexLock lock(&mu_);
      if (!LoadLocked()) return false;
    }
    SSL_CTX_set_cert_cb(&ctx, &CertificateReloader::OnHandshake, this);
    return true;
  }

 private:
  static int OnHandshake(SSL* ssl, void* self) {
    return static_cast<CertificateReloader*>(self)->Use(ssl) ? 1 : 0;
  }

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
  absl::Mutex mu_;
  X509* cert_ ABSL_GUARDED_BY(mu_) = nullptr;
  EVP_PKEY* key_ ABSL_GUARDED_BY(mu_) = nullptr;
  STACK_OF(X509) * chain_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::pair<int64_t, int64_t> stamp_ ABSL_GUARDED_BY(mu_);
  std::chrono::steady_clock::time_point checked_ ABSL_GUARDED_BY(mu_);
};

// An SSLServer that owns the reloader its SSL_CTX points to.
class ReloadingHttpsServer final : public httplib::SSLServer {
 public:
  explicit ReloadingHttpsServer(std::unique_ptr<CertificateReloader> reloader)
      : SSLServer([r = reloader.get()](SSL_CTX& ctx) { return r->Install(ctx); }),
        reloader_(std::move(reloader)) {}

 private:
  std::unique_ptr<CertificateReloader> reloader_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<httplib::Server>> NewHttpServer(const TransportSecurity& s) {
  if (s.insecure) return std::make_unique<httplib::Server>();
  auto server = std::make_unique<ReloadingHttpsServer>(std::make_unique<CertificateReloader>(s));
  if (!server->is_valid()) {
    return absl::InvalidArgumentError(absl::StrCat("HTTP: cannot use the certificate ", s.tls.cert,
                                                   " and key ", s.tls.key, " with CA ", s.tls.ca));
  }
  return server;
}

}  // namespace nightshift::security
