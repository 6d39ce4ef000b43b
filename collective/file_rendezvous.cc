#include "collective/file_rendezvous.h"

#include <cstdio>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace nightshift::collective {

absl::StatusOr<RendezvousPeers> FileRendezvous(const std::string& dir, int rank, int size,
                                               const std::string& address,
                                               const std::string& host_id, absl::Time deadline) {
  const std::string mine = absl::StrCat(dir, "/rank-", rank);
  {
    std::ofstream out(mine + ".tmp");
    out << address << "\n" << host_id << "\n";
    if (!out) return absl::FailedPreconditionError(absl::StrCat(mine, ".tmp: cannot write"));
  }
  if (std::rename((mine + ".tmp").c_str(), mine.c_str()) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(mine, ": cannot publish"));
  }
  RendezvousPeers peers{std::vector<std::string>(size), std::vector<std::string>(size)};
  for (int r = 0; r < size; ++r) {
    while (true) {
      std::ifstream in(absl::StrCat(dir, "/rank-", r));
      if (std::getline(in, peers.addresses[r]) && !peers.addresses[r].empty()) {
        std::getline(in, peers.host_ids[r]);  // may be empty: shares memory with no one
        break;
      }
      if (absl::Now() > deadline) {
        return absl::DeadlineExceededError(
            absl::StrCat("rank ", r, " never published its address in ", dir));
      }
      absl::SleepFor(absl::Milliseconds(2));  // nothing to wait on but the folder
    }
  }
  return peers;
}

}  // namespace nightshift::collective
