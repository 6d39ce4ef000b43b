#include "fleet/fleet_simulator.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <queue>
#include <random>
#include <thread>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "base/grpc_status.h"
#include "fleet/trace_csv.h"
#include "fleet/vehicle_compute.h"
#include "fleet/vehicle_round_service.h"
#include "glog/logging.h"
#include "grpcpp/grpcpp.h"
#include "kernels/shape.h"
#include "kernels/threads.h"
#include "nightshift/v1/coordinator.grpc.pb.h"
#include "security/channel.h"
#include "spec/diloco.h"
#include "spec/tensors.h"
#include "worker/edge/idle_policy.h"
#include "worker/edge/replica_trainer.h"
#include "worker/edge/round_client.h"

namespace nightshift::fleet {
namespace {

// Midnight of the traces' day 0 (a Monday, UTC): the vehicles' clock.
const absl::Time kDay0 = absl::FromUnixSeconds(1780272000);  // 2026-06-01
constexpr absl::Duration kCallDeadline = absl::Seconds(10);

// VmRSS and VmHWM of `pid`, in bytes (0 if unknown).
std::pair<int64_t, int64_t> ResidentMemory(int pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  int64_t rss = 0, peak = 0;
  while (std::getline(in, line)) {
    auto field = [&](const char* name, int64_t* out) {
      if (!absl::StartsWith(line, name)) return;
      std::string digits;
      for (char c : line) {
        if (c >= '0' && c <= '9') digits += c;
      }
      int64_t kb = 0;
      if (absl::SimpleAtoi(digits, &kb)) *out = kb * 1024;
    };
    field("VmRSS:", &rss);
    field("VmHWM:", &peak);
  }
  return {rss, peak};
}

// The q-quantile of `sorted` (0 if empty).
double Percentile(const std::vector<float>& sorted, double q) {
  if (sorted.empty()) return 0;
  return sorted[std::min(sorted.size() - 1, static_cast<size_t>(q * sorted.size()))];
}

// User and system CPU seconds `pid` (0: this process) has used so far
// (/proc/PID/stat; 0 if unknown).
double CpuSeconds(int pid) {
  std::ifstream in(pid > 0 ? absl::StrCat("/proc/", pid, "/stat") : "/proc/self/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t name_end = stat.rfind(')');  // the command name may hold spaces
  if (name_end == std::string::npos) return 0;
  // After the name: state (field 3) ... utime (14), stime (15).
  std::vector<absl::string_view> fields =
      absl::StrSplit(absl::string_view(stat).substr(name_end + 2), ' ');
  int64_t utime = 0, stime = 0;
  if (fields.size() < 13 || !absl::SimpleAtoi(fields[11], &utime) ||
      !absl::SimpleAtoi(fields[12], &stime)) {
    return 0;
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

class Simulator;

struct Vehicle {
  std::string name;
  int channel = 0;
  bool real_trainer = false;
  // The trace, from an hour before the start (predicted departures set).
  std::vector<v1::VehicleTraceEntry> steps;
  // Dispatcher thread only.
  size_t step = 0;
  std::unique_ptr<edge::IdlePolicyEvaluator> policy;
  v1::Eligibility answer;
  double evaluated_at = 0;           // virtual seconds of day 0
  std::atomic<bool> replica{false};  // holds a DiLoCo job (set by completions)
  // Set by calls' completions; read by the dispatcher once in_flight is
  // false (the atomic orders them).
  std::string credential, worker_id;
  std::string authorization;  // "Bearer " and the credential
  std::atomic<int64_t> directives_applied{0};
  std::atomic<bool> in_flight{false};
  std::atomic<bool> beat_again{false};  // a flip came while a heartbeat was out
  std::atomic<bool> lost{false};
  std::atomic<bool> eligible{false};      // the last answer, for other threads
  std::atomic<int64_t> flipped_at_ns{0};  // real time of the last flip
  std::atomic<bool> stop{false};          // the replica's preemption flag
  // Virtual [start, end) of its compute (the driving check); the
  // simulator's mutex.
  std::vector<std::pair<double, double>> compute_spans;
};

// A replica's rounds: its job, its round client and compute. Guarded by
// the simulator's mutex; while `running`, the round's thread alone uses
// service, compute and client, and a directive that comes meanwhile waits
// in `next` (an assignment) or `cancelled` for the round's end.
struct Replica {
  std::string job_id;  // "" once cancelled or ended
  v1::JobSpec spec;
  int shard = 0;
  bool running = false;
  std::optional<v1::Assignment> next;
  std::unique_ptr<VehicleRoundService> service;
  std::unique_ptr<RoundCompute> compute;
  std::unique_ptr<RoundClient> client;
};

class Simulator final : public VirtualClock {
 public:
  explicit Simulator(const FleetSimOptions& o) : o_(o), rng_(o.traces.seed) {}
  absl::StatusOr<FleetSimReport> Run();

  double VirtualNow() const {
    return start_v_ + o_.speedup * absl::ToDoubleSeconds(absl::Now() - start_real_);
  }
  absl::Time RealAt(double virtual_seconds) const {
    return start_real_ + absl::Seconds((virtual_seconds - start_v_) / o_.speedup);
  }
  // VirtualClock, for the vehicles' compute: real waits in slices of at
  // most 10 ms, the stop flag read between them.
  double Now() const override { return VirtualNow(); }
  bool WaitUntil(double t, const std::atomic<bool>* stop) override {
    const absl::Time end = RealAt(t);
    while (true) {
      const absl::Time now = absl::Now();
      if (now >= end) return false;  // a stop raised later loses nothing done by then
      if (stop != nullptr && stop->load()) return true;
      absl::SleepFor(std::min(end - now, absl::Milliseconds(10)));
    }
  }
  void RecordSpan(Vehicle* v, double from, double to) {
    absl::MutexLock lock(&mu_);
    v->compute_spans.emplace_back(from, to);
  }

 private:
  // kBeat: the periodic heartbeat (it schedules the next); kFlipBeat: one
  // more, for a flip that came while a heartbeat was out.
  enum class Kind { kBeat, kFlipBeat, kEvaluate, kRound };
  struct Event {
    absl::Time at;
    Kind kind;
    size_t vehicle;
    bool operator>(const Event& e) const { return at > e.at; }
  };
  struct RegisterCall {
    grpc::ClientContext ctx;
    v1::RegisterRequest request;
    v1::RegisterResponse response;
  };
  // A heartbeat's state, reused from call to call (a free list): the
  // messages keep their buffers, and the dispatcher both makes and
  // destroys the context (a fresh one per call, gRPC's rule), so little
  // is allocated on one thread and freed on another.
  struct HeartbeatCall {
    std::optional<grpc::ClientContext> ctx;
    v1::HeartbeatRequest request;
    v1::HeartbeatResponse response;
    size_t vehicle = 0;
    absl::Time sent;
    bool measured = false;
  };

  absl::Status LoadVehicles();
  absl::Status Enroll();
  void Register(size_t i, const std::string& token);
  void Evaluate(size_t i, double t);  // step 3
  // `due`: when the fleet's schedule has it go (the measured window holds
  // the beats due in it). `flip`: sent for an eligibility flip; if a
  // heartbeat is out, another goes as soon as it is back.
  void Beat(size_t i, absl::Time due, absl::Time now, bool flip = false);
  void BeatDone(HeartbeatCall* call, const grpc::Status& s);
  void Applied(size_t i, const v1::HeartbeatResponse& response);
  // A DiLoCo assignment takes effect (not while a round runs).
  void AssignLocked(size_t i, Replica& r, const v1::Assignment& a)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool RoomToRegister() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return registering_ < o_.max_in_flight;
  }
  bool NoCallsOut() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return registering_ == 0 && heartbeats_in_flight_ == 0;
  }
  void RoundThread();
  // The compute of vehicle i's replica of `spec`: real (PacedTraining on
  // the shared data set) for the first real_trainers vehicles, modelled
  // for the rest.
  std::unique_ptr<RoundCompute> ComputeFor(size_t i, const v1::JobSpec& spec, int shard);
  void RunRound(size_t i);
  void CheckView();
  double DrivingOverlap(size_t i, const std::vector<std::pair<double, double>>& spans) const;

  const FleetSimOptions o_;
  std::mt19937_64 rng_;  // dispatcher thread only
  std::vector<std::unique_ptr<v1::Coordinator::Stub>> stubs_;
  std::vector<std::unique_ptr<Vehicle>> vehicles_;
  absl::Time start_real_, measure_from_;
  double start_v_ = 0;
  // The edge pool's heartbeat interval, from every registration's reply.
  std::atomic<int64_t> interval_ms_{1000};
  absl::Duration interval() const { return absl::Milliseconds(interval_ms_.load()); }
  std::priority_queue<Event, std::vector<Event>, std::greater<Event>> events_;  // dispatcher
  // Eligible vehicle-seconds per virtual hour of day, and seconds simulated in it.
  std::array<double, 24> eligible_s_{}, simulated_s_{};  // dispatcher
  double replica_eligible_s_ = 0;                        // eligible while a replica (dispatcher)

  // The real trainers' data sets, each loaded once (by the spec's dataset
  // and seed) and viewed by every trainer of it (Fashion-MNIST is 220 MB:
  // a copy per vehicle would not fit). Declared before the replicas,
  // whose trainers view them: destroyed after them.
  absl::Mutex data_mu_;
  std::map<std::string, absl::StatusOr<DatasetSplits>> data_ ABSL_GUARDED_BY(data_mu_);

  absl::Mutex mu_;
  std::vector<Event> incoming_ ABSL_GUARDED_BY(mu_);
  int registering_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status register_error_ ABSL_GUARDED_BY(mu_);
  int heartbeats_in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::unique_ptr<HeartbeatCall>> free_calls_ ABSL_GUARDED_BY(mu_);
  std::vector<float> latencies_ms_ ABSL_GUARDED_BY(mu_);
  std::vector<float> lag_ms_;  // dispatcher: how late each measured beat went out
  std::map<std::string, int64_t> errors_ ABSL_GUARDED_BY(mu_);
  std::map<size_t, Replica> replicas_ ABSL_GUARDED_BY(mu_);
  std::deque<size_t> round_queue_ ABSL_GUARDED_BY(mu_);
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  FleetSimReport report_ ABSL_GUARDED_BY(mu_);
  // until_job_ends: a replica was told its job ended.
  std::atomic<bool> job_ended_{false};
};

absl::Status Simulator::LoadVehicles() {
  start_v_ = o_.start_hour * 3600;
  const double end_v = start_v_ + o_.speedup * absl::ToDoubleSeconds(o_.warmup + o_.measure) + 600;
  auto add = [&](std::string name, const VehicleTrace& trace) {
    auto v = std::make_unique<Vehicle>();
    v->name = absl::StrCat(o_.name_prefix, "-", name);
    v->channel = static_cast<int>(vehicles_.size() % o_.channels);
    v->real_trainer = static_cast<int64_t>(vehicles_.size()) < o_.real_trainers;
    std::vector<v1::VehicleTraceEntry> all = ToReplayEntries(trace, kDay0);
    size_t first = 0;  // the step in force an hour before the start
    while (first + 1 < all.size() && all[first + 1].at_seconds() <= start_v_ - 3600) ++first;
    for (size_t s = first; s < all.size() && all[s].at_seconds() <= end_v; ++s) {
      v->steps.push_back(std::move(all[s]));
    }
    v->policy = std::make_unique<edge::IdlePolicyEvaluator>(o_.policy);
    vehicles_.push_back(std::move(v));
  };
  if (!o_.traces_csv.empty()) {
    absl::StatusOr<VehicleTraces> traces = ReadTraceCsv(o_.traces_csv);
    if (!traces.ok()) return traces.status();
    for (const auto& [name, trace] : *traces) add(name, trace);
  } else {
    absl::StatusOr<FleetTraceGenerator> traces = FleetTraceGenerator::Create(o_.traces);
    if (!traces.ok()) return traces.status();
    for (int64_t i = 0; i < o_.vehicles; ++i) add(VehicleName(i), traces->Generate(i));
  }
  // The policy has watched the hour before the start (a vehicle parked
  // since the morning is past its debounce, as a real agent's would be).
  for (size_t i = 0; i < vehicles_.size(); ++i) {
    Vehicle& v = *vehicles_[i];
    v.evaluated_at = start_v_ - 3600;
    for (size_t s = 1; s < v.steps.size() && v.steps[s].at_seconds() <= start_v_; ++s) {
      Evaluate(i, v.steps[s].at_seconds());
    }
    Evaluate(i, start_v_);
  }
  eligible_s_.fill(0);  // the warm-up hour is not the run's
  simulated_s_.fill(0);
  report_.flips = 0;
  return absl::OkStatus();
}

// Step 3: the policy's answer at virtual time `t` (>= the last one).
void Simulator::Evaluate(size_t i, double t) {
  Vehicle& v = *vehicles_[i];
  t = std::max(t, v.evaluated_at);
  // Eligible time, by hour of day, up to t.
  for (double a = v.evaluated_at; a < t;) {
    const int hour = static_cast<int>(std::fmod(a, kSecondsPerDay) / 3600);
    const double b = std::min(t, (std::floor(a / 3600) + 1) * 3600);
    if (v.answer.eligible()) eligible_s_[hour] += b - a;
    a = b;
  }
  if (v.answer.eligible() && v.replica) replica_eligible_s_ += t - v.evaluated_at;
  while (v.step + 1 < v.steps.size() && v.steps[v.step + 1].at_seconds() <= t) ++v.step;
  edge::VehicleReading reading;
  if (!v.steps.empty()) reading.state = v.steps[v.step].state();
  reading.observed = kDay0 + absl::Seconds(t);
  const bool was = v.answer.eligible();
  v.answer = v.policy->Evaluate(reading, reading.observed);
  v.evaluated_at = t;
  if (v.answer.eligible() == was) return;
  absl::MutexLock lock(&mu_);
  ++report_.flips;
  v.eligible = v.answer.eligible();
  v.flipped_at_ns = absl::ToUnixNanos(absl::Now());
  v.stop = !v.answer.eligible();
  if (v.answer.eligible() && replicas_.count(i) > 0) round_queue_.push_back(i);
}

absl::Status Simulator::Enroll() {
  for (size_t i = 0; i < vehicles_.size(); ++i) {
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(this, &Simulator::RoomToRegister));
      ++registering_;
    }
    Register(i, o_.join_token);
  }
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](int* n) { return *n == 0; }, &registering_));
  return register_error_;
}

