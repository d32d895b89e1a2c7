#include "cluster/sim/cluster.h"

#include <stdexcept>

namespace hub::cluster::sim {
namespace {

uint64_t Mix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t HashString(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ULL;
  return h;
}

std::string DefaultAddress(int id) {
  const int n = id + 1;  // 10.0.0.1, 10.0.0.2, ...
  return "10." + std::to_string((n >> 16) & 255) + "." + std::to_string((n >> 8) & 255) + "." +
         std::to_string(n & 255) + ":7946";
}

}  // namespace

// Records what its node tells the application, and mixes it into the trace.
class Cluster::Recorder : public swim::Delegate {
 public:
  Recorder(Cluster* cluster, int id) : cluster_(cluster), id_(id) {}

  std::string NodeMeta(size_t limit) override { return meta.substr(0, limit); }

  void OnEvent(const swim::Event& e) override {
    record.events.push_back(e);
    Mix(1, HashString(e.origin) ^ Mix64(e.id));
  }

  std::string LocalState(bool join) override {
    return std::string(join ? "join-state:" : "state:") + cluster_->name(id_);
  }

  void MergeRemoteState(std::string_view state, bool join) override {
    ++record.merges;
    if (join) ++record.join_merges;
    Mix(2, HashString(state));
  }

  void OnMemberChange(const swim::Member& m) override {
    const int64_t now = cluster_->now();
    const int member = cluster_->NameToId(m.name);
    record.changes.push_back(MemberChange{now, member, m.incarnation, m.state});
    Mix(3, (static_cast<uint64_t>(member) << 40) ^ (static_cast<uint64_t>(m.incarnation) << 8) ^
               static_cast<uint64_t>(m.state));
    if (member < 0) {
      ++record.unknown_members;
      return;
    }
    if (record.view.size() <= static_cast<size_t>(member)) record.view.resize(member + 1);
    MemberView& v = record.view[member];
    if (member != id_) {
      const bool was = v.known && v.state == swim::MemberState::kAlive;
      const bool is = m.state == swim::MemberState::kAlive;
      record.alive_others += static_cast<int>(is) - static_cast<int>(was);
    }
    if (!v.known || v.state != m.state) v.since_ms = now;
    v.known = true;
    v.state = m.state;
    v.incarnation = m.incarnation;
  }

  void OnNameConflict(const swim::Member& existing, const swim::Member& other) override {
    ++record.name_conflicts;
    Mix(4, HashString(existing.address) ^ HashString(other.address));
  }

  Record record;
  std::string meta;

 private:
  void Mix(uint64_t kind, uint64_t value) {
    auto& net = cluster_->net_;
    net.Mix((static_cast<uint64_t>(id_) << 8) | kind);
    net.Mix(value);
  }

  Cluster* cluster_;
  int id_;
};

// swim::Node as a network endpoint.
class Cluster::Endpoint : public sim::Endpoint {
 public:
  Endpoint(swim::Options options, swim::Delegate* delegate, uint64_t seed, int64_t now)
      : node(std::move(options), delegate, seed, now) {}

  void HandlePacket(std::string_view from, const uint8_t* data, size_t size, int64_t now) override {
    node.HandlePacket(from, data, size, now);
  }
  swim::Bytes HandleStream(std::string_view from, const uint8_t* data, size_t size,
                           int64_t now) override {
    return node.HandleStream(from, data, size, now);
  }
  void HandleStreamReply(uint64_t id, std::optional<swim::Bytes> reply, int64_t now) override {
    node.HandleStreamReply(id, std::move(reply), now);
  }
  void Tick(int64_t now) override { node.Tick(now); }
  int64_t NextDeadline() const override { return node.NextDeadline(); }
  std::vector<swim::Output> TakeOutputs() override { return node.TakeOutputs(); }

