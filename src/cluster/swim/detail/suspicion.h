#pragma once
// Lifeguard suspicion (memberlist suspicion.go): a suspected member is
// declared dead when its timer runs out. The timer starts at `max` and, with
// each confirmation of the suspicion by another node (distinct senders only,
// at most `k` counted), shrinks logarithmically toward `min`:
//
//   timeout(c) = max - (max - min) * log(c + 1) / log(k + 1),  at least min
//
// so independent reports speed up detection while a lone (possibly
// unhealthy) accuser waits the longest.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace hub::cluster::swim::detail {

// The minimum suspicion timeout for a cluster of n members:
// mult * max(1, log10(max(1, n))) * probe_interval (memberlist suspicionTimeout).
int64_t SuspicionMinTimeout(int suspicion_mult, size_t n, int64_t probe_interval_ms);

// The timeout after `confirmations` of `k` expected, measured from the start
// (the formula above, floored to whole milliseconds).
int64_t SuspicionTimeout(int confirmations, int k, int64_t min_ms, int64_t max_ms);

class Suspicion {
 public:
  // `from` is the first accuser; k < 1 means no confirmations are expected
  // and the timeout is `min` from the start.
  Suspicion(std::string from, int k, int64_t min_ms, int64_t max_ms, int64_t start_ms);

  // Counts a confirmation from `from`; false when `from` already counted or
  // k confirmations are in (then the message need not be re-gossiped).
  bool Confirm(std::string_view from);
  int64_t deadline() const;
  int confirmations() const { return n_; }
  int k() const { return k_; }

 private:
  int k_;
  int n_ = 0;
  int64_t min_, max_, start_;
  std::vector<std::string> from_;  // at most k + 1 names
};

}  // namespace hub::cluster::swim::detail
