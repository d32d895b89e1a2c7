#pragma once
// The core's only source of randomness: splitmix64, seeded by the driver, so a
// run is reproducible from (seed, inputs) on every platform (the standard
// distributions are not portable between library implementations).

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace hub::cluster::swim::detail {

class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}

  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

  // Uniform in [0, n); n > 0 (rejection keeps it unbiased).
  uint64_t Below(uint64_t n) {
    const uint64_t threshold = (0 - n) % n;
    uint64_t x = Next();
    while (x < threshold) x = Next();
    return x % n;
  }

  template <typename T>
  void Shuffle(std::vector<T>& v) {
    for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[Below(i)]);
  }

 private:
  uint64_t state_;
};

}  // namespace hub::cluster::swim::detail
