#include "security/tokens.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "glog/logging.h"

namespace nightshift::security {
namespace {

std::string RandomBytes(int n) {
  std::string bytes(n, '\0');
  // Fails only when the OS has no entropy to give: nothing safe to do then.
  CHECK_EQ(RAND_bytes(reinterpret_cast<unsigned char*>(bytes.data()), n), 1)
      << "OpenSSL's CSPRNG failed";
  return bytes;
}

}  // namespace

absl::string_view RoleName(Role role) {
  switch (role) {
    case Role::kViewer:
      return "viewer";
    case Role::kWorker:
      return "worker";
    case Role::kAdmin:
      return "admin";
  }
  return "unknown";
}

absl::StatusOr<Role> ParseRole(absl::string_view name) {
  for (Role r : {Role::kViewer, Role::kWorker, Role::kAdmin}) {
    if (name == RoleName(r)) return r;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("role '", name, "' is not one of viewer, worker, admin"));
}

bool Allows(Role role, Access access) {
  switch (access) {
    case Access::kRead:
      return role == Role::kViewer || role == Role::kAdmin;
    case Access::kWork:
      return role == Role::kWorker;
    case Access::kAdmin:
      return role == Role::kAdmin;
  }
  return false;
}

std::string NewToken() { return absl::StrCat("nst_", absl::WebSafeBase64Escape(RandomBytes(32))); }

std::string RandomHex(int bytes) { return absl::BytesToHexString(RandomBytes(bytes)); }

std::string Sha256Hex(absl::string_view bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(bytes.data(), bytes.size(), digest, &length, EVP_sha256(), nullptr);
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(digest), length));
}

std::string TokenHash(absl::string_view token) { return Sha256Hex(token); }

absl::StatusOr<std::string> BearerToken(absl::string_view authorization) {
  if (authorization.empty()) {
    return absl::UnauthenticatedError(
        "no token: send `authorization: Bearer TOKEN` (nightshift: --token, $NIGHTSHIFT_TOKEN "
        "or the config directory's token file)");
  }
  if (!absl::ConsumePrefix(&authorization, "Bearer ") || authorization.empty()) {
    return absl::UnauthenticatedError("the authorization header is not `Bearer TOKEN`");
  }
  return std::string(authorization);
}

absl::StatusOr<Principal> TokenRegistry::Authenticate(absl::string_view token) const {
  const std::string hash = TokenHash(token);
  absl::MutexLock lock(&mu_);
  auto it = by_hash_.find(hash);
  if (it == by_hash_.end()) return absl::UnauthenticatedError("unknown or revoked token");
  return it->second;
}

void TokenRegistry::Add(const std::string& hash, Principal principal) {
  absl::MutexLock lock(&mu_);
  if (!principal.subject.empty()) ++enrolled_[principal.subject];
  by_hash_[hash] = std::move(principal);
}

bool TokenRegistry::Remove(const std::string& hash) {
  absl::MutexLock lock(&mu_);
  auto it = by_hash_.find(hash);
  if (it == by_hash_.end()) return false;
  if (!it->second.subject.empty() && --enrolled_[it->second.subject] == 0) {
    enrolled_.erase(it->second.subject);
  }
  by_hash_.erase(it);
  return true;
}

bool TokenRegistry::Enrolled(absl::string_view name) const {
  absl::MutexLock lock(&mu_);
  return enrolled_.contains(name);
}

bool TokenRegistry::HasRole(Role role) const {
  absl::MutexLock lock(&mu_);
  for (const auto& [hash, p] : by_hash_) {
    if (p.role == role) return true;
  }
  return false;
}

}  // namespace nightshift::security
