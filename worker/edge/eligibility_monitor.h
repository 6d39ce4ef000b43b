// EligibilityMonitor: an edge agent's running answer to "may this vehicle
// compute now?". It owns the vehicle state source and the idle policy,
// re-evaluates on every new state (within milliseconds of the source
// seeing it) and at least every `tick` of real time (staleness, the
// debounce and departure times move on their own), and calls `on_change`
// whenever the answer flips after the first, from its own thread — the
// hook that preemption stops compute through.
//
// Thread-safe: Current() from any thread (the heartbeat); the usage
// calls (compute time, metered bytes) from the thread that trains.
#ifndef NIGHTSHIFT_WORKER_EDGE_ELIGIBILITY_MONITOR_H_
#define NIGHTSHIFT_WORKER_EDGE_ELIGIBILITY_MONITOR_H_

#include <functional>
#include <memory>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "base/clock.h"
#include "nightshift/v1/vehicle.pb.h"
#include "worker/edge/idle_policy.h"
#include "worker/edge/vehicle_state_source.h"

namespace nightshift::edge {

class EligibilityMonitor {
 public:
  // `clock` (the policy's time: real, or a simulation's) must outlive it.
  EligibilityMonitor(std::unique_ptr<VehicleStateSource> source, const v1::IdlePolicy& policy,
                     Clock* clock, std::function<void(const v1::Eligibility&)> on_change = nullptr,
                     absl::Duration tick = absl::Seconds(1));
  ~EligibilityMonitor();  // stops its thread

  v1::Eligibility Current() const;

  void AddComputeTime(absl::Duration d);
  void AddMeteredBytes(int64_t bytes);

 private:
  void Run();
  void Evaluate(bool notify);  // once; calls on_change_ on a flip if `notify`

  const std::unique_ptr<VehicleStateSource> source_;
  Clock* const clock_;
  const std::function<void(const v1::Eligibility&)> on_change_;
  const absl::Duration tick_;
  mutable absl::Mutex mu_;
  IdlePolicyEvaluator evaluator_ ABSL_GUARDED_BY(mu_);
  v1::Eligibility current_ ABSL_GUARDED_BY(mu_);
  uint64_t seen_ = 0;  // the source's version last evaluated (monitor thread only)
  absl::Notification stop_;
  std::thread thread_;
};

}  // namespace nightshift::edge

#endif  // NIGHTSHIFT_WORKER_EDGE_ELIGIBILITY_MONITOR_H_