// Steps 1 and 2's re-registration. `token`: the join token or the credential.
void Simulator::Register(size_t i, const std::string& token) {
  Vehicle* v = vehicles_[i].get();
  auto* call = new RegisterCall;
  call->ctx.set_deadline(absl::ToChronoTime(absl::Now() + 3 * kCallDeadline));
  call->ctx.AddMetadata("authorization", absl::StrCat("Bearer ", token));
  call->request.set_name(v->name);
  call->request.set_pool(v1::WORKER_POOL_EDGE);
  call->request.set_cores(4);
  call->request.set_memory_bytes(int64_t{8} << 30);
  call->request.set_samples_per_second(o_.samples_per_second);
  stubs_[v->channel]->async()->Register(
      &call->ctx, &call->request, &call->response, [this, i, v, call](grpc::Status s) {
        absl::MutexLock lock(&mu_);
        if (s.ok()) {
          if (!call->response.worker_credential().empty()) {
            v->credential = call->response.worker_credential();
            v->authorization = absl::StrCat("Bearer ", v->credential);
          }
          if (v->worker_id.empty()) {  // enrolled: its heartbeats begin
            const double phase = std::fmod(0.6180339887 * static_cast<double>(i), 1.0);
            incoming_.push_back(
                {absl::Now() + phase * absl::Milliseconds(call->response.heartbeat_interval_ms()),
                 Kind::kBeat, i});
            incoming_.push_back({absl::Now(), Kind::kEvaluate, i});
          }
          v->worker_id = call->response.worker_id();
          v->directives_applied = 0;
          interval_ms_ = call->response.heartbeat_interval_ms();
          v->lost = false;
        } else if (register_error_.ok() && v->worker_id.empty()) {
          register_error_ = absl::Status(FromGrpc(s).code(),
                                         absl::StrCat(v->name, ": Register: ", s.error_message()));
        }
        v->in_flight = false;
        --registering_;
        delete call;
      });
}

