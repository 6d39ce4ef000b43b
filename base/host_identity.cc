#include "base/host_identity.h"

#include <sys/stat.h>

#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace nightshift {

std::string HostIdentity() {
  std::ifstream in("/proc/sys/kernel/random/boot_id");
  std::string boot_id;
  if (!std::getline(in, boot_id) || boot_id.empty()) return "";
  struct stat shm;
  if (stat("/dev/shm", &shm) != 0) return "";
  return absl::StrCat(absl::StripAsciiWhitespace(boot_id), "/shm:", shm.st_dev, ":", shm.st_ino);
}

}  // namespace nightshift
