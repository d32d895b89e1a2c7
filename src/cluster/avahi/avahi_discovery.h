#pragma once
// AvahiDiscovery: Discovery through the machine's Avahi daemon (avahi-client
// over D-Bus). Publishes `<node_name>._stream-hub._tcp` (IPv4) with the TXT
// records of ServiceInfo, browses and resolves the same type, and reports
// every other node as a Candidate with source "avahi". See README.md.

#include <functional>
#include <memory>
#include <string>
#include <system_error>

#include "cluster/discovery/discovery.h"

namespace hub::cluster {

enum class avahi_errc {
  daemon_unreachable = 1,  // no D-Bus system bus, or no avahi-daemon on it, at Start
  client_failed,           // avahi-client refused to start (version mismatch, out of memory, ...)
  publish_failed,          // the daemon refused the service (bad name, bad TXT, ...)
  browse_failed,           // the daemon refused the browser
  already_started,
};
const std::error_category& avahi_category();
inline std::error_code make_error_code(avahi_errc e) { return {static_cast<int>(e), avahi_category()}; }

struct AvahiOptions {
  // Called on Avahi's thread each time the service is established on the
  // network, with the instance name actually in use: the node name, or an
  // alternative ("name #2") picked after a name collision. Default: none.
  std::function<void(const std::string& instance_name)> on_published;
};

// Thread-safety: Start and Stop from one owning thread (not from a callback);
// `found` and `on_published` run on Avahi's event-loop thread.
//
// Start fails with avahi_errc::daemon_unreachable when no daemon answers at
// that moment (the caller then falls back to the built-in mDNS responder).
// Once started, a daemon (or D-Bus) restart is survived: the client is created
// with AVAHI_CLIENT_NO_FAIL and recreated after a disconnection, and the
// service is published again and browsing resumes when the daemon is back.
class AvahiDiscovery final : public Discovery {
 public:
  explicit AvahiDiscovery(AvahiOptions options = {});
  ~AvahiDiscovery() override;  // Stop()
  AvahiDiscovery(const AvahiDiscovery&) = delete;
  AvahiDiscovery& operator=(const AvahiDiscovery&) = delete;

  Result<void> Start(const ServiceInfo& self, Found found) override;
  // Unpublishes, stops the event loop, then frees every Avahi object.
  // Idempotent; safe after a failed Start.
  void Stop() override;
  std::string_view name() const override { return "avahi"; }

  struct State;

 private:
  AvahiOptions options_;
  std::unique_ptr<State> state_;
};

// The TXT records published for `self`: self.txt, with version=1.0 and
// node_name=<self.node_name> added when absent.
std::map<std::string, std::string> ServiceTxt(const ServiceInfo& self);

// A candidate from a resolved service: TXT node_name (else, or when it is
// the unexpanded "%h" of a static service file, the instance name), TXT
// version (else empty), address "ip:port", source "avahi".
Candidate MakeAvahiCandidate(const std::string& instance_name, const std::string& ip, uint16_t port,
                             const std::map<std::string, std::string>& txt);

}  // namespace hub::cluster

template <>
struct std::is_error_code_enum<hub::cluster::avahi_errc> : std::true_type {};