void Simulator::Beat(size_t i, absl::Time due, absl::Time now, bool flip) {
  Vehicle* v = vehicles_[i].get();
  Evaluate(i, VirtualNow());
  const bool measured = due >= measure_from_;
  if (v->in_flight.exchange(true)) {
    if (flip) {
      v->beat_again = true;
      return;
    }
    if (measured) {
      absl::MutexLock lock(&mu_);
      ++report_.late;
    }
    return;
  }
  if (v->lost) {
    {
      absl::MutexLock lock(&mu_);
      ++registering_;
    }
    Register(i, v->credential);
    return;
  }
  HeartbeatCall* call;
  {
    absl::MutexLock lock(&mu_);
    ++heartbeats_in_flight_;
    if (free_calls_.empty()) {
      call = new HeartbeatCall;
    } else {
      call = free_calls_.back().release();
      free_calls_.pop_back();
    }
    auto r = replicas_.find(i);
    call->request.set_job_id(r != replicas_.end() ? r->second.job_id : std::string());
  }
  call->vehicle = i;
  *call->request.mutable_eligibility() = v->answer;
  call->request.set_worker_id(v->worker_id);
  call->request.set_directives_applied(v->directives_applied);
  call->response.Clear();
  call->ctx.emplace();
  call->ctx->set_deadline(absl::ToChronoTime(now + kCallDeadline));
  call->ctx->AddMetadata("authorization", v->authorization);
  call->measured = measured;
  if (measured) lag_ms_.push_back(static_cast<float>(absl::ToDoubleMilliseconds(now - due)));
  call->sent = absl::Now();
  stubs_[v->channel]->async()->Heartbeat(&*call->ctx, &call->request, &call->response,
                                         [this, call](grpc::Status s) { BeatDone(call, s); });
}

