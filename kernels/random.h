// Rng: a small, fully specified pseudo-random generator (SplitMix64 seeding
// xoshiro256**), so that initialization, shuffling and synthetic data are
// identical on every machine and standard library — unlike
// std::uniform_int_distribution, whose output is implementation-defined.
// Not thread-safe; cheap to copy.
#ifndef NIGHTSHIFT_KERNELS_RANDOM_H_
#define NIGHTSHIFT_KERNELS_RANDOM_H_

#include <cmath>
#include <cstdint>
#include <initializer_list>

namespace nightshift {

class Rng {
 public:
  // Seeds from a list of words (e.g. {job_seed, epoch}); different lists
  // give independent streams.
  explicit Rng(std::initializer_list<uint64_t> seed_words) {
    uint64_t x = 0x6a09e667f3bcc909ULL;
    for (uint64_t w : seed_words) x = SplitMix(x ^ SplitMix(w));
    for (uint64_t& s : state_) s = x = SplitMix(x);
  }

  uint64_t Next() {
    const uint64_t result = Rotl(state_[1] * 5, 7) * 9;
    const uint64_t t = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= t;
    state_[3] = Rotl(state_[3], 45);
    return result;
  }

  // Uniform in [0, n), n > 0 (Lemire's multiply-shift with rejection).
  uint64_t Below(uint64_t n) {
    while (true) {
      unsigned __int128 m = static_cast<unsigned __int128>(Next()) * n;
      uint64_t low = static_cast<uint64_t>(m);
      if (low >= n || low >= (-n) % n) return static_cast<uint64_t>(m >> 64);
    }
  }

  // Uniform in [0, 1) with 53 random bits.
  double Uniform() { return (Next() >> 11) * 0x1.0p-53; }
  double Uniform(double lo, double hi) { return lo + (hi - lo) * Uniform(); }

  // Standard normal (Box–Muller; one value per call for simplicity).
  double Normal() {
    double u1 = Uniform();
    while (u1 <= 0) u1 = Uniform();
    const double u2 = Uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
  }

 private:
  static uint64_t SplitMix(uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
  }
  static uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

  uint64_t state_[4];
};

}  // namespace nightshift

#endif  // NIGHTSHIFT_KERNELS_RANDOM_H_
