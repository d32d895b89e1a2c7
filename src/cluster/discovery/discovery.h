#pragma once
// Discovery finds candidate peers; liveness comes from gossip, never from
// here. Three sources: Avahi (avahi-client, when a daemon is reachable), the
// built-in mDNS responder/browser (RFC 6762/6763), static seeds (P2P_SEEDS).
// Each advertises this node as `<node_name>._stream-hub._tcp.local` on
// P2P_PORT with TXT version=1.0 and node_name=<P2P_NODE_NAME> (mDNS/Avahi) and
// reports what it finds.

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "core/result.h"

namespace hub::cluster {

inline constexpr char kServiceType[] = "_stream-hub._tcp";

struct ServiceInfo {                    // what this node advertises
  std::string node_name;                // P2P_NODE_NAME; the DNS-SD instance name
  uint16_t port = 6881;                 // P2P_PORT
  std::map<std::string, std::string> txt;  // at least version, node_name
};

struct Candidate {
  std::string address;                  // "ip:port" to join
  std::string node_name;                // from TXT node_name (or the instance name)
  std::string version;                  // TXT version
  std::string source;                   // "avahi", "mdns" or "static"
};

// Started once, stopped once. `found` may be called from any thread, more
// than once for the same candidate (callers de-duplicate); it must be quick.
class Discovery {
 public:
  using Found = std::function<void(const Candidate&)>;
  virtual ~Discovery() = default;
  virtual Result<void> Start(const ServiceInfo& self, Found found) = 0;
  // Withdraws the advertisement (goodbye packets / unpublish) and stops browsing.
  virtual void Stop() = 0;
  virtual std::string_view name() const = 0;   // "avahi", "mdns", "static"
};

}  // namespace hub::cluster
