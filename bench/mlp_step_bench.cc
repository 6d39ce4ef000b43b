// One training step of the Fashion-MNIST MLP (784-512-256-10, SGD with
// momentum) at a given batch size and thread count, and the oneDNN sgemm
// bound for the same step.
//
// Prints one line of key=value pairs:
//   batch=64 threads=1 samples_per_s=... step_us=... sgemm_bound_samples_per_s=...
//   bound_share=...
// The bound times dnnl_sgemm alone on the eight matrix products a step
// needs (three forward, three weight gradients, two input gradients — the
// first layer's input gradient is never computed), with the same shapes
// and threads; the step cannot be faster than their sum.
//
// usage: mlp_step_bench --batch=64 --threads=1 [--seconds=2]
#include <chrono>
#include <cstdio>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "bench/fashion_mlp.h"
#include "kernels/model.h"
#include "kernels/optimizer.h"
#include "kernels/random.h"
#include "kernels/threads.h"
#include "oneapi/dnnl/dnnl.hpp"

ABSL_FLAG(int, batch, 64, "samples per step");
ABSL_FLAG(int, threads, 1, "compute threads");
ABSL_FLAG(double, seconds, 2.0, "time to spend measuring each figure");

namespace nightshift {
namespace {

using Clock = std::chrono::steady_clock;

// Runs fn repeatedly for about `seconds` after a warm-up; returns seconds
// per call (the median of 5 rounds, to shrug off a noisy neighbour).
template <typename Fn>
double TimePerCall(Fn fn, double seconds) {
  for (int i = 0; i < 20; ++i) fn();
  std::vector<double> rounds;
  for (int round = 0; round < 5; ++round) {
    int64_t calls = 0;
    const auto start = Clock::now();
    double elapsed = 0;
    while (elapsed < seconds / 5) {
      for (int i = 0; i < 10; ++i) fn();
      calls += 10;
      elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    }
    rounds.push_back(elapsed / calls);
  }
  std::sort(rounds.begin(), rounds.end());
  return rounds[2];
}

int Main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const int64_t n = absl::GetFlag(FLAGS_batch);
  const double seconds = absl::GetFlag(FLAGS_seconds);
  SetComputeThreads(absl::GetFlag(FLAGS_threads));

  // The step: forward, loss, backward, SGD-momentum update.
  auto model = Model::Create(FashionMlpSpec(), {1, 28, 28}, 1);
  if (!model.ok()) return 1;
  v1::OptimizerSpec opt_spec;
  opt_spec.mutable_sgd()->set_lr(0.01f);
  opt_spec.mutable_sgd()->set_momentum(0.9f);
  auto optimizer = MakeOptimizer(opt_spec, (*model)->num_parameters());
  Tensor images({n, 1, 28, 28});
  std::vector<int32_t> labels(n);
  Rng rng({5});
  for (float& v : images.span()) v = static_cast<float>(rng.Uniform());
  for (int32_t& l : labels) l = static_cast<int32_t>(rng.Below(10));
  const double step = TimePerCall(
      [&] {
        (*model)->ComputeGradients(images, labels, 1.f / n);
        (*optimizer)->Step((*model)->flat_parameters(), (*model)->flat_gradients(), 0.01f);
      },
      seconds);

  // The bound: the step's eight sgemm calls alone.
  struct Gemm {
    char ta, tb;
    int64_t m, n, k;
  };
  const int64_t widths[] = {784, 512, 256, 10};
  std::vector<Gemm> gemms;
  for (int l = 0; l < 3; ++l) {
    const int64_t in = widths[l], out = widths[l + 1];
    gemms.push_back({'N', 'T', n, out, in});             // Y = X W^T
    gemms.push_back({'T', 'N', out, in, n});             // dW = dY^T X
    if (l > 0) gemms.push_back({'N', 'N', n, in, out});  // dX = dY W
  }
  std::vector<float> a(784 * 784 * 2, 0.01f), b(784 * 784 * 2, 0.02f), c(784 * 784 * 2);
  double bound = 0, flops = 0;
  for (const Gemm& g : gemms) {
    const int64_t lda = g.ta == 'N' ? g.k : g.m;
    const int64_t ldb = g.tb == 'N' ? g.n : g.k;
    bound += TimePerCall(
        [&] {
          dnnl_sgemm(g.ta, g.tb, g.m, g.n, g.k, 1.f, a.data(), lda, b.data(), ldb, 0.f, c.data(),
                     g.n);
        },
        seconds / 4);
    flops += 2.0 * g.m * g.n * g.k;
  }
  std::printf(
      "batch=%lld threads=%d samples_per_s=%.0f step_us=%.1f sgemm_bound_samples_per_s=%.0f "
      "bound_share=%.3f mflop_per_sample=%.3f sgemm_gflops=%.1f\n",
      static_cast<long long>(n), ComputeThreads(), n / step, step * 1e6, n / bound, bound / step,
      flops / n / 1e6, flops / bound / 1e9);
  return 0;
}

}  // namespace
}  // namespace nightshift

int main(int argc, char** argv) { return nightshift::Main(argc, argv); }
