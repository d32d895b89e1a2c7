#pragma once
// What the node knows of cluster events: which it has seen (for exactly-once
// delivery), the last few it delivered (sent in push-pull so a rejoining node
// or a healed partition catches up), and the Lamport clock.
//
// Seen-tracking is per origin life (origin name, boot id): a window of the
// last kWindow ids below the highest seen. Ids older than the window count as
// seen, so a very late duplicate is never delivered twice; the price is that
// an event more than kWindow ids behind its origin's newest is dropped (events
// are hints). The table of origin lives is bounded; the least recently used
// is forgotten first.

#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "cluster/swim/detail/codec.h"

namespace hub::cluster::swim::detail {

class EventLog {
 public:
  static constexpr uint64_t kWindow = 256;

  EventLog(size_t catchup, size_t max_origins = 4096)
      : catchup_(catchup), max_origins_(max_origins) {}

  // Records (origin, boot, id) as seen; false when it already was.
  bool MarkSeen(const std::string& origin, uint64_t boot, uint64_t id);
  bool Seen(const std::string& origin, uint64_t boot, uint64_t id) const;

  // Keeps `e` among the last `catchup` events.
  void Remember(const WireEvent& e);
  const std::deque<WireEvent>& recent() const { return recent_; }

  // What this node has seen, for a peer to send only what it lacks.
  std::vector<DigestEntry> Digest() const;
  // The recent events a node with `digest` has not seen, oldest first.
  std::vector<WireEvent> Missing(const std::vector<DigestEntry>& digest) const;

  // Lamport clock: Tick for an emission, Observe for a delivery.
  uint64_t Tick() { return ++clock_; }
  void Observe(uint64_t remote) { clock_ = (remote > clock_ ? remote : clock_) + 1; }
  uint64_t clock() const { return clock_; }

  size_t origins() const { return table_.size(); }

 private:
  struct Window {
    uint64_t max_id = 0;
    std::array<uint64_t, kWindow / 64> bits{};  // bit i: id max_id - 1 - i seen
    uint64_t used = 0;                           // LRU stamp
    bool Has(uint64_t id) const;
    void Add(uint64_t id);
  };
  using Key = std::pair<std::string, uint64_t>;

  size_t catchup_;
  size_t max_origins_;
  uint64_t clock_ = 0;
  uint64_t stamp_ = 0;
  std::map<Key, Window> table_;
  std::deque<WireEvent> recent_;
};

}  // namespace hub::cluster::swim::detail
