// TSan builds only (--config=tsan, .bazelrc): tells ThreadSanitizer about
// every absl::Mutex, absl::CondVar and absl::Notification operation.
//
// Why: Debian's Abseil is not built with TSan, so its mutexes synchronize
// through atomics and futexes TSan cannot see, and TSan would report every
// hand-off under an absl::Mutex as a race (gRPC's gpr_mu is an absl::Mutex
// too). This file defines the public entry points of those classes, which
// — linked into the executable — take the place of the shared library's
// (symbol interposition: the executable's definitions come first), reports
// each to TSan with its mutex annotations (sanitizer/tsan_interface.h), and
// calls the library's own code, found with dlsym(RTLD_NEXT).
//
// The contract with TSan, per operation on mutex M:
//   Lock / ReaderLock / LockWhen*   pre_lock(M) … real … post_lock(M)
//   TryLock / ReaderTryLock         the same, with try-lock flags and the
//                                   outcome
//   Unlock / ReaderUnlock           pre_unlock(M) … real … post_unlock(M)
//   Await* / CondVar::Wait*         M is released and taken again inside:
//                                   unlock before, lock after
//   Notification::Notify            release on the notification (its first
//                                   member is the atomic flag the inline
//                                   HasBeenNotified reads, which TSan sees)
//   Notification::WaitFor*          acquire on it once notified
// The library calls its own entry points too (WaitWithTimeout calls
// WaitWithDeadline, Notify locks its mutex), and those calls come here as
// well: only the outermost call on a thread is reported.
// A condition may be evaluated by another thread inside the library (the
// one unlocking M) or by the waiter before its post_lock; every condition
// is therefore wrapped in one that acquires M before it and releases M
// after it (it runs with M really held), so that it is ordered with every
// other holder of M.
//
// Linked into every binary and test of a TSan build through Bazel's
// --custom_malloc hook (the one way to add a library to all of them); it
// holds no allocator. Built by nothing else (tagged manual).
#include <dlfcn.h>
#include <sanitizer/tsan_interface.h>

#include <cstdio>
#include <cstdlib>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

namespace {

// The shared library's definition of `symbol` (mangled), cast to `Fn`.
template <typename Fn>
Fn Real(const char* symbol) {
  void* f = dlsym(RTLD_NEXT, symbol);
  if (f == nullptr) {
    std::fprintf(stderr, "tsan_absl_sync: %s not found after this binary: %s\n", symbol, dlerror());
    std::abort();
  }
  return reinterpret_cast<Fn>(f);
}

// Marks the calls on this thread that are inside another wrapped call.
thread_local int depth = 0;
class Outermost {
 public:
  Outermost() : outermost_(depth++ == 0) {}
  ~Outermost() { --depth; }
  bool outermost() const { return outermost_; }

 private:
  const bool outermost_;
};

// `real`: the library's definition; returns at once through it, without
// a report, from a call nested in another wrapped call.
#define NS_REAL(type, symbol, ...)             \
  static const auto real = Real<type>(symbol); \
  Outermost outer;                             \
  if (!outer.outermost()) return real(__VA_ARGS__)

struct Guarded {
  const absl::Condition* condition;
  absl::Mutex* mutex;
};

bool EvalHoldingMutex(Guarded* g) {
  __tsan_acquire(g->mutex);
  const bool met = g->condition->Eval();
  __tsan_release(g->mutex);  // the next holder of the mutex sees the reads
  return met;
}

void Lock(absl::Mutex* m, unsigned flags) { __tsan_mutex_pre_lock(m, flags); }
void Locked(absl::Mutex* m, unsigned flags) { __tsan_mutex_post_lock(m, flags, 0); }
void Unlocking(absl::Mutex* m, unsigned flags) { __tsan_mutex_pre_unlock(m, flags); }
void Unlocked(absl::Mutex* m, unsigned flags) { __tsan_mutex_post_unlock(m, flags); }

}  // namespace

