#pragma once
// Lifeguard local health awareness (memberlist awareness.go): a score in
// [0, max_multiplier - 1] that rises when this node misses acks or nacks it
// expected, or has to refute a suspicion of itself, and falls with each
// successful probe. A struggling node scales its probe timeout and interval
// by (score + 1), so it is slower to accuse others of what is its own fault.

#include <algorithm>
#include <cstdint>

namespace hub::cluster::swim::detail {

class Awareness {
 public:
  explicit Awareness(int max_multiplier) : max_(std::max(1, max_multiplier)) {}

  void Apply(int delta) { score_ = std::clamp(score_ + delta, 0, max_ - 1); }
  int score() const { return score_; }
  int64_t Scale(int64_t timeout_ms) const { return timeout_ms * (score_ + 1); }

 private:
  int max_;
  int score_ = 0;
};

}  // namespace hub::cluster::swim::detail
