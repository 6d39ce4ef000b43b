// MakeDirectories: `mkdir -p` with an absl::Status that names the path
// that could not be made. Existing directories are fine. FileExists: a
// regular file is there. WriteFileDurably: a whole file, atomically and
// durably.
#ifndef NIGHTSHIFT_BASE_FILESYSTEM_H_
#define NIGHTSHIFT_BASE_FILESYSTEM_H_

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace nightshift {

inline absl::Status MakeDirectories(const std::string& dir) {
  for (size_t i = 1; i <= dir.size(); ++i) {
    if (i != dir.size() && dir[i] != '/') continue;
    const std::string part = dir.substr(0, i);
    if (mkdir(part.c_str(), 0755) != 0 && errno != EEXIST) {
      return absl::FailedPreconditionError(
          absl::StrCat(part, ": cannot create directory: ", std::strerror(errno)));
    }
  }
  return absl::OkStatus();
}

inline bool FileExists(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// Writes `bytes` to `path` atomically and durably: to a temporary file
// beside it, fsynced, renamed into place, the folder fsynced — so a commit
// point that follows (a store row naming the file) never names a file a
// power loss could take back. A failure leaves `path` as it was.
absl::Status WriteFileDurably(const std::string& path, absl::string_view bytes);

}  // namespace nightshift

#endif  // NIGHTSHIFT_BASE_FILESYSTEM_H_
