#include "cluster/avahi/avahi_discovery.h"

#include <avahi-client/client.h>
#include <avahi-client/lookup.h>
#include <avahi-client/publish.h>
#include <avahi-common/address.h>
#include <avahi-common/alternative.h>
#include <avahi-common/error.h>
#include <avahi-common/malloc.h>
#include <avahi-common/strlst.h>
#include <avahi-common/thread-watch.h>
#include <avahi-common/timeval.h>
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <optional>

namespace hub::cluster {

namespace {

class Category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "hub.cluster.avahi"; }
  std::string message(int ev) const override {
    switch (static_cast<avahi_errc>(ev)) {
      case avahi_errc::daemon_unreachable: return "no Avahi daemon is reachable over D-Bus";
      case avahi_errc::client_failed: return "the Avahi client could not start";
      case avahi_errc::publish_failed: return "the Avahi daemon refused to publish the service";
      case avahi_errc::browse_failed: return "the Avahi daemon refused to browse";
      case avahi_errc::already_started: return "Avahi discovery is already started";
    }
    return "unknown avahi error";
  }
};

// Retry delays after the client failed (daemon or D-Bus gone). Immediately
// after a disconnection the new client simply waits (NO_FAIL) for the daemon;
// only when D-Bus itself is down does the retry loop spin, at this pace.
constexpr int kRetryMs = 2000;
constexpr int kMaxRenames = 100;

bool Connected(AvahiClientState s) {
  return s == AVAHI_CLIENT_S_RUNNING || s == AVAHI_CLIENT_S_REGISTERING || s == AVAHI_CLIENT_S_COLLISION;
}

std::string BusAddress() {
  const char* a = std::getenv("DBUS_SYSTEM_BUS_ADDRESS");
  return a && *a ? a : "unix:path=/run/dbus/system_bus_socket (the default)";
}

}  // namespace

const std::error_category& avahi_category() {
  static const Category kCategory;
  return kCategory;
}

std::map<std::string, std::string> ServiceTxt(const ServiceInfo& self) {
  auto txt = self.txt;
  txt.try_emplace("version", "1.0");
  txt.try_emplace("node_name", self.node_name);
  return txt;
}

Candidate MakeAvahiCandidate(const std::string& instance_name, const std::string& ip, uint16_t port,
                             const std::map<std::string, std::string>& txt) {
  Candidate c;
  c.address = ip + ":" + std::to_string(port);
  auto it = txt.find("node_name");
  // "%h" is what deploy/avahi/stream-hub.service carries when installed
  // without substitution (Avahi expands %h in the name only); the instance
  // name is then the host name, i.e. the default node name.
  c.node_name = it != txt.end() && !it->second.empty() && it->second != "%h" ? it->second : instance_name;
  it = txt.find("version");
  c.version = it != txt.end() ? it->second : std::string();
  c.source = "avahi";
  return c;
}

// Everything below runs on the threaded poll's thread, except Start (before
// the poll thread exists) and Stop (after it has been joined): no locks.
struct AvahiDiscovery::State {
  AvahiOptions options;
  ServiceInfo self;
  std::map<std::string, std::string> txt;
  Found found;
  std::string instance_name;          // self.node_name, or its alternative after collisions

  AvahiThreadedPoll* poll = nullptr;
  AvahiClient* client = nullptr;
  AvahiEntryGroup* group = nullptr;   // owned by `client`
  AvahiServiceBrowser* browser = nullptr;  // owned by `client`
  AvahiTimeout* retry = nullptr;

  bool starting = true;               // errors go to start_error instead of the log
  std::optional<Error> start_error;
  bool dbus_down_logged = false;

  const AvahiPoll* api() const { return avahi_threaded_poll_get(poll); }
  void Fail(avahi_errc code, std::string message);
  void Publish(AvahiClient* c);
  void Browse(AvahiClient* c);
  void ScheduleRetry(int delay_ms);
  void Reconnect();
  void Rename();
};

