// Two ranks of the Fashion-MNIST MLP's training step on one machine, each
// on its own thread with one compute thread, to find where a 2-worker job
// loses against two independent trainers (issue 12, target 3).
//
// Modes (every one runs forward, loss, backward and the SGD-momentum
// update of examples/fashion_mlp.textproto at --batch per rank):
//   alone        one rank, private memory, at the same batch per rank
//                (a 1-worker job runs the whole global batch instead, a
//                little more efficiently per sample: its ratio is
//                bench/run_cluster_training.sh's, not this one's).
//   independent  two ranks, each on private memory, no exchange: the
//                hardware's ceiling for two workers.
//   shared       two ranks through the real one-sided update
//                (collective/shared_step.h) over memory both map.
//   shared_local the same protocol and waits, but each rank reads a
//                private stand-in for its peer's region (holding the
//                initial parameters and zero gradients): what the step
//                costs without the cross-core data traffic.
//   round_trip   only the cross-core round trip below.
//
// Prints one line: mode=... ranks=... samples_per_s=... step_us=...
// cross_core_rtt_ns=BEFORE,AFTER, the time a cache line takes from core 0
// to core 1 and back, measured before and after the run: on a VM it
// depends on where the hypervisor put the two vCPUs (the same CCX of an
// AMD EPYC, or not), it moves while the VM runs, and it decides what the
// exchange costs. Each rank also prints (stderr) its time per step in
// forward+backward ("compute") and in the exchange and update.
// Each mode runs about --seconds after 50 warm-up steps; in the exchange
// modes rank 0 decides when, and both ranks stop after the same step.
// usage: shared_step_bench --mode=shared [--batch=64] [--seconds=4]
#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/time/clock.h"
#include "base/cpu_relax.h"
#include "bench/fashion_mlp.h"
#include "collective/shared_step.h"
#include "collective/transport/group_memory.h"
#include "kernels/model.h"
#include "kernels/optimizer.h"
#include "kernels/random.h"
#include "kernels/threads.h"

ABSL_FLAG(std::string, mode, "shared", "alone, independent, shared, shared_local or round_trip");
ABSL_FLAG(int, batch, 64, "samples per step per rank");
ABSL_FLAG(double, seconds, 4.0, "measured time");
ABSL_FLAG(bool, fresh_batches, false,
          "each step copies --batch random samples of a 60,000-sample set into the batch, "
          "as a training job does, instead of reusing one batch");

namespace nightshift {
namespace {

using Clock = std::chrono::steady_clock;

// Every rank's region and counters, in this process's memory.
class GroupRegions {
 public:
  GroupRegions(int size, size_t bytes) : bytes_(bytes), counters_(size) {
    for (int r = 0; r < size; ++r) {
      regions_.emplace_back(static_cast<char*>(std::aligned_alloc(4096, Round(bytes))), std::free);
      std::memset(regions_.back().get(), 0, Round(bytes));
    }
  }
  size_t bytes() const { return bytes_; }
  char* region(int rank) { return regions_[rank].get(); }
  std::atomic<uint32_t>& counter(int rank, int counter) { return counters_[rank].value[counter]; }

 private:
  struct alignas(64) Counters {
    std::atomic<uint32_t> value[collective::GroupMemory::kCounters] = {};
  };
  static size_t Round(size_t b) { return (b + 4095) & ~size_t{4095}; }
  const size_t bytes_;
  std::vector<std::unique_ptr<char, void (*)(void*)>> regions_;
  std::vector<Counters> counters_;
};

// One rank's GroupMemory: its own region and every counter are the
// group's; a peer's region is the group's (shared) or a private stand-in
// that no other thread touches (shared_local). Await spins.
class RankView : public collective::GroupMemory {
 public:
  RankView(GroupRegions* group, int rank, bool local_peers)
      : group_(group),
        rank_(rank),
        local_peers_(local_peers),
        stand_in_(local_peers ? 2 : 0, group->bytes()) {}
  size_t bytes_per_rank() const override { return group_->bytes(); }
  char* region(int rank) override {
    if (rank == rank_ || !local_peers_) return group_->region(rank);
    return stand_in_.region(rank);
  }
  void Publish(int counter, uint32_t value) override {
    group_->counter(rank_, counter).store(value, std::memory_order_release);
  }
  absl::Status Await(int peer, int counter, uint32_t value, absl::Time) override {
    const std::atomic<uint32_t>& c = group_->counter(peer, counter);
    while (static_cast<int32_t>(c.load(std::memory_order_acquire) - value) < 0) {
      CpuRelax();
    }
    return absl::OkStatus();
  }

