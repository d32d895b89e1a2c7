#pragma once
// StaticSeeds: Discovery from a fixed list (P2P_SEEDS=host:port,...), for
// networks without multicast. Each seed is resolved to IPv4 at Start (the
// gossip sockets are IPv4) and every address is reported as a Candidate with
// source "static"; node name and version stay empty until gossip tells them.
// Nothing is advertised: the other nodes find this one when it joins them.
//
// Unresolvable seeds: Start fails (seeds_errc::unresolvable, naming every
// seed and why) only when no seed yields an address, since then the node
// could never join anyone; otherwise it succeeds, logs each failure and
// keeps it in problems(). Seeds are reported once; Refresh resolves and
// reports again, for a caller that retries joining (a seed that was not up,
// a name that DNS did not know yet). The list may include this node itself:
// the caller ignores joining its own address.

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "cluster/discovery/discovery.h"
#include "core/result.h"

namespace hub::cluster {

enum class seeds_errc {
  bad_seeds = 1,    // P2P_SEEDS does not parse (ParseSeeds)
  unresolvable,     // no seed resolved to an IPv4 address (Start)
  already_started,
};
const std::error_category& seeds_category();
inline std::error_code make_error_code(seeds_errc e) { return {static_cast<int>(e), seeds_category()}; }

struct Seed {
  std::string host;      // a name, an IPv4 literal, or an IPv6 literal without brackets
  uint16_t port = 0;     // 1..65535
  bool ipv6 = false;     // written as [addr]:port
  std::string text() const;  // "host:port" or "[addr]:port", as it would be written
};

// Parses "host:port,host2:port2,[fe80::1]:6881". Whitespace around entries
// is ignored; "" (or only whitespace) is an empty list. An error
// (seeds_errc::bad_seeds) names the entry and what is wrong: an empty entry
// (",," or a trailing comma), a missing or bad port (not 1..65535), an IPv6
// address without brackets or not valid inside them, a URL, a host name with
// characters outside [A-Za-z0-9.-_].
Result<std::vector<Seed>> ParseSeeds(std::string_view text);

// host -> its IPv4 addresses as dotted quads, or an error saying why not.
// Must be thread-safe.
using Resolver = std::function<Result<std::vector<std::string>>(const std::string& host)>;

// getaddrinfo(AF_INET): may block for the system resolver's timeout.
Result<std::vector<std::string>> ResolveIPv4(const std::string& host);

struct StaticSeedsOptions {
  std::vector<Seed> seeds;   // from ParseSeeds(P2P_SEEDS); empty: Start fails
  Resolver resolve;          // default (empty): ResolveIPv4
};

// Thread-safe. `found` runs on the thread that calls Start or Refresh, never
// concurrently with itself, and not after Stop returns; it must not call
// back into this object.
class StaticSeeds final : public Discovery {
 public:
  explicit StaticSeeds(StaticSeedsOptions options);
  ~StaticSeeds() override;   // Stop()

  // Resolves every seed (blocking, without holding a lock) and reports each
  // address. After an `unresolvable` error the object is started all the
  // same, so Refresh can retry.
  Result<void> Start(const ServiceInfo& self, Found found) override;
  // Resolves again and reports every address again (callers de-duplicate).
  // A no-op before Start and after Stop. The same error rule as Start.
  Result<void> Refresh();
  void Stop() override;      // idempotent
  std::string_view name() const override { return "static"; }

  // The seeds that gave no address at the last Start/Refresh, each with why.
  std::vector<std::string> problems() const;

 private:
  Result<void> ResolveAndReport();

  StaticSeedsOptions options_;
  mutable std::mutex mu_;
  bool started_ = false;
  bool stopped_ = false;
  Found found_;
  std::vector<std::string> problems_;
};

}  // namespace hub::cluster

template <>
struct std::is_error_code_enum<hub::cluster::seeds_errc> : std::true_type {};
