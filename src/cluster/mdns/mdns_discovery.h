#pragma once
// The built-in mDNS discovery (P2P_DISCOVERY=mdns): the sans-IO Engine
// (engine.h) on a UDP socket bound to 0.0.0.0:5353 with SO_REUSEADDR and
// SO_REUSEPORT (so it can share the port with Avahi or another responder),
// joined to 224.0.0.251 on each chosen interface, multicast TTL 255.
//
// It runs its own io_context on its own thread: mDNS traffic is tiny, and
// Start/Stop stay synchronous whatever executor the caller runs on (Stop waits
// for the goodbyes to be sent, which it could not do safely from inside a
// shared io_context's handler). Every read is limited to max_read bytes;
// datagrams from off-link sources whose IP TTL is not 255 are dropped
// (RFC 6762 §11).
//
// Thread-safe: Start, Stop, stats and instance may be called from any thread
// except from inside `found` / `on_event`, which run on the mDNS thread.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "cluster/discovery/discovery.h"
#include "cluster/mdns/engine.h"

namespace hub::cluster {

struct MdnsOptions {
  // IPv4 addresses of the interfaces to use, e.g. {"192.168.1.10"}; empty =
  // every interface that is up, not loopback, multicast-capable and has one.
  std::vector<std::string> interfaces;
  std::string host;                     // host label (<host>.local); "" = from node_name
  uint16_t port = mdns::kPort;          // 5353; another port only for experiments
  size_t max_read = 9000;               // larger datagrams are dropped (RFC 6762 §17)
  bool check_ttl = true;                // drop off-link datagrams with IP TTL != 255
  uint64_t seed = 0;                    // jitter seed; 0 = random
  // Every engine event (found, removed, advertised, renamed), on the mDNS
  // thread, after `found` for kFound. Optional; must be quick.
  std::function<void(const mdns::Event&)> on_event;
};

struct MdnsStats {
  mdns::EngineStats engine;
  uint64_t dropped_offlink = 0;         // failed the TTL-255 / on-link check
  uint64_t dropped_oversize = 0;        // longer than max_read
  uint64_t send_errors = 0;
};

class MdnsDiscovery final : public Discovery {
 public:
  explicit MdnsDiscovery(MdnsOptions options = {});
  ~MdnsDiscovery() override;            // Stop()

  // Opens the socket and starts probing and browsing. TXT version=1.0 and
  // node_name=<self.node_name> are added when `self.txt` lacks them. Errors
  // (errc::socket) say which interface or port failed and what to do.
  Result<void> Start(const ServiceInfo& self, Found found) override;
  // Sends goodbyes for what was announced, closes the socket, joins the thread.
  void Stop() override;
  std::string_view name() const override { return "mdns"; }

  MdnsStats stats() const;
  std::string instance() const;         // the advertised instance label (after renames)

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace hub::cluster
