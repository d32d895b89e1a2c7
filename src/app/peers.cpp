#include "app/peers.h"

#include <arpa/inet.h>
#include <sys/stat.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <mutex>
#include <set>

#include "cluster/avahi/avahi_discovery.h"
#include "cluster/discovery/static_seeds.h"
#include "cluster/envelope.h"
#include "cluster/mdns/mdns_discovery.h"
#include "cluster/transport.h"
#include "core/clock.h"
#include "core/metrics.h"

namespace hub::app {

namespace {

using nlohmann::json;
using cluster::swim::Member;
using cluster::swim::MemberState;

Error PeersError(std::string message) {
  return MakeError(std::make_error_code(std::errc::invalid_argument), std::move(message));
}

int64_t MtimeNanos(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return -1;
  return int64_t{st.st_mtim.tv_sec} * 1'000'000'000 + st.st_mtim.tv_nsec;
}

cluster::swim::Options SwimOptions(const config::Config& cfg) {
  cluster::swim::Options o = cfg.p2p_profile == "wan"     ? cluster::swim::Options::Wan()
                             : cfg.p2p_profile == "local" ? cluster::swim::Options::Local()
                                                          : cluster::swim::Options::Lan();
  o.name = cfg.p2p_node_name;
  // P2P_HEARTBEAT_INTERVAL: the period of each node's status re-broadcast and
  // of the anti-entropy rounds; failure detection keeps the preset's timers.
  o.heartbeat_interval_ms = int64_t{cfg.p2p_heartbeat_interval} * 1000;
  o.push_pull_interval_ms = int64_t{cfg.p2p_heartbeat_interval} * 1000;
  // A full state exchange of 1,000 members with the event catch-up is
  // ~0.3 MB; the cap bounds what a peer can make us buffer per stream.
  o.max_stream_message = 2 << 20;
  return o;
}

}  // namespace

struct Peers::Impl final : cluster::swim::Delegate {
  const config::Config cfg;
  PeersOptions options;
  PeersHooks hooks;
  SystemClock clock;
  std::unique_ptr<cluster::Cluster> cluster;
  std::vector<std::unique_ptr<cluster::Discovery>> discoveries;
  cluster::StaticSeeds* seeds = nullptr;  // one of `discoveries`, when P2P_SEEDS is set
  int64_t keyring_mtime = -1;
  int64_t next_rejoin_ms = 0;

  mutable std::mutex mu;
  struct Found {
    cluster::Candidate candidate;
    int64_t last_join_ms = 0;
  };
  std::map<std::string, Found> candidates;              // by address; guarded by mu
  std::map<std::string, std::string> sources;           // address -> "avahi", "mdns", "static"
  std::vector<std::string> last_node_ids;               // guarded by mu
  std::map<std::string, Member> known;                  // by name, from OnMemberChange; guarded by mu
  std::vector<std::string> discovery_names;             // what runs, for the snapshot

  Impl(config::Config c, PeersOptions o, PeersHooks h)
      : cfg(std::move(c)), options(std::move(o)), hooks(std::move(h)) {}

  // ---- swim::Delegate (on the cluster's strand) ----
  std::string NodeMeta(size_t limit) override {
    std::string meta =
        json{{"node_id", options.node_id}, {"http", options.http_port}, {"version", options.version}}.dump();
    return meta.size() <= limit ? meta : std::string();
  }

  void OnEvent(const cluster::swim::Event& e) override {
    if (e.origin == cfg.p2p_node_name) return;  // our own, delivered locally too
    if (e.type == "video" && hooks.video_changed) hooks.video_changed(e.payload);
    else if (e.type == "note" && hooks.note_changed) hooks.note_changed(e.payload);
  }

  void OnMemberChange(const Member& m) override {
    spdlog::info("cluster: {} ({}) is {} (incarnation {})", m.name, m.address, cluster::swim::ToString(m.state),
                 m.incarnation);
    {
      std::lock_guard lock(mu);
      known[m.name] = m;
    }
    UpdateOwnership();
  }

  void OnNameConflict(const Member& existing, const Member& other) override {
    spdlog::warn("cluster: two nodes are named {}: {} and {}; the first is kept — give each node its own "
                 "P2P_NODE_NAME", existing.name, existing.address, other.address);
  }

