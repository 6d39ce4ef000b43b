// The `nightshift` commands that talk to a coordinator: submit, list,
// status, watch, cancel, workers, drain, export. Each prints to stdout, errors to
// stderr as "nightshift: CODE: message", and returns the exit code
// (0 ok, 1 the API refused or the job did not succeed, 2 bad usage).
#ifndef NIGHTSHIFT_CLI_CLIENT_COMMANDS_H_
#define NIGHTSHIFT_CLI_CLIENT_COMMANDS_H_

#include <string>
#include <vector>

namespace nightshift {

struct ClientFlags {
  std::string coordinator;
  std::string id;      // submit --id
  bool watch = false;  // submit --watch
};

// `args` excludes the command name; returns the exit code.
int RunClientCommand(const std::string& command, const std::vector<std::string>& args,
                     const ClientFlags& flags);
bool IsClientCommand(const std::string& command);

}  // namespace nightshift

#endif  // NIGHTSHIFT_CLI_CLIENT_COMMANDS_H_
