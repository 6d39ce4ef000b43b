#include "worker/edge/eligibility_monitor.h"

#include <algorithm>

#include "glog/logging.h"

namespace nightshift::edge {

EligibilityMonitor::EligibilityMonitor(std::unique_ptr<VehicleStateSource> source,
                                       const v1::IdlePolicy& policy, Clock* clock,
                                       std::function<void(const v1::Eligibility&)> on_change,
                                       absl::Duration tick)
    : source_(std::move(source)),
      clock_(clock),
      on_change_(std::move(on_change)),
      tick_(tick),
      evaluator_(policy) {
  Evaluate(/*notify=*/false);
  thread_ = std::thread([this] { Run(); });
}

EligibilityMonitor::~EligibilityMonitor() {
  stop_.Notify();
  thread_.join();
}

void EligibilityMonitor::Run() {
  while (!stop_.HasBeenNotified()) {
    // A new state, or the tick: whichever comes first. (Short waits, so
    // that stopping is quick too.)
    const absl::Time until = absl::Now() + tick_;
    while (!stop_.HasBeenNotified() && absl::Now() < until) {
      if (source_->AwaitChange(seen_, std::min(until, absl::Now() + absl::Milliseconds(100))))
        break;
    }
    if (!stop_.HasBeenNotified()) Evaluate(/*notify=*/true);
  }
}

void EligibilityMonitor::Evaluate(bool notify) {
  const VehicleReading reading = source_->Latest(&seen_);
  v1::Eligibility now;
  bool flipped = false;
  {
    absl::MutexLock lock(&mu_);
    now = evaluator_.Evaluate(reading, clock_->Now());
    flipped = now.eligible() != current_.eligible() || current_.reason().empty();
    if (flipped) {
      LOG(INFO) << "vehicle: " << (now.eligible() ? "eligible: " : "ineligible: ") << now.reason();
    }
    current_ = now;
  }
  if (notify && flipped && on_change_) on_change_(now);
}

v1::Eligibility EligibilityMonitor::Current() const {
  absl::MutexLock lock(&mu_);
  return current_;
}

void EligibilityMonitor::AddComputeTime(absl::Duration d) {
  absl::MutexLock lock(&mu_);
  evaluator_.AddComputeTime(d);
}

void EligibilityMonitor::AddMeteredBytes(int64_t bytes) {
  absl::MutexLock lock(&mu_);
  evaluator_.AddMeteredBytes(bytes, clock_->Now());
}

}  // namespace nightshift::edge
