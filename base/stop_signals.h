// StopOnSignals: turns SIGINT and SIGTERM into a call of `on_stop` on an
// ordinary thread, so that a daemon's shutdown runs no code in a signal
// handler (where only async-signal-safe calls are allowed: no mutex, no
// allocation, no logging).
//
// Construct it in main() before starting any thread: it blocks both
// signals in the calling thread, which every thread started later
// inherits, and a watcher thread takes them from a signalfd. `on_stop`
// runs on the watcher thread, once per signal; destruction stops the
// watcher (and leaves the signals blocked).
#ifndef NIGHTSHIFT_BASE_STOP_SIGNALS_H_
#define NIGHTSHIFT_BASE_STOP_SIGNALS_H_

#include <functional>
#include <thread>

#include "absl/status/statusor.h"

namespace nightshift {

class StopOnSignals {
 public:
  static absl::StatusOr<std::unique_ptr<StopOnSignals>> Install(std::function<void()> on_stop);
  ~StopOnSignals();
  StopOnSignals(const StopOnSignals&) = delete;
  StopOnSignals& operator=(const StopOnSignals&) = delete;

 private:
  StopOnSignals(int signal_fd, int wake_fd, std::function<void()> on_stop);
  void Watch();

  const int signal_fd_;
  const int wake_fd_;  // an eventfd: written once to end Watch
  const std::function<void()> on_stop_;
  std::thread watcher_;
};

}  // namespace nightshift

#endif  // NIGHTSHIFT_BASE_STOP_SIGNALS_H_
