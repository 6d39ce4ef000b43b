// Where clients find their credentials, as kubectl and the Ray CLI do:
// flags first, then the environment, then the user's config directory.
//
//   config directory  $NIGHTSHIFT_CONFIG_DIR, else $XDG_CONFIG_HOME/nightshift,
//                     else $HOME/.config/nightshift
//   token             --token, --token_file, $NIGHTSHIFT_TOKEN, CONFIG/token
//   TLS               --tls_ca/--tls_cert/--tls_key, else CONFIG/ca.pem,
//                     CONFIG/client.pem, CONFIG/client.key when present
//   coordinator       --coordinator, else CONFIG/coordinator, else
//                     127.0.0.1:7070
// deploy/local_cluster.sh up writes the config directory.
#ifndef NIGHTSHIFT_SECURITY_TOKEN_FILE_H_
#define NIGHTSHIFT_SECURITY_TOKEN_FILE_H_

#include <string>

#include "absl/status/statusor.h"
#include "security/credentials.h"

namespace nightshift::security {

// The first line of `path`, trimmed; errors name the file.
absl::StatusOr<std::string> ReadTokenFile(const std::string& path);

std::string ConfigDir();

// NOT_FOUND naming every place looked at.
absl::StatusOr<std::string> ResolveClientToken(const std::string& token_flag,
                                               const std::string& token_file_flag);
// The flags' files, or the config directory's when no flag is given.
TlsFiles ResolveClientTls(TlsFiles flags);
// --coordinator when given, else the config directory's, else the default.
std::string ResolveCoordinator(const std::string& flag);

}  // namespace nightshift::security

#endif  // NIGHTSHIFT_SECURITY_TOKEN_FILE_H_
