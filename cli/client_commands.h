// The `nightshift` commands that talk to a coordinator: submit, list,
// status, watch, cancel, workers, drain, export, token, publish, models,
// pull. Each prints to
// stdout, errors to stderr as "nightshift: CODE: message", and returns the
// exit code (0 ok, 1 the API refused or the job did not succeed, 2 bad
// usage). Credentials, TLS files and the coordinator's address come from
// flags, the environment or the config directory (security/token_file.h).
#ifndef NIGHTSHIFT_CLI_CLIENT_COMMANDS_H_
#define NIGHTSHIFT_CLI_CLIENT_COMMANDS_H_

#include <string>
#include <vector>

#include "security/credentials.h"

namespace nightshift {

struct ClientFlags {
  std::string coordinator;  // empty: the config directory's, or 127.0.0.1:7070
  std::string id;           // submit --id
  bool watch = false;       // submit --watch
  std::string token;        // --token
  std::string token_file;   // --token_file
  security::TlsFiles tls;   // --tls_ca, --tls_cert, --tls_key
  bool insecure = false;    // --insecure
  std::string role;         // token create --role
  std::string label;        // token create --label
};

// `args` excludes the command name; returns the exit code.
int RunClientCommand(const std::string& command, const std::vector<std::string>& args,
                     const ClientFlags& flags);
bool IsClientCommand(const std::string& command);

}  // namespace nightshift

#endif  // NIGHTSHIFT_CLI_CLIENT_COMMANDS_H_