 private:
  GroupRegions* group_;
  const int rank_;
  const bool local_peers_;
  GroupRegions stand_in_;
};

void PinTo(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (int e = pthread_setaffinity_np(pthread_self(), sizeof(set), &set); e != 0) {
    std::fprintf(stderr, "cannot pin a thread to CPU %d (%s): the round trip needs CPUs 0 and 1\n",
                 cpu, std::strerror(e));
    std::exit(1);
  }
}

// The time for a cache line to go from one core to the other and back:
// two threads, each pinned to one core, bounce a counter. On a VM this
// depends on where the hypervisor placed the two vCPUs, and it moves.
double CrossCoreRoundTripNs() {
  alignas(64) static std::atomic<int> ping{0};
  alignas(64) static std::atomic<int> pong{0};
  ping = 0;
  pong = 0;
  constexpr int kRounds = 100000;
  std::thread echo([&] {
    PinTo(1);
    for (int i = 1; i <= kRounds; ++i) {
      while (ping.load(std::memory_order_acquire) != i) {
      }
      pong.store(i, std::memory_order_release);
    }
  });
  double ns = 0;
  std::thread serve([&] {
    PinTo(0);
    const auto start = Clock::now();
    for (int i = 1; i <= kRounds; ++i) {
      ping.store(i, std::memory_order_release);
      while (pong.load(std::memory_order_acquire) != i) {
      }
    }
    ns = std::chrono::duration<double, std::nano>(Clock::now() - start).count() / kRounds;
  });
  serve.join();
  echo.join();
  return ns;
}

v1::OptimizerSpec SgdSpec() {
  v1::OptimizerSpec spec;
  spec.mutable_sgd()->set_lr(0.05f);
  spec.mutable_sgd()->set_momentum(0.9f);
  spec.mutable_sgd()->set_nesterov(true);
  spec.mutable_sgd()->set_weight_decay(0.0005f);
  return spec;
}

int Main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const std::string mode = absl::GetFlag(FLAGS_mode);
  const int64_t batch = absl::GetFlag(FLAGS_batch);
  const double seconds = absl::GetFlag(FLAGS_seconds);
  if (mode == "round_trip") {
    std::printf("cross_core_rtt_ns=%.0f\n", CrossCoreRoundTripNs());
    return 0;
  }
  if (mode != "alone" && mode != "independent" && mode != "shared" && mode != "shared_local") {
    std::fprintf(stderr, "--mode: unknown mode '%s'\n", mode.c_str());
    return 2;
  }
  const int ranks = mode == "alone" ? 1 : 2;
  const bool exchange = mode == "shared" || mode == "shared_local";

  auto probe = Model::Create(FashionMlpSpec(), {1, 28, 28}, 1);
  if (!probe.ok()) return 1;
  const int64_t floats = (*probe)->num_parameters();
  GroupRegions group(ranks, collective::SharedStepMemory::BytesPerRank(floats));

