// Job states in words: the one home of their names and of which states are
// final, for every component that shows or tests them (the coordinator,
// its HTTP API and metrics, the CLI).
#ifndef NIGHTSHIFT_PROTO_JOB_STATE_H_
#define NIGHTSHIFT_PROTO_JOB_STATE_H_

#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "nightshift/v1/status.pb.h"

namespace nightshift {

// Every state a job can be in, in lifecycle order.
inline constexpr v1::JobState kJobStates[] = {v1::JOB_STATE_QUEUED,  v1::JOB_STATE_RUNNING,
                                              v1::JOB_STATE_WAITING, v1::JOB_STATE_SUCCEEDED,
                                              v1::JOB_STATE_FAILED,  v1::JOB_STATE_CANCELLED};

// "RUNNING" for JOB_STATE_RUNNING: the enum value's name without its prefix.
inline std::string JobStateName(v1::JobState state) {
  std::string name = v1::JobState_Name(state);
  constexpr absl::string_view kPrefix = "JOB_STATE_";
  return absl::StartsWith(name, kPrefix) ? name.substr(kPrefix.size()) : name;
}

// "running": the name as a metric label.
inline std::string JobStateLabel(v1::JobState state) {
  return absl::AsciiStrToLower(JobStateName(state));
}

// SUCCEEDED, FAILED and CANCELLED are final: nothing changes after them.
inline bool IsTerminal(v1::JobState state) {
  // (RUNNING and WAITING are both "started": the job holds workers.)
  return state == v1::JOB_STATE_SUCCEEDED || state == v1::JOB_STATE_FAILED ||
         state == v1::JOB_STATE_CANCELLED;
}

}  // namespace nightshift

#endif  // NIGHTSHIFT_PROTO_JOB_STATE_H_