namespace {

void OnClient(AvahiClient* c, AvahiClientState state, void* userdata);

void OnGroup(AvahiEntryGroup* g, AvahiEntryGroupState state, void* userdata) {
  auto* st = static_cast<AvahiDiscovery::State*>(userdata);
  switch (state) {
    case AVAHI_ENTRY_GROUP_ESTABLISHED:
      spdlog::info("avahi: published '{}' ({}) on port {}", st->instance_name, kServiceType, st->self.port);
      if (st->options.on_published) st->options.on_published(st->instance_name);
      break;
    case AVAHI_ENTRY_GROUP_COLLISION:
      // Another host owns the name on the LAN: take "name #2" and publish again.
      st->Rename();
      avahi_entry_group_reset(g);
      st->Publish(avahi_entry_group_get_client(g));
      break;
    case AVAHI_ENTRY_GROUP_FAILURE:
      spdlog::error("avahi: publishing '{}' failed: {}", st->instance_name,
                    avahi_strerror(avahi_client_errno(avahi_entry_group_get_client(g))));
      break;
    case AVAHI_ENTRY_GROUP_UNCOMMITED:
    case AVAHI_ENTRY_GROUP_REGISTERING:
      break;
  }
}

std::map<std::string, std::string> TxtMap(AvahiStringList* txt) {
  std::map<std::string, std::string> out;
  for (AvahiStringList* l = txt; l; l = avahi_string_list_get_next(l)) {
    char* key = nullptr;
    char* value = nullptr;
    size_t size = 0;
    if (avahi_string_list_get_pair(l, &key, &value, &size) < 0) continue;
    out.try_emplace(key, value ? std::string(value, size) : std::string());
    avahi_free(key);
    avahi_free(value);
  }
  return out;
}

void OnResolved(AvahiServiceResolver* r, AvahiIfIndex, AvahiProtocol, AvahiResolverEvent event,
                const char* name, const char*, const char*, const char*, const AvahiAddress* address,
                uint16_t port, AvahiStringList* txt, AvahiLookupResultFlags flags, void* userdata) {
  auto* st = static_cast<AvahiDiscovery::State*>(userdata);
  if (event == AVAHI_RESOLVER_FOUND && address) {
    // OUR_OWN: published by this very client. LOCAL on our port: published
    // for this node by the local daemon, e.g. from a static service file.
    // Another hub on this machine (LOCAL, other port) is a real peer.
    bool ours = (flags & AVAHI_LOOKUP_RESULT_OUR_OWN) ||
                ((flags & AVAHI_LOOKUP_RESULT_LOCAL) && port == st->self.port);
    if (!ours) {
      char ip[AVAHI_ADDRESS_STR_MAX];
      avahi_address_snprint(ip, sizeof ip, address);
      Candidate cand = MakeAvahiCandidate(name, ip, port, TxtMap(txt));
      spdlog::debug("avahi: found '{}' at {}", cand.node_name, cand.address);
      if (st->found) st->found(cand);
    }
  } else if (event == AVAHI_RESOLVER_FAILURE) {
    spdlog::debug("avahi: resolving '{}' failed: {}", name,
                  avahi_strerror(avahi_client_errno(avahi_service_resolver_get_client(r))));
  }
  avahi_service_resolver_free(r);
}

void OnBrowse(AvahiServiceBrowser* b, AvahiIfIndex iface, AvahiProtocol proto, AvahiBrowserEvent event,
              const char* name, const char* type, const char* domain, AvahiLookupResultFlags flags,
              void* userdata) {
  auto* st = static_cast<AvahiDiscovery::State*>(userdata);
  AvahiClient* c = avahi_service_browser_get_client(b);
  switch (event) {
    case AVAHI_BROWSER_NEW:
      if (flags & AVAHI_LOOKUP_RESULT_OUR_OWN) break;
      // The resolver frees itself in OnResolved; the client frees any still
      // pending when it is freed.
      if (!avahi_service_resolver_new(c, iface, proto, name, type, domain, AVAHI_PROTO_INET,
                                      static_cast<AvahiLookupFlags>(0), OnResolved, st)) {
        spdlog::warn("avahi: cannot resolve '{}': {}", name, avahi_strerror(avahi_client_errno(c)));
      }
      break;
    case AVAHI_BROWSER_REMOVE:
      // Liveness is gossip's business; a withdrawn advertisement is only logged.
      spdlog::debug("avahi: '{}' withdrawn", name);
      break;
    case AVAHI_BROWSER_FAILURE:
      spdlog::error("avahi: browsing {} failed: {}", kServiceType, avahi_strerror(avahi_client_errno(c)));
      break;
    case AVAHI_BROWSER_ALL_FOR_NOW:
    case AVAHI_BROWSER_CACHE_EXHAUSTED:
      break;
  }
}

void OnRetry(AvahiTimeout*, void* userdata) { static_cast<AvahiDiscovery::State*>(userdata)->Reconnect(); }

void OnClient(AvahiClient* c, AvahiClientState state, void* userdata) {
  auto* st = static_cast<AvahiDiscovery::State*>(userdata);
  // Called from inside avahi_client_new before it returns, so `c` is the
  // authority, not st->client.
  st->client = c;
  switch (state) {
    case AVAHI_CLIENT_S_RUNNING:
      st->dbus_down_logged = false;
      st->Publish(c);
      st->Browse(c);
      break;
    case AVAHI_CLIENT_S_COLLISION:
    case AVAHI_CLIENT_S_REGISTERING:
      // The daemon is (re)establishing its host name: our records go with it
      // and are added again when it is running.
      if (st->group) avahi_entry_group_reset(st->group);
      break;
    case AVAHI_CLIENT_CONNECTING:
      spdlog::warn("avahi: waiting for avahi-daemon to appear on D-Bus");
      break;
    case AVAHI_CLIENT_FAILURE: {
      int err = avahi_client_errno(c);
      if (st->starting) {
        st->Fail(avahi_errc::client_failed, avahi_strerror(err));
        break;
      }
      // A disconnection (daemon restarted, D-Bus restarted): this client and
      // all its objects are dead. Replace it from the event loop — not from
      // inside its own callback.
      spdlog::warn("avahi: lost the daemon ({}); reconnecting", avahi_strerror(err));
      st->ScheduleRetry(0);
      break;
    }
  }
}

}  // namespace