// A heartbeat's completion (gRPC's thread).
void Simulator::BeatDone(HeartbeatCall* call, const grpc::Status& s) {
  const double ms = absl::ToDoubleMilliseconds(absl::Now() - call->sent);
  const size_t i = call->vehicle;
  Vehicle* v = vehicles_[i].get();
  if (s.ok()) Applied(i, call->response);
  if (s.error_code() == grpc::StatusCode::NOT_FOUND) v->lost = true;
  // Everything under the lock: once the count is 0, Run() may return and
  // the simulator go.
  {
    absl::MutexLock lock(&mu_);
    v->in_flight = false;
    if (v->beat_again.exchange(false)) incoming_.push_back({absl::Now(), Kind::kFlipBeat, i});
    --heartbeats_in_flight_;
    if (call->measured) {
      if (s.ok()) {
        latencies_ms_.push_back(static_cast<float>(ms));
      } else {
        ++errors_[absl::StatusCodeToString(FromGrpc(s).code())];
      }
    }
    free_calls_.emplace_back(call);  // its context goes when the next call replaces it
  }
}

// Step 2's directives (a completion thread).
void Simulator::Applied(size_t i, const v1::HeartbeatResponse& response) {
  Vehicle* v = vehicles_[i].get();
  absl::MutexLock lock(&mu_);
  for (const v1::Directive& d : response.directives()) {
    if (d.sequence() != 0 && d.sequence() <= v->directives_applied) continue;
    if (d.sequence() > v->directives_applied) v->directives_applied = d.sequence();
    if (d.has_assign() && d.assign().spec().sync().has_diloco()) {
      Replica& r = replicas_[i];
      if (r.job_id == d.assign().job_id()) continue;
      if (r.running) {
        r.next = d.assign();  // the round's thread applies it at its end
      } else {
        AssignLocked(i, r, d.assign());
      }
    } else if (!d.cancel_job_id().empty()) {
      auto r = replicas_.find(i);
      if (r == replicas_.end() || r->second.job_id != d.cancel_job_id()) continue;
      job_ended_ = true;  // a replica's job is cancelled when it ends
      v->replica = false;
      if (r->second.running) {
        v->stop = true;  // the round ends now; its thread lets the replica go
        r->second.job_id.clear();
      } else {
        replicas_.erase(r);
      }
    }
  }
}