  // From the members as OnMemberChange reported them (never calls into the
  // cluster: this runs on its strand). A suspect still owns its jobs: they
  // move when it is declared dead, not at the first missed probe.
  void UpdateOwnership() {
    if (!hooks.members_changed) return;
    std::vector<std::string> ids = {options.node_id};
    {
      std::lock_guard lock(mu);
      for (const auto& [name, m] : known) {
        if (m.is_self || (m.state != MemberState::kAlive && m.state != MemberState::kSuspect)) continue;
        json meta = json::parse(m.meta, nullptr, false);
        if (meta.is_object() && meta["node_id"].is_string()) ids.push_back(meta["node_id"].get<std::string>());
      }
      std::sort(ids.begin(), ids.end());
      ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
      if (ids == last_node_ids) return;
      last_node_ids = ids;
    }
    hooks.members_changed(std::move(ids));
  }

  // ---- discovery ----
  void OnFound(const cluster::Candidate& c) {
    if (!cluster || c.address == cluster->address()) return;
    {
      std::lock_guard lock(mu);
      auto& f = candidates[c.address];
      bool is_new = f.candidate.address.empty();
      f.candidate = c;
      sources[c.address] = c.source;
      if (!is_new) return;
      f.last_join_ms = clock.NowUnixMillis();
    }
    spdlog::info("cluster: found {} at {} by {}", c.node_name.empty() ? "a node" : c.node_name, c.address, c.source);
    cluster->Join({c.address});
  }

  Result<void> StartDiscovery() {
    cluster::ServiceInfo self;
    self.node_name = cfg.p2p_node_name;
    self.port = cluster->port();
    self.txt = {{"version", options.version}, {"node_name", cfg.p2p_node_name}};
    auto found = [this](const cluster::Candidate& c) { OnFound(c); };
    std::set<std::string> wanted;
    for (size_t at = 0; at <= cfg.p2p_discovery.size();) {
      size_t comma = cfg.p2p_discovery.find(',', at);
      if (comma == std::string::npos) comma = cfg.p2p_discovery.size();
      wanted.insert(cfg.p2p_discovery.substr(at, comma - at));
      at = comma + 1;
    }
    bool advertised = false;
    if (wanted.count("avahi")) {
      auto avahi = std::make_unique<cluster::AvahiDiscovery>();
      if (auto r = avahi->Start(self, found); r) {
        spdlog::info("cluster: discovery through the Avahi daemon");
        discoveries.push_back(std::move(avahi));
        discovery_names.push_back("avahi");
        advertised = true;
      } else {
        spdlog::info("cluster: no Avahi daemon ({}); {}", r.error().message,
                     wanted.count("mdns") ? "using the built-in mDNS responder" : "mDNS is not in P2P_DISCOVERY");
      }
    }
    // The built-in responder only where Avahi is not doing it: one host
    // must not answer for the same service twice.
    if (wanted.count("mdns") && !advertised) {
      cluster::MdnsOptions mo;
      // A node bound to one address announces and browses on that interface only.
      if (cfg.p2p_bind != "0.0.0.0" && cfg.p2p_bind != "::") mo.interfaces = {cfg.p2p_bind};
      auto mdns = std::make_unique<cluster::MdnsDiscovery>(std::move(mo));
      if (auto r = mdns->Start(self, found); r) {
        spdlog::info("cluster: discovery through the built-in mDNS responder");
        discoveries.push_back(std::move(mdns));
        discovery_names.push_back("mdns");
      } else {
        spdlog::warn("cluster: built-in mDNS unavailable: {}", r.error().message);
      }
    }
    if (!cfg.p2p_seeds.empty()) {
      auto parsed = cluster::ParseSeeds(cfg.p2p_seeds);
      if (!parsed) return PeersError("P2P_SEEDS: " + parsed.error().message);
      cluster::StaticSeedsOptions so;
      so.seeds = std::move(*parsed);
      auto st = std::make_unique<cluster::StaticSeeds>(std::move(so));
      if (auto r = st->Start(self, found); !r) spdlog::warn("cluster: seeds: {} (retried)", r.error().message);
      seeds = st.get();
      discoveries.push_back(std::move(st));
      discovery_names.push_back("static");
    } else if (wanted.count("static") && wanted.size() == 1) {
      spdlog::warn("cluster: P2P_DISCOVERY=static but P2P_SEEDS is empty: this node waits for others to join it");
    }
    return Ok();
  }