  std::atomic<int> ready{0};
  constexpr int64_t kNotYet = std::numeric_limits<int64_t>::max();
  std::atomic<int64_t> stop_after{kNotYet};  // steps each rank runs
  std::vector<int64_t> steps(ranks);
  std::vector<double> elapsed(ranks);
  auto rank_main = [&](int rank) {
    SetComputeThreads(1);
    auto model = Model::Create(FashionMlpSpec(), {1, 28, 28}, 1);
    auto optimizer = MakeOptimizer(SgdSpec(), floats);
    if (!model.ok() || !optimizer.ok()) std::abort();
    RankView view(&group, rank, mode == "shared_local");
    collective::SharedStepMemory memory(&view, floats);
    if (exchange) {
      (*model)->MoveFlatBuffersTo(absl::MakeSpan(memory.parameters(rank), floats),
                                  absl::MakeSpan(memory.gradients(rank), floats));
    }
    if (mode == "shared_local") {  // the stand-ins hold parameters, not zeros
      for (int r = 0; r < ranks; ++r) {
        if (r == rank) continue;
        std::memcpy(memory.parameters(r), memory.parameters(rank), floats * sizeof(float));
        std::memcpy(memory.published_parameters(r), memory.parameters(rank),
                    floats * sizeof(float));
      }
    }
    Tensor images({batch, 1, 28, 28});
    std::vector<int32_t> labels(batch);
    Rng rng({static_cast<uint64_t>(5 + rank)});
    for (float& v : images.span()) v = static_cast<float>(rng.Uniform());
    for (int32_t& l : labels) l = static_cast<int32_t>(rng.Below(10));
    const bool fresh = absl::GetFlag(FLAGS_fresh_batches);
    constexpr int64_t kSetSize = 60000, kSample = 784;
    std::vector<float> set(fresh ? kSetSize * kSample : 0);
    for (float& v : set) v = static_cast<float>(rng.Uniform());
    uint32_t seq = 0;
    double t_compute = 0, t_update = 0;
    auto step = [&] {
      const auto t0 = Clock::now();
      if (fresh) {
        float* out = images.data();
        for (int64_t i = 0; i < batch; ++i) {
          std::memcpy(out + i * kSample, set.data() + rng.Below(kSetSize) * kSample,
                      kSample * sizeof(float));
        }
      }
      (*model)->ComputeGradients(images, labels, 1.f);
      const auto t1 = Clock::now();
      t_compute += std::chrono::duration<double>(t1 - t0).count();
      absl::Span<float> params = (*model)->flat_parameters();
      absl::Span<float> grads = (*model)->flat_gradients();
      const float scale = 1.f / static_cast<float>(batch * ranks);
      if (exchange) {
        (*optimizer)->BeginStep();
        absl::Status s = collective::SharedStepUpdate(
            memory, rank, ranks, ++seq,
            [&](int64_t begin, int64_t end) {
              (*optimizer)->Update(params, grads, 0.01f, scale, begin, end);
            },
            absl::InfiniteFuture());
        if (!s.ok()) std::abort();
      } else {
        (*optimizer)->Step(params, grads, 0.01f, scale);
      }
      t_update += std::chrono::duration<double>(Clock::now() - t1).count();
    };
    for (int i = 0; i < 50; ++i) step();
    t_compute = t_update = 0;
    // Start together; rank 0 says when to stop. In the exchange modes
    // each step waits for the other rank's, so both must stop after the
    // same one: rank 0 names it two steps on, which neither rank can have
    // passed yet (the other learns it before finishing the next step).
    // Otherwise every rank stops at once.
    ready.fetch_add(1);
    while (ready.load() < ranks) {
    }
    const auto start = Clock::now();
    int64_t n = 0;
    while (n < stop_after.load()) {
      step();
      ++n;
      if (rank == 0 && stop_after.load() == kNotYet &&
          std::chrono::duration<double>(Clock::now() - start).count() > seconds) {
        stop_after.store(exchange ? n + 2 : 0);
      }
    }
    elapsed[rank] = std::chrono::duration<double>(Clock::now() - start).count();
    steps[rank] = n;
    std::fprintf(stderr, "rank %d: compute %.1f us, update %.1f us per step\n", rank,
                 t_compute / n * 1e6, t_update / n * 1e6);
  };
  const double rtt_before = CrossCoreRoundTripNs();
  std::vector<std::thread> threads;
  for (int r = 0; r < ranks; ++r) threads.emplace_back(rank_main, r);
  for (auto& t : threads) t.join();
  double samples_per_s = 0, step_s = 0;
  for (int r = 0; r < ranks; ++r) {
    samples_per_s += steps[r] * batch / elapsed[r];
    step_s += elapsed[r] / steps[r] / ranks;
  }
  const double rtt_after = CrossCoreRoundTripNs();
  std::printf(
      "mode=%s ranks=%d batch=%lld samples_per_s=%.0f step_us=%.1f cross_core_rtt_ns=%.0f,%.0f\n",
      mode.c_str(), ranks, static_cast<long long>(batch), samples_per_s, step_s * 1e6, rtt_before,
      rtt_after);
  return 0;
}

}  // namespace
}  // namespace nightshift

int main(int argc, char** argv) { return nightshift::Main(argc, argv); }