void Simulator::AssignLocked(size_t i, Replica& r, const v1::Assignment& a) {
  Vehicle* v = vehicles_[i].get();
  r.job_id = a.job_id();
  r.spec = a.spec();
  r.shard = a.rank();
  r.next.reset();
  r.client.reset();  // a new job: a new client and compute, built by the round thread
  r.compute.reset();
  r.service.reset();
  ++report_.replicas;
  v->replica = true;
  v->stop = !v->eligible;
  if (v->eligible) round_queue_.push_back(i);
}

void Simulator::RoundThread() {
  // One oneDNN thread per round thread: OpenMP's default, a team per core
  // for each of dozens of trainers, would make them spin against each
  // other. (Per thread: OpenMP keeps the setting in the calling thread.)
  SetComputeThreads(1);
  while (true) {
    size_t i;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](Simulator* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s->mu_) {
            return s->done_ || !s->round_queue_.empty();
          },
          this));
      if (done_) return;
      i = round_queue_.front();
      round_queue_.pop_front();
    }
    RunRound(i);
  }
}

// Step 4: one RunOnce for vehicle i, if it is a replica and eligible.
void Simulator::RunRound(size_t i) {
  Vehicle* v = vehicles_[i].get();
  Replica* r;
  std::string worker_id, credential;  // as of this round's start
  {
    absl::MutexLock lock(&mu_);
    auto it = replicas_.find(i);
    if (it == replicas_.end() || it->second.running || it->second.job_id.empty() || !v->eligible) {
      return;
    }
    r = &it->second;
    r->running = true;
    worker_id = v->worker_id;
    credential = v->credential;
  }
  if (r->client == nullptr) {
    r->service = std::make_unique<VehicleRoundService>(stubs_[v->channel].get(), credential);
    r->compute = ComputeFor(i, r->spec, r->shard);
    RoundClientOptions options;
    options.worker_id = worker_id;
    options.job_id = r->job_id;
    r->client = std::make_unique<RoundClient>(r->spec, r->service.get(), r->compute.get(), options);
  }
  r->client->set_worker_id(worker_id);
  absl::StatusOr<RoundOutcome> out = r->client->RunOnce(&v->stop);
  absl::Duration again = absl::ZeroDuration();
  if (out.ok() && out->kind == RoundOutcome::kEvaluated) {
    r->service->ReportEvaluation(worker_id, r->job_id, out->version, out->test_accuracy)
        .IgnoreError();  // another replica evaluates if this one cannot
  }
  absl::MutexLock lock(&mu_);
  r->running = false;
  if (!out.ok()) {
    ++report_.round_errors[absl::StatusCodeToString(out.status().code())];
    again = absl::Seconds(1);
  } else {
    report_.bytes_fetched += out->bytes_fetched;
    report_.bytes_pushed += out->bytes_pushed;
    const bool trained = out->kind == RoundOutcome::kPushed ||
                         out->kind == RoundOutcome::kWithdrew ||
                         (out->kind == RoundOutcome::kRefused && out->result.steps_done > 0);
    if (trained) {
      ++report_.rounds_run;
      report_.rounds_preempted += out->result.preempted;
      const int hour = static_cast<int>(std::fmod(VirtualNow(), kSecondsPerDay) / 3600);
      report_.preempted_by_hour[hour] += out->result.preempted;
      const double hours = static_cast<double>(out->result.samples) / o_.samples_per_second / 3600;
      report_.compute_hours += hours;
      if (out->kind == RoundOutcome::kPushed) {
        ++report_.rounds_counted;
        ++report_.counted_by_hour[hour];
        report_.counted_compute_hours += hours;
      }
    }
    if (out->kind == RoundOutcome::kWait) again = out->retry_after;
    if (out->kind == RoundOutcome::kJobEnded) {
      job_ended_ = true;
      r->job_id.clear();
      v->replica = false;
    }
  }
  if (r->next.has_value()) {  // assigned anew while the round ran
    AssignLocked(i, *r, *r->next);
    return;
  }
  if (r->job_id.empty()) {  // cancelled or ended while it ran
    replicas_.erase(i);
    return;
  }
  if (again == absl::ZeroDuration()) {
    round_queue_.push_back(i);
  } else {
    incoming_.push_back({absl::Now() + again, Kind::kRound, i});
  }
}

