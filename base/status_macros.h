// RETURN_IF_ERROR and ASSIGN_OR_RETURN for absl::Status / absl::StatusOr.
//
// Debian's Abseil (20220623) predates Abseil's own status macros, so the
// project keeps these two. They only propagate; they never log or convert.
#ifndef NIGHTSHIFT_BASE_STATUS_MACROS_H_
#define NIGHTSHIFT_BASE_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define NS_STATUS_CONCAT_INNER_(a, b) a##b
#define NS_STATUS_CONCAT_(a, b) NS_STATUS_CONCAT_INNER_(a, b)

// Evaluates `expr` (an absl::Status) and returns it from the enclosing
// function if it is not OK.
#define RETURN_IF_ERROR(expr)                \
  do {                                       \
    ::absl::Status ns_status_ = (expr);      \
    if (!ns_status_.ok()) return ns_status_; \
  } while (false)

// `ASSIGN_OR_RETURN(auto x, MakeX());` evaluates an absl::StatusOr<T>,
// returns its status if not OK, and otherwise moves its value into `lhs`.
#define ASSIGN_OR_RETURN(lhs, expr) \
  NS_ASSIGN_OR_RETURN_IMPL_(NS_STATUS_CONCAT_(ns_statusor_, __LINE__), lhs, expr)

#define NS_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr)     \
  auto statusor = (expr);                                  \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = std::move(statusor).value()

#endif  // NIGHTSHIFT_BASE_STATUS_MACROS_H_