void AvahiDiscovery::State::Fail(avahi_errc code, std::string message) {
  if (starting) {
    if (!start_error) start_error = MakeError(make_error_code(code), std::move(message));
  } else {
    spdlog::error("avahi: {}", message);
  }
}

void AvahiDiscovery::State::Rename() {
  char* alt = avahi_alternative_service_name(instance_name.c_str());
  spdlog::warn("avahi: service name '{}' is taken on the network; using '{}'", instance_name, alt);
  instance_name = alt;
  avahi_free(alt);
}

void AvahiDiscovery::State::Publish(AvahiClient* c) {
  if (!group && !(group = avahi_entry_group_new(c, OnGroup, this))) {
    Fail(avahi_errc::publish_failed,
         std::string("cannot create an Avahi entry group: ") + avahi_strerror(avahi_client_errno(c)));
    return;
  }
  if (!avahi_entry_group_is_empty(group)) return;
  AvahiStringList* strlst = nullptr;
  for (const auto& [k, v] : txt) strlst = avahi_string_list_add_pair(strlst, k.c_str(), v.c_str());
  strlst = avahi_string_list_reverse(strlst);
  int r = 0;
  for (int attempt = 0; attempt <= kMaxRenames; ++attempt) {
    r = avahi_entry_group_add_service_strlst(group, AVAHI_IF_UNSPEC, AVAHI_PROTO_INET,
                                             static_cast<AvahiPublishFlags>(0), instance_name.c_str(),
                                             kServiceType, nullptr, nullptr, self.port, strlst);
    if (r != AVAHI_ERR_COLLISION) break;
    // Taken on this very daemon (another local publisher has the name).
    Rename();
    avahi_entry_group_reset(group);
  }
  avahi_string_list_free(strlst);
  if (r >= 0) r = avahi_entry_group_commit(group);
  if (r < 0) {
    Fail(avahi_errc::publish_failed, "cannot publish '" + instance_name + "' (" + kServiceType +
                                         ", port " + std::to_string(self.port) + "): " + avahi_strerror(r));
  }
}

void AvahiDiscovery::State::Browse(AvahiClient* c) {
  if (browser) return;
  browser = avahi_service_browser_new(c, AVAHI_IF_UNSPEC, AVAHI_PROTO_INET, kServiceType, nullptr,
                                      static_cast<AvahiLookupFlags>(0), OnBrowse, this);
  if (!browser) {
    Fail(avahi_errc::browse_failed,
         std::string("cannot browse ") + kServiceType + ": " + avahi_strerror(avahi_client_errno(c)));
  }
}

void AvahiDiscovery::State::ScheduleRetry(int delay_ms) {
  struct timeval tv;
  avahi_elapse_time(&tv, delay_ms, 0);
  if (retry) {
    api()->timeout_update(retry, &tv);
  } else {
    retry = api()->timeout_new(api(), &tv, OnRetry, this);
  }
}

