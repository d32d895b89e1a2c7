#pragma once
// The transmit-limited broadcast queue (memberlist queue.go): messages that
// ride piggyback on protocol packets and gossip rounds. Each is sent a
// bounded number of times (retransmit_mult * ceil(log10(n + 1)), computed by
// the caller at each take so it follows the cluster size), the least-sent and
// then the newest first. A message queued under a key replaces any older one
// under the same key (a newer alive/suspect/dead about a node makes the older
// one pointless). The depth is bounded: beyond it the most-sent, oldest
// message is dropped.

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

namespace hub::cluster::swim::detail {

using Bytes = std::vector<uint8_t>;

// retransmit_mult * ceil(log10(n + 1)), at least 1.
int RetransmitLimit(int retransmit_mult, size_t n);

class BroadcastQueue {
 public:
  explicit BroadcastQueue(size_t max_depth = 4096) : max_depth_(max_depth) {}

  // `key` empty: never invalidated. `max_transmits` 0: the limit given to Take.
  void Push(std::string key, Bytes msg, int max_transmits = 0);

  // Messages fitting in `budget` bytes, counting `overhead` more per message,
  // at most `max_count`. Each counts one transmission; one that reached its
  // limit leaves the queue.
  std::vector<Bytes> Take(size_t overhead, size_t budget, int transmit_limit,
                          size_t max_count = 255);

  size_t size() const { return items_.size(); }
  bool empty() const { return items_.empty(); }
  void Clear();

 private:
  struct Order {
    int transmits;
    uint64_t id;  // insertion order; newer first among equal transmits
    bool operator<(const Order& o) const {
      return transmits != o.transmits ? transmits < o.transmits : id > o.id;
    }
  };
  struct Item {
    std::string key;
    Bytes msg;
    int max_transmits;
  };

  void Erase(std::map<Order, Item>::iterator it);

  size_t max_depth_;
  uint64_t next_id_ = 0;
  std::map<Order, Item> items_;
  std::unordered_map<std::string, Order> by_key_;
};

}  // namespace hub::cluster::swim::detail
