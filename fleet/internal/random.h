// RandomStream: the generator's source of randomness. Internal to fleet/
// (listed in srcs, not hdrs, so no other package can include it).
//
// A stream is a SplitMix64 sequence (Steele, Lea and Flood, "Fast
// splittable pseudorandom number generators", OOPSLA 2014) whose start is
// a hash of (seed, vehicle, stream id), so every vehicle and every one of
// its days has a stream of its own: vehicle i's trace depends on nothing
// but (seed, i), in any order or thread. The distributions are written
// out here rather than taken from <random>, whose algorithms differ
// between standard libraries: the same seed gives the same trace with any
// compiler (up to the last bit of libm's exp/log/cos).
//
// Not thread-safe; cheap to copy; one per vehicle and purpose.
#ifndef NIGHTSHIFT_FLEET_INTERNAL_RANDOM_H_
#define NIGHTSHIFT_FLEET_INTERNAL_RANDOM_H_

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace nightshift::fleet::internal {

// SplitMix64's output function: a bijective 64-bit mix.
inline uint64_t Mix64(uint64_t x) {
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

class RandomStream {
 public:
  RandomStream(uint64_t seed, uint64_t vehicle, uint64_t stream)
      : state_(Mix64(Mix64(Mix64(seed) + vehicle) + stream)) {}

  uint64_t Next() {
    state_ += 0x9e3779b97f4a7c15ULL;
    return Mix64(state_);
  }
  // In [0, 1), 53 random bits.
  double Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }
  double Uniform(double lo, double hi) { return lo + (hi - lo) * Uniform(); }
  bool Bernoulli(double p) { return Uniform() < p; }
  // Box-Muller; the second value of the pair is dropped so that a draw's
  // position in the stream never depends on an earlier draw's kind.
  double Normal(double mean, double sd) {
    const double u = 1.0 - Uniform();  // (0, 1]: log(u) is finite
    const double v = Uniform();
    return mean + sd * std::sqrt(-2.0 * std::log(u)) * std::cos(2.0 * M_PI * v);
  }
  double ClampedNormal(double mean, double sd, double lo, double hi) {
    return std::clamp(Normal(mean, sd), lo, hi);
  }
  // A log-normal with this mean (not median) and log-space spread sigma.
  double LogNormalWithMean(double mean, double sigma) {
    return mean * std::exp(Normal(-0.5 * sigma * sigma, sigma));
  }
  // Knuth's product method: for the small means used here (< 5).
  int Poisson(double mean) {
    const double limit = std::exp(-mean);
    int k = 0;
    for (double p = Uniform(); p > limit && k < 64; p *= Uniform()) ++k;
    return k;
  }

 private:
  uint64_t state_;
};

}  // namespace nightshift::fleet::internal

#endif  // NIGHTSHIFT_FLEET_INTERNAL_RANDOM_H_