void AvahiDiscovery::State::Reconnect() {
  api()->timeout_update(retry, nullptr);  // disarm until needed again
  if (client) avahi_client_free(client);  // frees the group, browser and resolvers too
  client = nullptr;
  group = nullptr;
  browser = nullptr;
  int err = 0;
  // NO_FAIL: with D-Bus up the client waits in CONNECTING for the daemon and
  // calls OnClient(S_RUNNING) when it appears; only D-Bus itself being down
  // makes this fail, and then we poll.
  AvahiClient* c = avahi_client_new(api(), AVAHI_CLIENT_NO_FAIL, OnClient, this, &err);
  if (!c) {
    if (!dbus_down_logged) {
      spdlog::warn("avahi: D-Bus unreachable ({}): {}; retrying every {} ms", BusAddress(), avahi_strerror(err),
                   kRetryMs);
      dbus_down_logged = true;
    }
    ScheduleRetry(kRetryMs);
    return;
  }
  client = c;
}

AvahiDiscovery::AvahiDiscovery(AvahiOptions options) : options_(std::move(options)) {}

AvahiDiscovery::~AvahiDiscovery() { Stop(); }

Result<void> AvahiDiscovery::Start(const ServiceInfo& self, Found found) {
  if (state_) return MakeError(make_error_code(avahi_errc::already_started), "Avahi discovery is already started");
  auto st = std::make_unique<State>();
  st->options = options_;
  st->self = self;
  st->txt = ServiceTxt(self);
  st->found = std::move(found);
  st->instance_name = self.node_name;

  if (!(st->poll = avahi_threaded_poll_new())) {
    return MakeError(make_error_code(avahi_errc::client_failed), "cannot create the Avahi event loop");
  }
  // Frees what Start built when it fails; the poll thread is not running yet.
  auto abandon = [&st] {
    if (st->retry) st->api()->timeout_free(st->retry);
    if (st->client) avahi_client_free(st->client);
    avahi_threaded_poll_free(st->poll);
  };

  // Reachability, decided once with the very client we keep: with NO_FAIL,
  // avahi_client_new still fails when the D-Bus system bus cannot be reached,
  // and returns a client in CONNECTING when the bus is up but no avahi-daemon
  // owns org.freedesktop.Avahi (both checked synchronously inside the call).
  // Either means "no daemon now": report it so the caller can fall back.
  // A second plain probe client would add a window in which the answer
  // changes; this check has none.
  int err = 0;
  st->client = avahi_client_new(st->api(), AVAHI_CLIENT_NO_FAIL, OnClient, st.get(), &err);
  if (!st->client) {
    abandon();
    return MakeError(make_error_code(err == AVAHI_ERR_NO_DAEMON || err == AVAHI_ERR_DBUS_ERROR ||
                                              err == AVAHI_ERR_DISCONNECTED
                                          ? avahi_errc::daemon_unreachable
                                          : avahi_errc::client_failed),
                     "cannot reach the Avahi daemon: D-Bus system bus at " + BusAddress() + ": " +
                         avahi_strerror(err) +
                         ". Start dbus and avahi-daemon, or set P2P_DISCOVERY=mdns to use the built-in responder");
  }
  if (avahi_client_get_state(st->client) == AVAHI_CLIENT_CONNECTING) {
    abandon();
    return MakeError(make_error_code(avahi_errc::daemon_unreachable),
                     "cannot reach the Avahi daemon: D-Bus at " + BusAddress() +
                         " answers but no avahi-daemon is registered on it. Start avahi-daemon, or set "
                         "P2P_DISCOVERY=mdns to use the built-in responder");
  }
  if (st->start_error) {
    Error e = *st->start_error;
    abandon();
    return e;
  }
  st->starting = false;
  if (avahi_threaded_poll_start(st->poll) < 0) {
    abandon();
    return MakeError(make_error_code(avahi_errc::client_failed), "cannot start the Avahi event-loop thread");
  }
  state_ = std::move(st);
  return Ok();
}

void AvahiDiscovery::Stop() {
  if (!state_) return;
  State& st = *state_;
  // Join the event loop first: after this no callback runs and nothing else
  // touches the Avahi objects, so they can be freed from this thread.
  avahi_threaded_poll_stop(st.poll);
  if (st.group && st.client && Connected(avahi_client_get_state(st.client))) {
    // Withdraws the records now (the daemon sends goodbye packets); freeing
    // the client alone would also do it, once the daemon notices the
    // disconnection.
    avahi_entry_group_free(st.group);
  }
  st.group = nullptr;
  if (st.retry) st.api()->timeout_free(st.retry);
  if (st.client) avahi_client_free(st.client);
  avahi_threaded_poll_free(st.poll);
  spdlog::info("avahi: stopped; '{}' withdrawn", st.instance_name);
  state_.reset();
}

}  // namespace hub::cluster
