// Coordinator: tokens and worker identity (coordinator.h, "Tokens").
//
// Enrollment: a worker registers first with a join token (role worker, no
// subject); the coordinator mints the worker's own credential, bound to
// the name it registered, and returns it once (RegisterResponse.
// worker_credential). From then on the worker presents that credential;
// every worker call checks that it is bound to the worker the request
// names, and the name can be registered again only with it (revoking the
// credential frees the name).
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "coordinator/coordinator.h"
#include "glog/logging.h"

namespace nightshift::coordinator {

using security::Principal;
using security::Role;

absl::StatusOr<Principal> Coordinator::Authenticate(absl::string_view token) const {
  return tokens_.Authenticate(token);
}

absl::StatusOr<std::string> Coordinator::MintToken(Role role, const std::string& subject,
                                                   const std::string& label, v1::TokenInfo* out) {
  const std::string token = security::NewToken();
  const std::string hash = security::TokenHash(token);
  v1::TokenInfo info;
  info.set_id(hash.substr(0, 16));
  info.set_role(std::string(security::RoleName(role)));
  info.set_subject(subject);
  info.set_label(label);
  *info.mutable_created() = NowProto();
  RETURN_IF_ERROR(store_->PutToken(hash, info));
  tokens_.Add(hash, Principal{role, subject, label});
  if (out != nullptr) *out = info;
  return token;
}

absl::StatusOr<v1::CreateTokenResponse> Coordinator::CreateToken(
    const v1::CreateTokenRequest& request) {
  ASSIGN_OR_RETURN(Role role, security::ParseRole(request.role()));
  if (request.label().size() > 256) {
    return absl::InvalidArgumentError("label: longer than 256 characters");
  }
  v1::CreateTokenResponse response;
  ASSIGN_OR_RETURN(*response.mutable_token(),
                   MintToken(role, "", request.label(), response.mutable_info()));
  LOG(INFO) << "token " << response.info().id() << ": created, role " << request.role();
  return response;
}

absl::StatusOr<std::vector<v1::TokenInfo>> Coordinator::ListTokens() {
  ASSIGN_OR_RETURN(auto tokens, store_->ListTokens());
  std::vector<v1::TokenInfo> out;
  for (auto& [hash, info] : tokens) out.push_back(std::move(info));
  return out;
}

absl::Status Coordinator::RevokeToken(const std::string& id) {
  if (id.size() != 16) return absl::InvalidArgumentError("id: a token id has 16 hex digits");
  ASSIGN_OR_RETURN(auto tokens, store_->ListTokens());
  for (const auto& [hash, info] : tokens) {
    if (info.id() != id) continue;
    RETURN_IF_ERROR(store_->DeleteToken(hash));
    tokens_.Remove(hash);
    LOG(INFO) << "token " << id << ": revoked (role " << info.role()
              << (info.subject().empty() ? "" : ", worker ") << info.subject() << ")";
    return absl::OkStatus();
  }
  return absl::NotFoundError(absl::StrCat("no token ", id));
}

absl::StatusOr<std::string> Coordinator::BootstrapAdminToken() {
  if (tokens_.HasRole(Role::kAdmin)) return std::string();
  return MintToken(Role::kAdmin, "", "bootstrap admin token");
}

absl::StatusOr<std::string> Coordinator::Enroll(const Principal& caller, const std::string& name) {
  if (caller.role != Role::kWorker) {
    return absl::PermissionDeniedError(absl::StrCat("Register needs a worker token, not a ",
                                                    security::RoleName(caller.role), " token"));
  }
  if (!caller.subject.empty()) {
    if (caller.subject != name) {
      return absl::PermissionDeniedError(absl::StrCat("this credential is worker '", caller.subject,
                                                      "''s; it cannot register '", name, "'"));
    }
    return std::string();
  }
  absl::MutexLock lock(&enroll_mu_);  // the check and the mint are one step
  if (tokens_.Enrolled(name)) {
    return absl::PermissionDeniedError(
        absl::StrCat("worker name '", name,
                     "' is enrolled to another identity: register with its credential (or an "
                     "admin revokes that credential to free the name)"));
  }
  LOG(INFO) << "worker " << name << ": enrolled";
  return MintToken(Role::kWorker, name, absl::StrCat("credential of worker ", name));
}

absl::Status Coordinator::CallerIs(const Principal& caller, const v1::WorkerInfo& worker) {
  if (caller.role == Role::kWorker && caller.subject == worker.name()) return absl::OkStatus();
  return absl::PermissionDeniedError(absl::StrCat(
      "worker ", worker.id(), " is not the caller's: the token presented is ",
      caller.role != Role::kWorker ? absl::StrCat("a ", security::RoleName(caller.role), " token")
      : caller.subject.empty()     ? std::string("a join token (register first)")
                                   : absl::StrCat("worker '", caller.subject, "''s credential")));
}

absl::Status Coordinator::MayDownload(const Principal& caller, const std::string& job_id) {
  if (security::Allows(caller.role, security::Access::kRead)) return absl::OkStatus();
  absl::MutexLock lock(&mu_);
  for (const auto& [id, w] : workers_) {
    if (caller.role == Role::kWorker && w.info.name() == caller.subject &&
        (w.assigned_job == job_id || w.left_job == job_id)) {
      return absl::OkStatus();
    }
  }
  return absl::PermissionDeniedError(
      absl::StrCat("a worker may download only the job it runs, not ", job_id));
}

absl::Status Coordinator::MayDrain(const Principal& caller, const std::string& worker) {
  if (caller.role == Role::kAdmin) return absl::OkStatus();
  absl::MutexLock lock(&mu_);
  for (const auto& [id, w] : workers_) {
    if ((id == worker || w.info.name() == worker) && caller.role == Role::kWorker &&
        w.info.name() == caller.subject) {
      return absl::OkStatus();
    }
  }
  return absl::PermissionDeniedError(absl::StrCat("a worker may drain only itself, not ", worker));
}

}  // namespace nightshift::coordinator