  swim::Node node;
};

Cluster::Cluster(ClusterOptions options)
    : options_(std::move(options)), net_(NetworkOptions{options_.seed, options_.link}) {}

Cluster::~Cluster() = default;

int Cluster::Add() { return Add(options_.node); }

int Cluster::Add(swim::Options options) {
  const int id = static_cast<int>(slots_.size());
  if (options.name.empty()) options.name = "node-" + std::to_string(id);
  if (options.address.empty()) options.address = DefaultAddress(id);
  if (!by_name_.emplace(options.name, id).second)
    throw std::invalid_argument("sim: name in use: " + options.name);
  slots_.emplace_back();
  slots_.back().options = std::move(options);
  Start(id);
  return id;
}

void Cluster::Start(int id) {
  Slot& s = slots_[id];
  s.delegate = std::make_unique<Recorder>(this, id);
  s.delegate->meta = "meta:" + s.options.name;
  const uint64_t seed = Mix64(Mix64(options_.seed) ^ Mix64((static_cast<uint64_t>(id) << 20) + s.life));
  s.endpoint = std::make_unique<Endpoint>(s.options, s.delegate.get(), seed, net_.now());
  if (id < net_.size()) {
    net_.Up(id, s.endpoint.get());
  } else {
    const int nid = net_.Attach(s.options.address, s.endpoint.get());
    if (nid != id) throw std::logic_error("sim: network and cluster ids diverged");
  }
}

int Cluster::AddJoined(int n, int64_t stagger_ms) {
  const int first = size();
  for (int k = 0; k < n; ++k) {
    const int id = Add();
    std::vector<int> seeds;
    if (id > 0 && up(0)) seeds.push_back(0);
    if (id > 1) {
      const int other = static_cast<int>(net_.Random(id));
      if (other != 0 && up(other)) seeds.push_back(other);
    }
    if (!seeds.empty()) Join(id, seeds);
    if (stagger_ms > 0) RunFor(stagger_ms);
  }
  return first;
}

void Cluster::Join(int id, const std::vector<int>& seeds) {
  std::vector<std::string> addresses;
  for (int s : seeds) addresses.push_back(slots_.at(s).options.address);
  node(id).Join(addresses, now());
  net_.Poke(id);
}

void Cluster::Broadcast(int id, std::string type, std::string payload) {
  node(id).Broadcast(std::move(type), std::move(payload), now());
  net_.Poke(id);
}

void Cluster::UpdateMeta(int id, std::string meta) {
  slots_.at(id).delegate->meta = std::move(meta);
  node(id).UpdateMeta(now());
  net_.Poke(id);
}

void Cluster::Leave(int id) {
  node(id).Leave(now());
  net_.Poke(id);
}

void Cluster::Kill(int id) {
  net_.Down(id);
  slots_.at(id).endpoint.reset();  // the record stays for inspection until Restart
}

void Cluster::Restart(int id) {
  if (up(id)) Kill(id);
  ++slots_.at(id).life;
  Start(id);
}

int Cluster::up_count() const {
  int n = 0;
  for (int i = 0; i < size(); ++i) n += up(i);
  return n;
}

swim::Node& Cluster::node(int id) {
  auto& ep = slots_.at(id).endpoint;
  if (!ep) throw std::logic_error("sim: node is down: " + name(id));
  return ep->node;
}

bool Cluster::RunUntil(const std::function<bool()>& done, int64_t max_ms, int64_t step_ms) {
  const int64_t end = now() + max_ms;
  while (!done()) {
    if (now() >= end) return false;
    net_.RunUntil(std::min(end, now() + step_ms));
  }
  return true;
}

const Record& Cluster::record(int id) const { return slots_.at(id).delegate->record; }

const MemberView& Cluster::View(int observer, int member) const {
  static const MemberView kUnknown;
  const auto& view = record(observer).view;
  return static_cast<size_t>(member) < view.size() ? view[member] : kUnknown;
}

bool Cluster::Converged() const {
  const int ups = up_count();
  for (int i = 0; i < size(); ++i) {
    if (!up(i)) continue;
    if (record(i).alive_others != ups - 1) return false;
    for (int j = 0; j < size(); ++j) {
      if (up(j)) continue;
      const MemberView& v = View(i, j);
      if (v.known && v.state == swim::MemberState::kAlive) return false;
    }
  }
  return true;
}

bool Cluster::AllSee(int member, swim::MemberState state) const {
  for (int i = 0; i < size(); ++i) {
    if (i == member || !up(i)) continue;
    const MemberView& v = View(i, member);
    if (!v.known || v.state != state) return false;
  }
  return true;
}

int64_t Cluster::FirstSeen(int observer, int member, swim::MemberState state, int64_t since_ms) const {
  for (const MemberChange& c : record(observer).changes)
    if (c.member == member && c.state == state && c.at_ms >= since_ms) return c.at_ms;
  return -1;
}

uint64_t Cluster::TotalBytesOut() const {
  uint64_t total = 0;
  for (int i = 0; i < size(); ++i) {
    const auto& c = net_.counters(i);
    total += c.bytes_out + c.stream_bytes_out;
  }
  return total;
}

int Cluster::NameToId(std::string_view name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? -1 : it->second;
}

}  // namespace hub::cluster::sim
