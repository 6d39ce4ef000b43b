// base/tsan_absl_sync.cc under --config=tsan: hand-offs through
// absl::Mutex (with a Condition), CondVar and Notification are not reported
// as races, and a real race still is (TSan is on and sees our code). In
// other builds TSan is absent: the hand-offs still run, the race test is
// skipped with its reason.
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"

extern "C" void __tsan_acquire(void* addr) __attribute__((weak));

namespace nightshift {
namespace {

bool TsanIsOn() { return &__tsan_acquire != nullptr; }

// Plain memory, written on one thread and read on another after a
// hand-off: TSan reports these unless it sees the hand-off.
struct Box {
  int value = 0;
};

TEST(TsanAbslSyncTest, MutexConditionHandOffIsOrdered) {
  absl::Mutex mu;
  bool ready = false;
  Box box;
  std::thread writer([&] {
    box.value = 42;
    absl::MutexLock lock(&mu);
    ready = true;
  });
  mu.LockWhen(absl::Condition(&ready));
  mu.Unlock();
  EXPECT_EQ(box.value, 42);
  writer.join();
}

TEST(TsanAbslSyncTest, CondVarHandOffIsOrdered) {
  absl::Mutex mu;
  absl::CondVar cv;
  bool ready = false;
  Box box;
  std::thread writer([&] {
    box.value = 7;
    absl::MutexLock lock(&mu);
    ready = true;
    cv.Signal();
  });
  {
    absl::MutexLock lock(&mu);
    while (!ready) cv.Wait(&mu);
  }
  EXPECT_EQ(box.value, 7);
  writer.join();
}

TEST(TsanAbslSyncTest, NotificationHandOffIsOrdered) {
  absl::Notification done;
  Box box;
  std::thread writer([&] {
    box.value = 9;
    done.Notify();
  });
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(60)));
  EXPECT_EQ(box.value, 9);
  writer.join();
}

void Race() {
  Box box;
  std::thread writer([&] { box.value = 1; });
  box.value = 2;  // no hand-off at all
  writer.join();
}

TEST(TsanAbslSyncTest, ARealRaceIsStillReported) {
  if (!TsanIsOn()) GTEST_SKIP() << "not a --config=tsan build: no race detector to check";
  // The child (this binary, run again) reports the race on stderr and
  // stops there with halt_on_error=1 (deploy/test.sh); without it, it
  // goes on to the exit below, so the death is certain either way.
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        Race();
        std::_Exit(1);
      },
      "ThreadSanitizer: data race");
}

}  // namespace
}  // namespace nightshift
