#include "cluster/swim/detail/suspicion.h"

#include <algorithm>
#include <cmath>

namespace hub::cluster::swim::detail {

int64_t SuspicionMinTimeout(int suspicion_mult, size_t n, int64_t probe_interval_ms) {
  const double scale = std::max(1.0, std::log10(std::max(1.0, static_cast<double>(n))));
  // memberlist rounds the scale to milliseconds-per-thousand before multiplying.
  const auto scale_milli = static_cast<int64_t>(scale * 1000);
  return suspicion_mult * scale_milli * probe_interval_ms / 1000;
}

int64_t SuspicionTimeout(int confirmations, int k, int64_t min_ms, int64_t max_ms) {
  if (k < 1) return min_ms;
  const double frac = std::log(confirmations + 1.0) / std::log(k + 1.0);
  const double raw = static_cast<double>(max_ms) - frac * static_cast<double>(max_ms - min_ms);
  return std::max(min_ms, static_cast<int64_t>(std::floor(raw)));
}

Suspicion::Suspicion(std::string from, int k, int64_t min_ms, int64_t max_ms, int64_t start_ms)
    : k_(k), min_(min_ms), max_(std::max(min_ms, max_ms)), start_(start_ms) {
  from_.push_back(std::move(from));
}

bool Suspicion::Confirm(std::string_view from) {
  if (n_ >= k_) return false;
  if (std::find(from_.begin(), from_.end(), from) != from_.end()) return false;
  from_.emplace_back(from);
  ++n_;
  return true;
}

int64_t Suspicion::deadline() const { return start_ + SuspicionTimeout(n_, k_, min_, max_); }

}  // namespace hub::cluster::swim::detail