std::unique_ptr<RoundCompute> Simulator::ComputeFor(size_t i, const v1::JobSpec& spec, int shard) {
  Vehicle* v = vehicles_[i].get();
  const DiLoCoSettings settings = ResolveDiLoCo(spec);
  SpanRecorder record = [this, v](double from, double to) { RecordSpan(v, from, to); };
  if (v->real_trainer) {
    absl::StatusOr<std::unique_ptr<ReplicaTrainer>> trainer = [&] {
      absl::MutexLock lock(&data_mu_);
      const std::string key = absl::StrCat(spec.seed(), " ", spec.dataset().SerializeAsString());
      auto it = data_.find(key);
      if (it == data_.end()) {
        it = data_.emplace(key, LoadDataset(spec.dataset(), spec.seed())).first;
      }
      if (!it->second.ok()) {
        return absl::StatusOr<std::unique_ptr<ReplicaTrainer>>(it->second.status());
      }
      return ReplicaTrainer::Create(spec, shard, ViewOf(*it->second));
    }();
    if (trainer.ok()) {
      return std::make_unique<PacedTraining>(this, std::move(record), *std::move(trainer),
                                             settings.replica_batch_size, o_.samples_per_second);
    }
    LOG(WARNING) << v->name << ": no real trainer (" << trainer.status() << "); modelled";
  }
  int64_t n = 0;
  if (absl::StatusOr<std::vector<TensorSpec>> params = ExpectedParameters(spec); params.ok()) {
    for (const TensorSpec& t : *params) n += NumElements(t.shape);
  }
  return std::make_unique<ModelledCompute>(this, std::move(record), n, settings.replica_batch_size,
                                           o_.samples_per_second, o_.traces.seed + i);
}

void Simulator::CheckView() {
  v1::ListWorkersRequest request;
  request.set_pool(v1::WORKER_POOL_EDGE);
  request.set_page_size(10000);
  std::map<std::string, size_t> by_name;
  for (size_t i = 0; i < vehicles_.size(); ++i) by_name[vehicles_[i]->name] = i;
  int64_t checks = 0, mismatches = 0;
  do {
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + kCallDeadline));
    ctx.AddMetadata("authorization", absl::StrCat("Bearer ", o_.viewer_token));
    v1::ListWorkersResponse page;
    if (!stubs_[0]->ListWorkers(&ctx, request, &page).ok()) return;
    const int64_t now_ns = absl::ToUnixNanos(absl::Now());
    for (const v1::WorkerInfo& w : page.workers()) {
      auto it = by_name.find(w.name());
      if (it == by_name.end() || w.state() == v1::WORKER_STATE_LOST) continue;
      const Vehicle& v = *vehicles_[it->second];
      ++checks;
      const bool settled = now_ns - v.flipped_at_ns.load() >
                           absl::ToInt64Nanoseconds(interval() + kCallDeadline / 10);
      if (settled && w.eligibility().eligible() != v.eligible.load()) ++mismatches;
    }
    request.set_page_token(page.next_page_token());
  } while (!request.page_token().empty());
  absl::MutexLock lock(&mu_);
  report_.view_checks += checks;
  report_.view_mismatches += mismatches;
}

double Simulator::DrivingOverlap(size_t i,
                                 const std::vector<std::pair<double, double>>& spans) const {
  const Vehicle& v = *vehicles_[i];
  double worst = 0;
  for (size_t s = 0; s < v.steps.size(); ++s) {
    if (v.steps[s].state().ignition() != v1::VehicleState::IGNITION_ON) continue;
    const double a = v.steps[s].at_seconds();
    const double b = s + 1 < v.steps.size() ? v.steps[s + 1].at_seconds() : 1e18;
    for (const auto& [from, to] : spans) {
      worst = std::max(worst, std::min(b, to) - std::max(a, from));
    }
  }
  return worst;
}

