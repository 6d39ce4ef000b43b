#include "base/stop_signals.h"

#include <signal.h>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"

namespace nightshift {
namespace {

TEST(StopOnSignalsTest, SigtermRunsTheCallbackOnAThreadNotInAHandler) {
  absl::Notification stopped;
  auto signals = StopOnSignals::Install([&] {
    if (!stopped.HasBeenNotified()) stopped.Notify();  // takes a mutex: no handler could
  });
  ASSERT_TRUE(signals.ok()) << signals.status();
  ASSERT_EQ(kill(getpid(), SIGTERM), 0);
  // The process is still alive (the signal is blocked and taken by the
  // watcher), and the callback ran.
  EXPECT_TRUE(stopped.WaitForNotificationWithTimeout(absl::Seconds(30)));
}

TEST(StopOnSignalsTest, DestructionWithoutASignalEnds) {
  bool called = false;
  {
    auto signals = StopOnSignals::Install([&] { called = true; });
    ASSERT_TRUE(signals.ok()) << signals.status();
  }
  EXPECT_FALSE(called);
}

}  // namespace
}  // namespace nightshift
