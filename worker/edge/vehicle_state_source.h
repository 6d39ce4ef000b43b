// Where an edge agent learns its vehicle's state. One interface, so that a
// CAN bus or a vendor gateway can be added beside the two sources here:
//
//   JsonFileSource  a JSON file (proto3 JSON of v1.VehicleState) that the
//                   vehicle's gateway rewrites, best by writing a temporary
//                   file and renaming it over the old one. Watched with
//                   inotify on its folder: a change is read within
//                   milliseconds (and the file is checked once a second
//                   besides, for file systems without inotify).
//   TraceSource     a trace (JSON lines of v1.VehicleTraceEntry) replayed
//                   on a Clock: simulations and tests, as fast as the
//                   clock runs.
//
// Sources never fail: a missing, unreadable or malformed state is a
// reading whose error names the file (and the line or field), which the
// idle policy turns into "ineligible" with that reason.
#ifndef NIGHTSHIFT_WORKER_EDGE_VEHICLE_STATE_SOURCE_H_
#define NIGHTSHIFT_WORKER_EDGE_VEHICLE_STATE_SOURCE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "base/clock.h"
#include "nightshift/v1/vehicle.pb.h"
#include "worker/edge/idle_policy.h"

namespace nightshift::edge {

class VehicleStateSource {
 public:
  virtual ~VehicleStateSource() = default;
  // The latest reading; never blocks on I/O. `version`, if given, is set
  // to a number that changes with every new reading.
  virtual VehicleReading Latest(uint64_t* version = nullptr) = 0;
  // Waits until the reading's version differs from `seen` or `deadline`
  // (real time) passes; true if it changed.
  virtual bool AwaitChange(uint64_t seen, absl::Time deadline) = 0;
};

// Parses proto3 JSON of a VehicleState; errors name `where`.
absl::StatusOr<v1::VehicleState> ParseVehicleState(const std::string& json,
                                                   const std::string& where);

class JsonFileSource final : public VehicleStateSource {
 public:
  // Reads `path` at once and then on every change, until destroyed.
  static absl::StatusOr<std::unique_ptr<JsonFileSource>> Start(const std::string& path);
  ~JsonFileSource() override;

  VehicleReading Latest(uint64_t* version = nullptr) override;
  bool AwaitChange(uint64_t seen, absl::Time deadline) override;

 private:
  explicit JsonFileSource(std::string path) : path_(std::move(path)) {}
  // What the periodic check compares: the file's time, inode and size.
  struct Stamp {
    int64_t mtime_ns = -1, inode = -1, size = -1;  // -1: no file
    bool operator==(const Stamp& o) const {
      return mtime_ns == o.mtime_ns && inode == o.inode && size == o.size;
    }
  };
  void Watch();                       // the watcher thread
  void Reload(bool only_if_changed);  // reads the file into reading_
  const std::string path_;
  int inotify_fd_ = -1;
  int stop_fd_ = -1;
  std::thread watcher_;
  absl::Mutex mu_;
  VehicleReading reading_ ABSL_GUARDED_BY(mu_);
  uint64_t version_ ABSL_GUARDED_BY(mu_) = 0;
  Stamp stamp_ ABSL_GUARDED_BY(mu_);  // at the last read
};

class TraceSource final : public VehicleStateSource {
 public:
  // The trace starts at `clock`'s time of the call. Errors name the file
  // and line; a trace must have at least one entry, in time order.
  static absl::StatusOr<std::unique_ptr<TraceSource>> Load(const std::string& path, Clock* clock);
  static absl::StatusOr<std::unique_ptr<TraceSource>> FromText(const std::string& text,
                                                               const std::string& where,
                                                               Clock* clock);

  VehicleReading Latest(uint64_t* version = nullptr) override;
  // Checks the clock every millisecond of real time.
  bool AwaitChange(uint64_t seen, absl::Time deadline) override;

 private:
  TraceSource(std::vector<v1::VehicleTraceEntry> entries, Clock* clock, absl::Time start)
      : entries_(std::move(entries)), clock_(clock), start_(start) {}
  size_t IndexAt(absl::Time now) const;
  const std::vector<v1::VehicleTraceEntry> entries_;
  Clock* const clock_;
  const absl::Time start_;
};

}  // namespace nightshift::edge

#endif  // NIGHTSHIFT_WORKER_EDGE_VEHICLE_STATE_SOURCE_H_