absl::StatusOr<FleetSimReport> Simulator::Run() {
  if ((o_.vehicles <= 0 && o_.traces_csv.empty()) || o_.channels <= 0 || o_.speedup <= 0) {
    return absl::InvalidArgumentError("vehicles, channels and speedup must be > 0");
  }
  for (int c = 0; c < o_.channels; ++c) {
    stubs_.push_back(
        v1::Coordinator::NewStub(security::NewChannel(o_.coordinator, o_.security, nullptr)));
  }
  if (absl::Status s = LoadVehicles(); !s.ok()) return s;
  // Step 1 on a thread of its own: each vehicle heartbeats from its own
  // registration on (the dispatcher below runs meanwhile), as a fleet
  // that comes online does; the measured window starts `warmup` after the
  // last vehicle enrolled.
  start_real_ = absl::Now();
  measure_from_ = absl::InfiniteFuture();
  absl::Time end = absl::InfiniteFuture();
  struct CpuSample {
    absl::Time at;
    double simulator, coordinator;  // CPU seconds
  };
  std::optional<CpuSample> cpu_at_window_start;
  absl::Status enrolled;
  absl::Notification enroll_done;
  std::thread enroller([&] {
    enrolled = Enroll();
    enroll_done.Notify();
  });
  std::vector<std::thread> round_threads;
  for (int t = 0; t < o_.round_threads; ++t) round_threads.emplace_back([this] { RoundThread(); });
  std::unique_ptr<std::thread> view_thread;
  absl::Notification end_view;
  if (o_.check_view_every > absl::ZeroDuration() && !o_.viewer_token.empty()) {
    view_thread = std::make_unique<std::thread>([&] {
      while (!end_view.WaitForNotificationWithTimeout(o_.check_view_every)) CheckView();
    });
  }
  // Steps 2-3 on the dispatcher: heartbeats from a uniform offset after a
  // vehicle enrolled, then every interval; evaluations at each state
  // change and every `reevaluate`.
  std::uniform_real_distribution<double> unit(0, 1);
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      for (const Event& e : incoming_) events_.push(e);
      incoming_.clear();
    }
    if (end == absl::InfiniteFuture() && enroll_done.HasBeenNotified()) {
      if (!enrolled.ok()) break;
      measure_from_ = absl::Now() + o_.warmup;
      end = measure_from_ + o_.measure;
      absl::MutexLock lock(&mu_);
      report_.vehicles = static_cast<int64_t>(vehicles_.size());
      report_.enroll_time = absl::Now() - start_real_;
      report_.heartbeat_interval_s = absl::ToDoubleSeconds(interval());
    }
    if (events_.empty()) {
      absl::SleepFor(absl::Milliseconds(2));
      continue;
    }
    const Event e = events_.top();
    if (e.at >= end || (o_.until_job_ends && job_ended_)) break;
    const absl::Time now = absl::Now();
    if (!cpu_at_window_start && now >= measure_from_) {
      cpu_at_window_start = CpuSample{now, CpuSeconds(0), CpuSeconds(o_.coordinator_pid)};
    }
    if (e.at > now) {
      absl::SleepFor(std::min(e.at - now, absl::Milliseconds(2)));
      continue;
    }
    events_.pop();
    Vehicle& v = *vehicles_[e.vehicle];
    switch (e.kind) {
      case Kind::kBeat: {
        Beat(e.vehicle, e.at, now);
        const double jitter = 1 + o_.jitter * (2 * unit(rng_) - 1);
        // From when it was due, not when it went out: the fleet's load on
        // schedule, whatever the dispatcher's lag (from now instead, as the
        // agent's daemon does, measured p99 256-355 ms for 42-45 ms at
        // 100,000 vehicles: bench/README.md, "A fleet on one machine").
        events_.push({e.at + jitter * interval(), Kind::kBeat, e.vehicle});
        break;
      }
      case Kind::kFlipBeat:
        Beat(e.vehicle, e.at, now, /*flip=*/true);
        break;
      case Kind::kEvaluate: {
        const bool was = v.answer.eligible();
        const double t = VirtualNow();
        Evaluate(e.vehicle, t);
        if (v.answer.eligible() != was) Beat(e.vehicle, e.at, now, /*flip=*/true);  // at once
        double next = t + absl::ToDoubleSeconds(o_.reevaluate);
        if (v.step + 1 < v.steps.size()) next = std::min(next, v.steps[v.step + 1].at_seconds());
        events_.push({RealAt(next), Kind::kEvaluate, e.vehicle});
        break;
      }
      case Kind::kRound: {
        absl::MutexLock lock(&mu_);
        round_queue_.push_back(e.vehicle);
        break;
      }
    }
  }
  const absl::Time window_end = std::min(absl::Now(), end);
  // Over the real time between the samples: a dispatcher behind its
  // schedule sends the window's last beats after `end`.
  const CpuSample cpu_at_end{absl::Now(), CpuSeconds(0), CpuSeconds(o_.coordinator_pid)};
  enroller.join();
  const double end_v = VirtualNow();
  for (size_t i = 0; i < vehicles_.size(); ++i) Evaluate(i, end_v);
  for (double a = start_v_; a < end_v;) {
    const int hour = static_cast<int>(std::fmod(a, kSecondsPerDay) / 3600);
    const double b = std::min(end_v, (std::floor(a / 3600) + 1) * 3600);
    simulated_s_[hour] += b - a;
    a = b;
  }
  // The calls of the window come back (or time out); rounds stop.
  for (auto& v : vehicles_) v->stop = true;
  {
    absl::MutexLock lock(&mu_);
    done_ = true;
    // Every call's completion touches this simulator: all come back (their
    // deadlines bound the wait) before it goes.
    mu_.Await(absl::Condition(this, &Simulator::NoCallsOut));
  }
  for (std::thread& t : round_threads) t.join();
  end_view.Notify();
  if (view_thread != nullptr) view_thread->join();
  if (!enrolled.ok()) return enrolled;

  absl::MutexLock lock(&mu_);
  FleetSimReport report = report_;
  std::sort(latencies_ms_.begin(), latencies_ms_.end());
  auto at = [&](double q) { return Percentile(latencies_ms_, q); };
  report.heartbeats = static_cast<int64_t>(latencies_ms_.size());
  report.p50_ms = at(0.5);
  report.p90_ms = at(0.9);
  report.p99_ms = at(0.99);
  report.p999_ms = at(0.999);
  report.max_ms = latencies_ms_.empty() ? 0 : latencies_ms_.back();
  std::sort(lag_ms_.begin(), lag_ms_.end());
  report.send_lag_p99_ms = Percentile(lag_ms_, 0.99);
  report.send_lag_max_ms = lag_ms_.empty() ? 0 : lag_ms_.back();
  report.errors = errors_;
  const double window_s = std::max(1e-9, absl::ToDoubleSeconds(window_end - measure_from_));
  report.heartbeats_per_second = report.heartbeats / window_s;
  if (cpu_at_window_start) {
    const double s = std::max(1e-9, absl::ToDoubleSeconds(cpu_at_end.at - cpu_at_window_start->at));
    report.simulator_cores = (cpu_at_end.simulator - cpu_at_window_start->simulator) / s;
    if (o_.coordinator_pid > 0) {
      report.coordinator_cores = (cpu_at_end.coordinator - cpu_at_window_start->coordinator) / s;
    }
  }
  report.virtual_hours = (end_v - start_v_) / 3600;
  for (int h = 0; h < 24; ++h) {
    report.mean_eligible_by_hour[h] = simulated_s_[h] > 0 ? eligible_s_[h] / simulated_s_[h] : -1;
    report.eligible_vehicle_hours += eligible_s_[h] / 3600;
  }
  report.replica_eligible_hours = replica_eligible_s_ / 3600;
  for (size_t i = 0; i < vehicles_.size(); ++i) {
    report.max_driving_overlap_s =
        std::max(report.max_driving_overlap_s, DrivingOverlap(i, vehicles_[i]->compute_spans));
  }
  if (o_.coordinator_pid > 0) {
    std::tie(report.coordinator_rss_bytes, report.coordinator_peak_rss_bytes) =
        ResidentMemory(o_.coordinator_pid);
  }
  return report;
}

}  // namespace

