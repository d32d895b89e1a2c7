#include "cluster/swim/detail/event_log.h"

#include <algorithm>

namespace hub::cluster::swim::detail {

bool EventLog::Window::Has(uint64_t id) const {
  if (id == 0) return true;  // ids start at 1: a zero is never delivered
  if (id > max_id) return false;
  if (id == max_id) return true;
  const uint64_t back = max_id - 1 - id;
  if (back >= kWindow) return true;
  return (bits[back / 64] >> (back % 64)) & 1;
}

void EventLog::Window::Add(uint64_t id) {
  if (id > max_id) {
    // Slide the window: the old max becomes bit (shift - 1).
    const uint64_t shift = id - max_id;
    std::array<uint64_t, kWindow / 64> moved{};
    for (uint64_t i = 0; i + shift < kWindow; ++i) {
      if ((bits[i / 64] >> (i % 64)) & 1) moved[(i + shift) / 64] |= uint64_t{1} << ((i + shift) % 64);
    }
    const uint64_t old = shift - 1;
    // max_id 0 means "nothing yet": there is no id 0 to remember.
    if (max_id != 0 && old < kWindow) moved[old / 64] |= uint64_t{1} << (old % 64);
    bits = moved;
    max_id = id;
    return;
  }
  const uint64_t back = max_id - 1 - id;
  if (back < kWindow) bits[back / 64] |= uint64_t{1} << (back % 64);
}

bool EventLog::Seen(const std::string& origin, uint64_t boot, uint64_t id) const {
  auto it = table_.find(Key(origin, boot));
  return it != table_.end() && it->second.Has(id);
}

bool EventLog::MarkSeen(const std::string& origin, uint64_t boot, uint64_t id) {
  auto it = table_.find(Key(origin, boot));
  if (it == table_.end()) {
    if (table_.size() >= max_origins_) {
      auto lru = std::min_element(table_.begin(), table_.end(), [](const auto& a, const auto& b) {
        return a.second.used < b.second.used;
      });
      table_.erase(lru);
    }
    it = table_.emplace(Key(origin, boot), Window{}).first;
  }
  it->second.used = ++stamp_;
  if (it->second.Has(id)) return false;
  it->second.Add(id);
  return true;
}

void EventLog::Remember(const WireEvent& e) {
  if (catchup_ == 0) return;
  recent_.push_back(e);
  while (recent_.size() > catchup_) recent_.pop_front();
}

std::vector<DigestEntry> EventLog::Digest() const {
  std::vector<DigestEntry> out;
  out.reserve(table_.size());
  for (const auto& [key, w] : table_) {
    out.push_back(DigestEntry{key.first, key.second, w.max_id, w.bits[0]});
  }
  return out;
}

std::vector<WireEvent> EventLog::Missing(const std::vector<DigestEntry>& digest) const {
  std::map<Key, const DigestEntry*> by_key;
  for (const DigestEntry& d : digest) by_key[Key(d.origin, d.boot)] = &d;
  std::vector<WireEvent> out;
  for (const WireEvent& e : recent_) {
    auto it = by_key.find(Key(e.origin, e.boot));
    if (it != by_key.end()) {
      const DigestEntry& d = *it->second;
      if (e.id == d.max_id) continue;
      if (e.id < d.max_id) {
        const uint64_t back = d.max_id - 1 - e.id;
        if (back >= 64 || ((d.mask >> back) & 1)) continue;
      }
    }
    out.push_back(e);
  }
  return out;
}

}  // namespace hub::cluster::swim::detail
