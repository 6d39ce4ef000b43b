#include "security/token_file.h"

#include <cstdlib>
#include <fstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "base/filesystem.h"

namespace nightshift::security {
namespace {

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? "" : v;
}

}  // namespace

absl::StatusOr<std::string> ReadTokenFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot read the token file"));
  std::string line;
  std::getline(in, line);
  std::string token(absl::StripAsciiWhitespace(line));
  if (token.empty()) return absl::InvalidArgumentError(absl::StrCat(path, ": holds no token"));
  return token;
}

std::string ConfigDir() {
  if (std::string d = Env("NIGHTSHIFT_CONFIG_DIR"); !d.empty()) return d;
  if (std::string d = Env("XDG_CONFIG_HOME"); !d.empty()) return d + "/nightshift";
  return Env("HOME") + "/.config/nightshift";
}

absl::StatusOr<std::string> ResolveClientToken(const std::string& token_flag,
                                               const std::string& token_file_flag) {
  if (!token_flag.empty()) return token_flag;
  if (!token_file_flag.empty()) return ReadTokenFile(token_file_flag);
  if (std::string env = Env("NIGHTSHIFT_TOKEN"); !env.empty()) return env;
  const std::string file = ConfigDir() + "/token";
  if (FileExists(file)) return ReadTokenFile(file);
  return absl::NotFoundError(absl::StrCat(
      "no token: pass --token or --token_file, set $NIGHTSHIFT_TOKEN, or put one in ", file,
      " (deploy/local_cluster.sh up does; an admin makes one with `nightshift token create`)"));
}

TlsFiles ResolveClientTls(TlsFiles flags) {
  if (!flags.empty()) return flags;
  const std::string dir = ConfigDir();
  TlsFiles files{dir + "/ca.pem", dir + "/client.pem", dir + "/client.key"};
  if (FileExists(files.ca) && FileExists(files.cert) && FileExists(files.key)) return files;
  return flags;
}

std::string ResolveCoordinator(const std::string& flag) {
  if (!flag.empty()) return flag;
  std::ifstream in(ConfigDir() + "/coordinator");
  std::string address;
  if (in >> address && !address.empty()) return address;
  return "127.0.0.1:7070";
}

}  // namespace nightshift::security
