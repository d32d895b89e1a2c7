#include "cluster/swim/detail/broadcast_queue.h"

#include <cmath>

namespace hub::cluster::swim::detail {

int RetransmitLimit(int retransmit_mult, size_t n) {
  const auto scale = static_cast<int>(std::ceil(std::log10(static_cast<double>(n) + 1.0)));
  const int limit = retransmit_mult * scale;
  return limit < 1 ? 1 : limit;
}

void BroadcastQueue::Erase(std::map<Order, Item>::iterator it) {
  if (!it->second.key.empty()) by_key_.erase(it->second.key);
  items_.erase(it);
}

void BroadcastQueue::Push(std::string key, Bytes msg, int max_transmits) {
  if (!key.empty()) {
    if (auto old = by_key_.find(key); old != by_key_.end()) {
      items_.erase(old->second);
      by_key_.erase(old);
    }
  }
  const Order order{0, next_id_++};
  if (!key.empty()) by_key_.emplace(key, order);
  items_.emplace(order, Item{std::move(key), std::move(msg), max_transmits});
  while (items_.size() > max_depth_) Erase(std::prev(items_.end()));
}

std::vector<Bytes> BroadcastQueue::Take(size_t overhead, size_t budget, int transmit_limit,
                                        size_t max_count) {
  std::vector<Bytes> out;
  std::vector<Order> taken;
  size_t left = budget;
  // A smaller message further on may still fit after one that does not, but
  // looking through a long queue for it on every packet costs more than the
  // few bytes it would save.
  constexpr int kMaxSkips = 16;
  int skips = 0;
  for (auto it = items_.begin(); it != items_.end() && out.size() < max_count; ++it) {
    if (left <= overhead) break;
    const size_t cost = it->second.msg.size() + overhead;
    if (cost > left) {
      if (++skips > kMaxSkips) break;
      continue;
    }
    left -= cost;
    out.push_back(it->second.msg);
    taken.push_back(it->first);
  }
  for (const Order& o : taken) {
    auto node = items_.extract(o);
    Item& item = node.mapped();
    const int limit = item.max_transmits > 0 ? item.max_transmits : transmit_limit;
    const int sent = o.transmits + 1;
    if (sent >= limit) {
      if (!item.key.empty()) by_key_.erase(item.key);
      continue;
    }
    node.key() = Order{sent, o.id};
    if (!item.key.empty()) by_key_[item.key] = node.key();
    items_.insert(std::move(node));
  }
  return out;
}

void BroadcastQueue::Clear() {
  items_.clear();
  by_key_.clear();
}

}  // namespace hub::cluster::swim::detail
