#pragma once
// Metrics in Prometheus text format (exposition format 0.0.4). Counters and
// gauges with a fixed label set, created once and updated lock-free.
// Thread-safe.

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace hub {

using Labels = std::vector<std::pair<std::string, std::string>>;

class Metrics {
 public:
  // A series is (name, labels). The returned reference lives as long as the
  // registry. `help` and `type` are recorded on first use of `name`.
  std::atomic<int64_t>& Counter(const std::string& name, const Labels& labels,
                                const std::string& help);
  std::atomic<int64_t>& Gauge(const std::string& name, const Labels& labels,
                              const std::string& help);
  // The whole registry as Prometheus text.
  std::string Render() const;

 private:
  std::atomic<int64_t>& Get(const std::string& name, const Labels& labels,
                            const std::string& help, const char* type);
  struct Family {
    std::string help, type;
    std::map<std::string, std::atomic<int64_t>*> series;  // rendered labels -> value
  };
  mutable std::mutex mu_;
  std::map<std::string, Family> families_;
  std::deque<std::atomic<int64_t>> values_;  // stable addresses
};

}  // namespace hub