  Result<cluster::Keyring> LoadKeyring() {
    if (!cfg.p2p_keyring_file.empty()) {
      auto ring = cluster::Keyring::Load(cfg.p2p_keyring_file);
      if (ring && !ring->empty()) {
        keyring_mtime = MtimeNanos(cfg.p2p_keyring_file);
        return ring;
      }
      // A missing file is created from P2P_CLUSTER_KEY (first start).
      if (cfg.p2p_cluster_key.empty() || MtimeNanos(cfg.p2p_keyring_file) >= 0) {
        return PeersError("P2P_KEYRING_FILE " + cfg.p2p_keyring_file + ": " +
                          (ring ? std::string("holds no key") : ring.error().message));
      }
      auto key = cluster::Keyring::ParseKey(cfg.p2p_cluster_key);
      if (!key) return PeersError("P2P_CLUSTER_KEY: " + key.error().message);
      cluster::Keyring created(*key);
      if (auto w = created.Save(cfg.p2p_keyring_file); !w)
        return PeersError("cannot write P2P_KEYRING_FILE: " + w.error().message);
      keyring_mtime = MtimeNanos(cfg.p2p_keyring_file);
      return created;
    }
    if (cfg.p2p_cluster_key.empty()) {
      return PeersError("P2P_ENABLED=true needs a cluster key: every gossip packet is encrypted. Create one with "
                        "`stream-hub keygen` and set the same P2P_CLUSTER_KEY (or P2P_KEYRING_FILE) on every node");
    }
    auto key = cluster::Keyring::ParseKey(cfg.p2p_cluster_key);
    if (!key) return PeersError("P2P_CLUSTER_KEY: " + key.error().message);
    return cluster::Keyring(*key);
  }
};

Result<std::unique_ptr<Peers>> Peers::Start(const config::Config& cfg, boost::asio::io_context& io,
                                            Metrics& metrics, PeersOptions options, PeersHooks hooks) {
  auto impl = std::make_unique<Impl>(cfg, std::move(options), std::move(hooks));
  if (!cfg.p2p_advertise_addr.empty()) {
    in_addr a{};
    if (::inet_pton(AF_INET, cfg.p2p_advertise_addr.c_str(), &a) != 1)
      return PeersError("P2P_ADVERTISE_ADDR must be an IPv4 address, e.g. 192.168.1.10");
  }
  auto ring = impl->LoadKeyring();
  if (!ring) return ring.error();
  cluster::TransportOptions to;
  to.bind = cfg.p2p_bind;
  to.port = cfg.p2p_port;
  to.advertise_host = cfg.p2p_advertise_addr;
  to.envelope.label = cfg.p2p_label;
  // At most 16 x 2 MiB buffered for frames whose key is not yet checked.
  to.max_inbound_streams = 16;
  Impl* raw = impl.get();
  impl->cluster = std::make_unique<cluster::Cluster>(io, SwimOptions(cfg), to, std::move(*ring), raw, &metrics);
  if (auto r = impl->cluster->Start(); !r) return PeersError("P2P_PORT " + std::to_string(cfg.p2p_port) + ": " +
                                                             r.error().message);
  spdlog::info("cluster: node {} gossiping on {} (profile {}, label \"{}\")", cfg.p2p_node_name,
               impl->cluster->address(), cfg.p2p_profile, cfg.p2p_label);
  HUB_TRY(impl->StartDiscovery());
  impl->UpdateOwnership();
  return std::unique_ptr<Peers>(new Peers(std::move(impl)));
}

Peers::Peers(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Peers::~Peers() { Stop(); }

void Peers::Publish(const std::string& type, const std::string& id) {
  if (impl_->cluster) impl_->cluster->Broadcast(type, id);
}

void Peers::Tick() {
  Impl& m = *impl_;
  if (!m.cluster) return;
  if (!m.cfg.p2p_keyring_file.empty()) {
    int64_t mtime = MtimeNanos(m.cfg.p2p_keyring_file);
    if (mtime >= 0 && mtime != m.keyring_mtime) {
      m.keyring_mtime = mtime;
      auto ring = cluster::Keyring::Load(m.cfg.p2p_keyring_file);
      if (ring && !ring->empty()) {
        m.cluster->SetKeyring(std::move(*ring));
        spdlog::info("cluster: keyring reloaded from {}", m.cfg.p2p_keyring_file);
      } else {
        spdlog::warn("cluster: keyring {} not reloaded: {}", m.cfg.p2p_keyring_file,
                     ring ? "it holds no key" : ring.error().message);
      }
    }
  }
  // Candidates that are not (or no longer) alive members are contacted again
  // every 10 s: after a partition heals, or when a node came back.
  int64_t now = m.clock.NowUnixMillis();
  if (now < m.next_rejoin_ms) return;
  m.next_rejoin_ms = now + 10'000;
  std::set<std::string> alive;
  for (const Member& mem : m.cluster->Members()) {
    if (mem.state == MemberState::kAlive) alive.insert(mem.address);
  }
  std::vector<std::string> again;
  {
    std::lock_guard lock(m.mu);
    for (auto& [addr, f] : m.candidates) {
      if (!alive.count(addr)) {
        again.push_back(addr);
        f.last_join_ms = now;
      }
    }
  }
  if (m.seeds && alive.size() <= 1) (void)m.seeds->Refresh();
  if (!again.empty()) m.cluster->Join(std::move(again));
}

nlohmann::json Peers::Snapshot() const {
  const Impl& m = *impl_;
  json members = json::array();
  if (!m.cluster) return json{{"enabled", true}, {"members", members}};
  std::map<std::string, std::string> sources;
  {
    std::lock_guard lock(m.mu);
    sources = m.sources;
  }
  int64_t now = m.clock.NowUnixMillis();
  for (const Member& mem : m.cluster->Members()) {
    json meta = json::parse(mem.meta, nullptr, false);
    json j = {{"id", mem.name},
              {"name", mem.name},
              {"address", mem.address},
              {"state", std::string(cluster::swim::ToString(mem.state))},
              {"incarnation", mem.incarnation},
              {"self", mem.is_self},
              {"protocol", mem.protocol}};
    j["last_seen"] = mem.is_self ? json(FormatRfc3339(now * 1'000'000))
                     : mem.last_seen_ms > 0 ? json(FormatRfc3339(mem.last_seen_ms * 1'000'000))
                                            : json(nullptr);
    j["state_since"] = mem.state_since_ms > 0 ? json(FormatRfc3339(mem.state_since_ms * 1'000'000)) : json(nullptr);
    j["rtt_ms"] = mem.rtt_ms >= 0 ? json(std::round(mem.rtt_ms * 100) / 100) : json(nullptr);
    j["version"] = meta.is_object() && meta["version"].is_string() ? meta["version"] : json(nullptr);
    j["node_id"] = meta.is_object() && meta["node_id"].is_string() ? meta["node_id"] : json(nullptr);
    j["http_port"] = meta.is_object() && meta["http"].is_number_unsigned() ? meta["http"] : json(nullptr);
    auto src = sources.find(mem.address);
    j["source"] = mem.is_self ? json("self") : src != sources.end() ? json(src->second) : json("gossip");
    members.push_back(std::move(j));
  }
  auto st = m.cluster->Stats();
  json rejected = json::object();
  for (int i = 0; i < 7; ++i) {
    if (st.rejected[i]) rejected[std::string(cluster::ToString(static_cast<cluster::OpenFailure>(i)))] = st.rejected[i];
  }
  return json{{"enabled", true},
              {"node", m.cfg.p2p_node_name},
              {"address", m.cluster->address()},
              {"label", m.cfg.p2p_label},
              {"profile", m.cfg.p2p_profile},
              {"discovery", m.discovery_names},
              {"members", std::move(members)},
              {"stats",
               {{"packets_in", st.packets_in},
                {"packets_out", st.packets_out},
                {"bytes_in", st.bytes_in},
                {"bytes_out", st.bytes_out},
                {"rejected", std::move(rejected)},
                {"dropped", st.dropped}}}};
}

void Peers::Stop() {
  Impl& m = *impl_;
  for (auto& d : m.discoveries) d->Stop();
  if (m.cluster) m.cluster->Stop();
}

}  // namespace hub::app