namespace absl {
ABSL_NAMESPACE_BEGIN

void Mutex::Lock() {
  NS_REAL(void (*)(Mutex*), "_ZN4absl7debian35Mutex4LockEv", this);
  ::Lock(this, 0);
  real(this);
  ::Locked(this, 0);
}

void Mutex::ReaderLock() {
  NS_REAL(void (*)(Mutex*), "_ZN4absl7debian35Mutex10ReaderLockEv", this);
  ::Lock(this, __tsan_mutex_read_lock);
  real(this);
  ::Locked(this, __tsan_mutex_read_lock);
}

bool Mutex::TryLock() {
  NS_REAL(bool (*)(Mutex*), "_ZN4absl7debian35Mutex7TryLockEv", this);
  ::Lock(this, __tsan_mutex_try_lock);
  const bool taken = real(this);
  ::Locked(this,
           taken ? __tsan_mutex_try_lock : __tsan_mutex_try_lock | __tsan_mutex_try_lock_failed);
  return taken;
}

bool Mutex::ReaderTryLock() {
  NS_REAL(bool (*)(Mutex*), "_ZN4absl7debian35Mutex13ReaderTryLockEv", this);
  const unsigned flags = __tsan_mutex_read_lock | __tsan_mutex_try_lock;
  ::Lock(this, flags);
  const bool taken = real(this);
  ::Locked(this, taken ? flags : flags | __tsan_mutex_try_lock_failed);
  return taken;
}

void Mutex::Unlock() {
  NS_REAL(void (*)(Mutex*), "_ZN4absl7debian35Mutex6UnlockEv", this);
  ::Unlocking(this, 0);
  real(this);
  ::Unlocked(this, 0);
}

void Mutex::ReaderUnlock() {
  NS_REAL(void (*)(Mutex*), "_ZN4absl7debian35Mutex12ReaderUnlockEv", this);
  ::Unlocking(this, __tsan_mutex_read_lock);
  real(this);
  ::Unlocked(this, __tsan_mutex_read_lock);
}

void Mutex::LockWhen(const Condition& cond) {
  NS_REAL(void (*)(Mutex*, const Condition&), "_ZN4absl7debian35Mutex8LockWhenERKNS0_9ConditionE",
          this, cond);
  Guarded g{&cond, this};
  ::Lock(this, 0);
  real(this, Condition(&EvalHoldingMutex, &g));
  ::Locked(this, 0);
}

void Mutex::ReaderLockWhen(const Condition& cond) {
  NS_REAL(void (*)(Mutex*, const Condition&),
          "_ZN4absl7debian35Mutex14ReaderLockWhenERKNS0_9ConditionE", this, cond);
  Guarded g{&cond, this};
  ::Lock(this, __tsan_mutex_read_lock);
  real(this, Condition(&EvalHoldingMutex, &g));
  ::Locked(this, __tsan_mutex_read_lock);
}

bool Mutex::LockWhenWithTimeout(const Condition& cond, absl::Duration timeout) {
  NS_REAL(bool (*)(Mutex*, const Condition&, absl::Duration),
          "_ZN4absl7debian35Mutex19LockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE", this, cond,
          timeout);
  Guarded g{&cond, this};
  ::Lock(this, 0);
  const bool met = real(this, Condition(&EvalHoldingMutex, &g), timeout);
  ::Locked(this, 0);  // held whether or not the condition came true
  return met;
}

bool Mutex::LockWhenWithDeadline(const Condition& cond, absl::Time deadline) {
  NS_REAL(bool (*)(Mutex*, const Condition&, absl::Time),
          "_ZN4absl7debian35Mutex20LockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE", this, cond,
          deadline);
  Guarded g{&cond, this};
  ::Lock(this, 0);
  const bool met = real(this, Condition(&EvalHoldingMutex, &g), deadline);
  ::Locked(this, 0);
  return met;
}

void Mutex::Await(const Condition& cond) {
  NS_REAL(void (*)(Mutex*, const Condition&), "_ZN4absl7debian35Mutex5AwaitERKNS0_9ConditionE",
          this, cond);
  Guarded g{&cond, this};
  ::Unlocking(this, 0);
  ::Unlocked(this, 0);
  real(this, Condition(&EvalHoldingMutex, &g));
  ::Lock(this, 0);
  ::Locked(this, 0);
}

bool Mutex::AwaitWithTimeout(const Condition& cond, absl::Duration timeout) {
  NS_REAL(bool (*)(Mutex*, const Condition&, absl::Duration),
          "_ZN4absl7debian35Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE", this, cond,
          timeout);
  Guarded g{&cond, this};
  ::Unlocking(this, 0);
  ::Unlocked(this, 0);
  const bool met = real(this, Condition(&EvalHoldingMutex, &g), timeout);
  ::Lock(this, 0);
  ::Locked(this, 0);
  return met;
}

bool Mutex::AwaitWithDeadline(const Condition& cond, absl::Time deadline) {
  NS_REAL(bool (*)(Mutex*, const Condition&, absl::Time),
          "_ZN4absl7debian35Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE", this, cond,
          deadline);
  Guarded g{&cond, this};
  ::Unlocking(this, 0);
  ::Unlocked(this, 0);
  const bool met = real(this, Condition(&EvalHoldingMutex, &g), deadline);
  ::Lock(this, 0);
  ::Locked(this, 0);
  return met;
}

// A CondVar wait releases `mu` and takes it again; the wake-up itself is
// ordered by `mu` (Signal is called with it held or before the waiter can
// re-take it), so Signal needs no annotation.
void CondVar::Wait(Mutex* mu) {
  NS_REAL(void (*)(CondVar*, Mutex*), "_ZN4absl7debian37CondVar4WaitEPNS0_5MutexE", this, mu);
  ::Unlocking(mu, 0);
  ::Unlocked(mu, 0);
  real(this, mu);
  ::Lock(mu, 0);
  ::Locked(mu, 0);
}

bool CondVar::WaitWithTimeout(Mutex* mu, absl::Duration timeout) {
  NS_REAL(bool (*)(CondVar*, Mutex*, absl::Duration),
          "_ZN4absl7debian37CondVar15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE", this, mu,
          timeout);
  ::Unlocking(mu, 0);
  ::Unlocked(mu, 0);
  const bool timed_out = real(this, mu, timeout);
  ::Lock(mu, 0);
  ::Locked(mu, 0);
  return timed_out;
}

bool CondVar::WaitWithDeadline(Mutex* mu, absl::Time deadline) {
  NS_REAL(bool (*)(CondVar*, Mutex*, absl::Time),
          "_ZN4absl7debian37CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE", this, mu, deadline);
  ::Unlocking(mu, 0);
  ::Unlocked(mu, 0);
  const bool timed_out = real(this, mu, deadline);
  ::Lock(mu, 0);
  ::Locked(mu, 0);
  return timed_out;
}

void Notification::Notify() {
  NS_REAL(void (*)(Notification*), "_ZN4absl7debian312Notification6NotifyEv", this);
  __tsan_release(this);
  real(this);
}

void Notification::WaitForNotification() const {
  NS_REAL(void (*)(const Notification*), "_ZNK4absl7debian312Notification19WaitForNotificationEv",
          this);
  real(this);
  __tsan_acquire(const_cast<Notification*>(this));
}

bool Notification::WaitForNotificationWithTimeout(absl::Duration timeout) const {
  NS_REAL(bool (*)(const Notification*, absl::Duration),
          "_ZNK4absl7debian312Notification30WaitForNotificationWithTimeoutENS0_8DurationE", this,
          timeout);
  const bool notified = real(this, timeout);
  if (notified) __tsan_acquire(const_cast<Notification*>(this));
  return notified;
}

bool Notification::WaitForNotificationWithDeadline(absl::Time deadline) const {
  NS_REAL(bool (*)(const Notification*, absl::Time),
          "_ZNK4absl7debian312Notification31WaitForNotificationWithDeadlineENS0_4TimeE", this,
          deadline);
  const bool notified = real(this, deadline);
  if (notified) __tsan_acquire(const_cast<Notification*>(this));
  return notified;
}

ABSL_NAMESPACE_END
}  // namespace absl
