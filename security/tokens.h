// Bearer tokens and roles.
//
// A token is "nst_" and 43 base64url characters (32 bytes from OpenSSL's
// CSPRNG). Clients send it as `authorization: Bearer TOKEN` (gRPC
// metadata, or the HTTP header). Only its SHA-256 is stored: a leaked
// state file leaks no token (the entropy makes a slow hash unnecessary).
//
// Roles and what they may do (Allows):
//   viewer  reads: jobs, history, workers, metrics, model download
//   worker  the worker calls: register, heartbeat, progress, uploads (and a
//           checkpoint download of its own job); nothing else
//   admin   everything: submit, cancel, drain, create and revoke tokens,
//           and every read
// A worker token with a `subject` is one worker's credential, bound to
// that worker name at enrollment; one without is a join token, good only
// for enrolling a name not yet enrolled.
#ifndef NIGHTSHIFT_SECURITY_TOKENS_H_
#define NIGHTSHIFT_SECURITY_TOKENS_H_

#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace nightshift::security {

enum class Role { kViewer = 1, kWorker = 2, kAdmin = 3 };
enum class Access { kRead, kWork, kAdmin };

absl::string_view RoleName(Role role);
// "viewer", "worker" or "admin".
absl::StatusOr<Role> ParseRole(absl::string_view name);
bool Allows(Role role, Access access);

// Who presented a token.
struct Principal {
  Role role = Role::kViewer;
  std::string subject;  // worker credentials: the worker name they are bound to
  std::string label;    // free text given at creation
};

std::string NewToken();
// Lowercase hex SHA-256 of the token.
std::string TokenHash(absl::string_view token);
// Lowercase hex SHA-256 of any bytes (DiLoCo parameters, checked after a
// resumed fetch).
std::string Sha256Hex(absl::string_view bytes);
// `bytes` random bytes from the CSPRNG, as lowercase hex.
std::string RandomHex(int bytes);

// The token of an `authorization` value "Bearer TOKEN"; UNAUTHENTICATED
// when it is missing or not of that form.
absl::StatusOr<std::string> BearerToken(absl::string_view authorization);

// The tokens a coordinator accepts, by hash. Thread-safe; its own lock,
// so authenticating never waits on the coordinator's.
class TokenRegistry {
 public:
  // UNAUTHENTICATED for an unknown (or revoked) token.
  absl::StatusOr<Principal> Authenticate(absl::string_view token) const;
  void Add(const std::string& hash, Principal principal);
  bool Remove(const std::string& hash);
  // Whether some worker credential is bound to `name`.
  bool Enrolled(absl::string_view name) const;
  bool HasRole(Role role) const;

 private:
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Principal> by_hash_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, int> enrolled_ ABSL_GUARDED_BY(mu_);  // subject -> count
};

}  // namespace nightshift::security

#endif  // NIGHTSHIFT_SECURITY_TOKENS_H_
