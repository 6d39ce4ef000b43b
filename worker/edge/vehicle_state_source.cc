#include "worker/edge/vehicle_state_source.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/time_util.h"

namespace nightshift::edge {
namespace {

absl::Time ToTime(const google::protobuf::Timestamp& t) {
  return absl::FromUnixNanos(google::protobuf::util::TimeUtil::TimestampToNanoseconds(t));
}

std::string DirectoryOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

std::string BaseName(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

}  // namespace

absl::StatusOr<v1::VehicleState> ParseVehicleState(const std::string& json,
                                                   const std::string& where) {
  v1::VehicleState state;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;  // a misspelt field is an error, not a default
  const auto status = google::protobuf::util::JsonStringToMessage(json, &state, options);
  if (!status.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": ", status.message().ToString()));
  }
  if (!(state.state_of_charge() >= 0 && state.state_of_charge() <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": stateOfCharge must be in [0, 1], not ", state.state_of_charge()));
  }
  return state;
}

// ------------------------------------------------------------ JsonFileSource

absl::StatusOr<std::unique_ptr<JsonFileSource>> JsonFileSource::Start(const std::string& path) {
  std::unique_ptr<JsonFileSource> source(new JsonFileSource(path));
  source->inotify_fd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  source->stop_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (source->inotify_fd_ < 0 || source->stop_fd_ < 0) {
    return absl::InternalError(absl::StrCat("cannot watch ", path, ": ", std::strerror(errno)));
  }
  // The folder, not the file: a gateway that renames a new file over the
  // old one replaces the inode a watch on the file would follow. Only
  // finished writes count (closed or renamed into place), never a file
  // half written.
  const std::string dir = DirectoryOf(path);
  if (inotify_add_watch(source->inotify_fd_, dir.c_str(),
                        IN_CLOSE_WRITE | IN_MOVED_TO | IN_DELETE | IN_MOVED_FROM) < 0) {
    return absl::NotFoundError(absl::StrCat("cannot watch the folder ", dir,
                                            " of the vehicle state file ", path, ": ",
                                            std::strerror(errno)));
  }
  source->Reload(/*only_if_changed=*/false);
  source->watcher_ = std::thread([s = source.get()] { s->Watch(); });
  return source;
}

JsonFileSource::~JsonFileSource() {
  if (watcher_.joinable()) {
    const uint64_t one = 1;
    (void)!write(stop_fd_, &one, sizeof(one));
    watcher_.join();
  }
  if (inotify_fd_ >= 0) close(inotify_fd_);
  if (stop_fd_ >= 0) close(stop_fd_);
}

void JsonFileSource::Watch() {
  const std::string name = BaseName(path_);
  alignas(inotify_event) char events[4096];
  while (true) {
    pollfd fds[2] = {{inotify_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    const int ready = poll(fds, 2, /*timeout_ms=*/1000);
    if (ready < 0 && errno != EINTR) return;
    if (fds[1].revents != 0) return;
    bool ours = false;
    if (fds[0].revents != 0) {
      ssize_t n;
      while ((n = read(inotify_fd_, events, sizeof(events))) > 0) {
        for (char* p = events; p < events + n;) {
          const auto* e = reinterpret_cast<const inotify_event*>(p);
          if (e->len > 0 && name == e->name) ours = true;
          p += sizeof(inotify_event) + e->len;
        }
      }
    }
    // Once a second regardless (file systems without inotify), then only
    // if the file looks changed.
    if (ours || ready == 0) Reload(/*only_if_changed=*/!ours);
  }
}

void JsonFileSource::Reload(bool only_if_changed) {
  VehicleReading reading;
  struct stat st {};
  Stamp stamp;
  if (stat(path_.c_str(), &st) != 0) {
    reading.state = absl::NotFoundError(absl::StrCat(path_, ": missing"));
  } else {
    stamp = {st.st_mtim.tv_sec * 1'000'000'000LL + st.st_mtim.tv_nsec,
             static_cast<int64_t>(st.st_ino), static_cast<int64_t>(st.st_size)};
    std::ifstream in(path_);
    std::stringstream text;
    text << in.rdbuf();
    if (!in) {
      reading.state = absl::UnavailableError(absl::StrCat(path_, ": cannot read"));
    } else {
      reading.state = ParseVehicleState(text.str(), path_);
    }
    reading.observed = reading.state.ok() && reading.state->has_observed()
                           ? ToTime(reading.state->observed())
                           : absl::FromUnixNanos(stamp.mtime_ns);
  }
  absl::MutexLock lock(&mu_);
  // (Modification times are coarse: two writes a few ms apart can share
  // one, so an inotify event always counts.)
  if (only_if_changed && stamp == stamp_ && version_ > 0) return;
  stamp_ = stamp;
  reading_ = std::move(reading);
  ++version_;
}

VehicleReading JsonFileSource::Latest(uint64_t* version) {
  absl::MutexLock lock(&mu_);
  if (version != nullptr) *version = version_;
  return reading_;
}

bool JsonFileSource::AwaitChange(uint64_t seen, absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  auto changed = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return version_ != seen; };
  return mu_.AwaitWithDeadline(absl::Condition(&changed), deadline);
}

// --------------------------------------------------------------- TraceSource

absl::StatusOr<std::unique_ptr<TraceSource>> TraceSource::Load(const std::string& path,
                                                               Clock* clock) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot read the vehicle trace"));
  std::stringstream text;
  text << in.rdbuf();
  return FromText(text.str(), path, clock);
}

absl::StatusOr<std::unique_ptr<TraceSource>> TraceSource::FromText(const std::string& text,
                                                                   const std::string& where,
                                                                   Clock* clock) {
  std::vector<v1::VehicleTraceEntry> entries;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    v1::VehicleTraceEntry entry;
    const std::string at = absl::StrCat(where, " line ", line_number);
    const auto status = google::protobuf::util::JsonStringToMessage(std::string(line), &entry);
    if (!status.ok())
      return absl::InvalidArgumentError(absl::StrCat(at, ": ", status.message().ToString()));
    if (!entries.empty() && entry.at_seconds() < entries.back().at_seconds()) {
      return absl::InvalidArgumentError(absl::StrCat(at, ": atSeconds ", entry.at_seconds(),
                                                     " is before the line above's ",
                                                     entries.back().at_seconds()));
    }
    entries.push_back(std::move(entry));
  }
  if (entries.empty()) return absl::InvalidArgumentError(absl::StrCat(where, ": an empty trace"));
  return std::unique_ptr<TraceSource>(new TraceSource(std::move(entries), clock, clock->Now()));
}

size_t TraceSource::IndexAt(absl::Time now) const {
  const double elapsed = absl::ToDoubleSeconds(now - start_);
  size_t i = 0;
  while (i < entries_.size() && entries_[i].at_seconds() <= elapsed) ++i;
  return i;  // entries before `i` have begun; 0: none yet
}

VehicleReading TraceSource::Latest(uint64_t* version) {
  const absl::Time now = clock_->Now();
  const size_t i = IndexAt(now);
  if (version != nullptr) *version = i;
  VehicleReading r;
  if (i == 0) {
    r.state = absl::UnavailableError(
        absl::StrCat("the vehicle trace starts at ", entries_[0].at_seconds(), " s"));
    return r;
  }
  // A trace's state holds until its next line: it is never stale.
  r.state = entries_[i - 1].state();
  r.observed = now;
  return r;
}

bool TraceSource::AwaitChange(uint64_t seen, absl::Time deadline) {
  while (true) {
    if (IndexAt(clock_->Now()) != seen) return true;
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(1));
  }
}

}  // namespace nightshift::edge