absl::StatusOr<FleetSimReport> RunFleetSim(const FleetSimOptions& options) {
  return Simulator(options).Run();
}

std::string FormatReport(const FleetSimReport& r) {
  std::string errors, round_errors, hours;
  for (const auto& [code, n] : r.errors) absl::StrAppend(&errors, " ", code, "=", n);
  for (const auto& [code, n] : r.round_errors) absl::StrAppend(&round_errors, " ", code, "=", n);
  for (int h = 0; h < 24; ++h) {
    if (r.mean_eligible_by_hour[h] >= 0) {
      absl::StrAppendFormat(&hours, " %02d:%.0f", h, r.mean_eligible_by_hour[h]);
    }
  }
  const double utilisation =
      r.replica_eligible_hours > 0 ? r.counted_compute_hours / r.replica_eligible_hours : 0;
  return absl::StrFormat(
      "vehicles %d (enrolled in %.1f s), heartbeat every %.1f s\n"
      "heartbeats %d in the window (%.0f/s), late %d, errors%s\n"
      "round calls that failed past their retries:%s\n"
      "latency ms: p50 %.2f  p90 %.2f  p99 %.2f  p99.9 %.2f  max %.2f\n"
      "sent after due (the load generator's lag) ms: p99 %.2f  max %.2f\n"
      "coordinator RSS %.0f MiB (peak %.0f MiB)\n"
      "CPU in the window: coordinator %.2f cores (%.1f us per heartbeat), simulator %.2f cores\n"
      "virtual hours %.2f, eligibility flips %d, eligible vehicles by hour:%s\n"
      "replicas %d, rounds trained %d (counted %d, preempted %d), compute %.2f vehicle-hours "
      "(counted %.2f: %.1f%% of the replicas' eligible %.2f), bytes fetched %d pushed %d\n"
      "compute inside a drive: at most %.1f virtual s; view checks %d, mismatches %d\n",
      r.vehicles, absl::ToDoubleSeconds(r.enroll_time), r.heartbeat_interval_s, r.heartbeats,
      r.heartbeats_per_second, r.late, errors.empty() ? " none" : errors,
      round_errors.empty() ? " none" : round_errors, r.p50_ms, r.p90_ms, r.p99_ms, r.p999_ms,
      r.max_ms, r.send_lag_p99_ms, r.send_lag_max_ms, r.coordinator_rss_bytes / 1048576.0,
      r.coordinator_peak_rss_bytes / 1048576.0, r.coordinator_cores,
      r.heartbeats_per_second > 0 ? 1e6 * r.coordinator_cores / r.heartbeats_per_second : 0,
      r.simulator_cores, r.virtual_hours, r.flips, hours, r.replicas, r.rounds_run,
      r.rounds_counted, r.rounds_preempted, r.compute_hours, r.counted_compute_hours,
      100 * utilisation, r.replica_eligible_hours, r.bytes_fetched, r.bytes_pushed,
      r.max_driving_overlap_s, r.view_checks, r.view_mismatches);
}

std::string HourlyCsv(const FleetSimReport& r) {
  std::string out = "hour,eligible_vehicles,updates_counted,rounds_preempted\n";
  for (int h = 0; h < 24; ++h) {
    if (r.mean_eligible_by_hour[h] < 0) continue;
    absl::StrAppendFormat(&out, "%d,%.1f,%d,%d\n", h, r.mean_eligible_by_hour[h],
                          r.counted_by_hour[h], r.preempted_by_hour[h]);
  }
  return out;
}

}  // namespace nightshift::fleet
