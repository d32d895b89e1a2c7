#pragma once
// The in-process event bus: domain services publish what changed; the local
// index, live pages (and later the cluster) subscribe. Delivery is
// synchronous on the publisher's thread, in subscription order: subscribers
// must be quick and must not block (hand work to their own executor).
// Thread-safe. Events are hints; the durable truth is on the storage.

#include <functional>
#include <mutex>
#include <string>
#include <variant>
#include <vector>

namespace hub::events {

// A video was created, changed (metadata, status, progress) or deleted.
struct VideoChanged {
  std::string id;
  bool deleted = false;
  // Noticed rather than made here: read back after another process wrote it
  // (rescan, or a peer's hint). The cluster re-broadcasts only local changes.
  bool elsewhere = false;
};

using Event = std::variant<VideoChanged>;

class Bus {
 public:
  using Subscriber = std::function<void(const Event&)>;
  // Returns a token for Unsubscribe.
  int Subscribe(Subscriber s) {
    std::lock_guard lock(mu_);
    subs_.push_back({next_, std::move(s)});
    return next_++;
  }
  void Unsubscribe(int token) {
    std::lock_guard lock(mu_);
    std::erase_if(subs_, [&](const auto& e) { return e.first == token; });
  }
  void Publish(const Event& e) {
    std::vector<std::pair<int, Subscriber>> copy;
    {
      std::lock_guard lock(mu_);
      copy = subs_;
    }
    for (auto& [token, s] : copy) s(e);
  }

 private:
  std::mutex mu_;
  std::vector<std::pair<int, Subscriber>> subs_;
  int next_ = 1;
};

}  // namespace hub::events
