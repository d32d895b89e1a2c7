#include "cluster/sim/network.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <type_traits>

namespace hub::cluster::sim {
namespace {

uint64_t SplitMix(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t Finalize(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t HashBytes(const uint8_t* p, size_t n) {
  uint64_t h = 0x243f6a8885a308d3ULL ^ n;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    h = (h ^ w) * 0x100000001b3ULL;
    h ^= h >> 29;
  }
  uint64_t tail = 0;
  if (n > i) std::memcpy(&tail, p + i, n - i);  // an empty message may have no buffer at all
  return Finalize(h ^ tail);
}

uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

}  // namespace

Network::Network(NetworkOptions options) : options_(std::move(options)) {
  // xoshiro256** seeded through splitmix64: the same sequence on every
  // platform and standard library (std:: distributions are not portable).
  uint64_t s = options_.seed;
  for (auto& word : rng_) word = SplitMix(s);
  trace_ = Finalize(options_.seed);
  heap_.reserve(1 << 12);
}

Network::~Network() = default;

uint64_t Network::Next() {
  const uint64_t result = Rotl(rng_[1] * 5, 7) * 9;
  const uint64_t t = rng_[1] << 17;
  rng_[2] ^= rng_[0];
  rng_[3] ^= rng_[1];
  rng_[1] ^= rng_[2];
  rng_[0] ^= rng_[3];
  rng_[2] ^= t;
  rng_[3] = Rotl(rng_[3], 45);
  return result;
}

double Network::NextUnit() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }

uint64_t Network::Random(uint64_t bound) { return bound == 0 ? 0 : Next() % bound; }

void Network::Mix(uint64_t value) { trace_ = Finalize(Rotl(trace_, 23) ^ (value + 0x9e3779b97f4a7c15ULL)); }

int Network::Attach(std::string address, Endpoint* ep) {
  if (by_address_.count(address)) throw std::invalid_argument("sim: address in use: " + address);
  const int id = static_cast<int>(nodes_.size());
  nodes_.emplace_back();
  nodes_.back().address = address;
  by_address_.emplace(std::move(address), id);
  Up(id, ep);
  return id;
}

void Network::Down(int id) {
  Node& n = nodes_.at(id);
  n.up = false;
  n.ep = nullptr;
  ++n.epoch;
  ++n.tick_gen;
  n.scheduled = INT64_MAX;
}

void Network::Up(int id, Endpoint* ep) {
  Node& n = nodes_.at(id);
  if (n.up) throw std::logic_error("sim: endpoint already up: " + n.address);
  n.up = true;
  n.ep = ep;
  ++n.epoch;
  ++n.tick_gen;
  n.scheduled = INT64_MAX;
  Flush(id);
}

bool Network::up(int id) const { return nodes_.at(id).up; }

int Network::Find(std::string_view address) const {
  auto it = by_address_.find(address);
  return it == by_address_.end() ? -1 : it->second;
}

void Network::Poke(int id) {
  if (nodes_.at(id).up) Flush(id);
}

void Network::Partition(const std::vector<std::vector<int>>& groups) {
  for (auto& n : nodes_) n.group = 0;
  for (size_t g = 0; g < groups.size(); ++g)
    for (int id : groups[g]) nodes_.at(id).group = static_cast<int>(g) + 1;
}

void Network::Heal() {
  for (auto& n : nodes_) n.group = 0;
}

bool Network::CanReach(int from, int to) const { return nodes_[from].group == nodes_[to].group; }

void Network::Schedule(int64_t at, Kind kind, uint32_t ref, uint32_t gen) {
  heap_.push_back(Entry{at, seq_++, ref, gen, kind});
  std::push_heap(heap_.begin(), heap_.end(), Later{});
}

uint32_t Network::NewFlight() {
  if (!free_flights_.empty()) {
    const uint32_t slot = free_flights_.back();
    free_flights_.pop_back();
    return slot;
  }
  flights_.emplace_back();
  return static_cast<uint32_t>(flights_.size() - 1);
}

void Network::FreeFlight(uint32_t slot) {
  flights_[slot].bytes.clear();
  free_flights_.push_back(slot);
}

int64_t Network::Delay() {
  const auto& l = options_.link;
  return l.latency_ms + (l.jitter_ms > 0 ? static_cast<int64_t>(Random(l.jitter_ms + 1)) : 0);
}

void Network::Flush(int id, bool after_tick) {
  Node* n = &nodes_[id];
  std::vector<swim::Output> outs = n->ep->TakeOutputs();
  for (auto& out : outs) {
    if (auto* p = std::get_if<swim::SendPacket>(&out))
      Send(id, *p);
    else
      Open(id, std::get<swim::OpenStream>(out));
  }
  n = &nodes_[id];
  int64_t d = n->ep->NextDeadline();
  if (after_tick && d <= now_) {
    // A core that stays due after its Tick would spin the simulation.
    ++stats_.stuck_deadlines;
    d = now_ + 1;
  }
  if (d == n->scheduled) return;
  n->scheduled = d;
  ++n->tick_gen;
  if (d != INT64_MAX) Schedule(std::max(d, now_), Kind::kTick, static_cast<uint32_t>(id), n->tick_gen);
}

void Network::Send(int from, swim::SendPacket& p) {
  auto& c = nodes_[from].counters;
  ++c.packets_out;
  c.bytes_out += p.bytes.size();
  const int to = Find(p.to);
  if (to < 0) {
    ++stats_.unreachable;
    return;
  }
  if (!CanReach(from, to)) {
    ++stats_.blocked;
    return;
  }
  const auto& l = options_.link;
  if (l.loss > 0 && NextUnit() < l.loss) {
    ++stats_.lost;
    return;
  }
  const bool twice = l.duplicate > 0 && NextUnit() < l.duplicate;
  if (twice) {
    ++stats_.duplicated;
    const uint32_t slot = NewFlight();
    Flight& f = flights_[slot];
    f.from = from;
    f.to = to;
    f.bytes.assign(p.bytes.begin(), p.bytes.end());
    Schedule(now_ + Delay(), Kind::kDatagram, slot);
  }
  const uint32_t slot = NewFlight();
  Flight& f = flights_[slot];
  f.from = from;
  f.to = to;
  f.bytes = std::move(p.bytes);
  Schedule(now_ + Delay(), Kind::kDatagram, slot);
}

void Network::Open(int from, swim::OpenStream& s) {
  auto& c = nodes_[from].counters;
  ++c.streams_out;
  c.stream_bytes_out += s.bytes.size();
  ++stats_.streams;
  const uint32_t slot = NewFlight();
  Flight& f = flights_[slot];
  f.from = from;
  f.to = Find(s.to);
  f.from_epoch = nodes_[from].epoch;
  f.stream_id = s.id;
  f.deadline = now_ + std::max<int64_t>(s.timeout_ms, 0);
  f.bytes = std::move(s.bytes);
  const auto& l = options_.link;
  const bool fails = l.stream_failure > 0 && NextUnit() < l.stream_failure;
  if (fails || f.to < 0 || !nodes_[f.to].up || !CanReach(from, f.to) ||
      now_ + 2 * l.stream_latency_ms > f.deadline) {
    FailStream(slot);
    return;
  }
  Schedule(now_ + l.stream_latency_ms, Kind::kStreamRequest, slot);
}

void Network::FailStream(uint32_t slot) {
  Schedule(std::max(flights_[slot].deadline, now_), Kind::kStreamFail, slot);
}

void Network::RunUntil(int64_t until_ms) {
  while (!heap_.empty() && heap_.front().at <= until_ms) {
    std::pop_heap(heap_.begin(), heap_.end(), Later{});
    const Entry e = heap_.back();
    heap_.pop_back();
    now_ = std::max(now_, e.at);
    Dispatch(e);
  }
  now_ = std::max(now_, until_ms);
}

void Network::Dispatch(const Entry& e) {
  switch (e.kind) {
    case Kind::kTick: {
      Node& n = nodes_[e.ref];
      if (!n.up || e.gen != n.tick_gen) return;
      n.scheduled = INT64_MAX;
      ++stats_.ticks;
      n.ep->Tick(now_);
      Flush(static_cast<int>(e.ref), true);
      return;
    }
    case Kind::kDatagram: {
      const int from = flights_[e.ref].from, to = flights_[e.ref].to;
      swim::Bytes bytes = std::move(flights_[e.ref].bytes);
      FreeFlight(e.ref);
      Node& dst = nodes_[to];
      if (!dst.up) {
        ++stats_.unreachable;
        return;
      }
      if (!CanReach(from, to)) {
        ++stats_.blocked;
        return;
      }
      ++stats_.delivered;
      ++dst.counters.packets_in;
      dst.counters.bytes_in += bytes.size();
      Mix(static_cast<uint64_t>(now_) * 31 + 1);
      Mix((static_cast<uint64_t>(from) << 32) | static_cast<uint32_t>(to));
      Mix(HashBytes(bytes.data(), bytes.size()));
      dst.ep->HandlePacket(nodes_[from].address, bytes.data(), bytes.size(), now_);
      Flush(to);
      return;
    }
    case Kind::kStreamRequest: {
      Flight& f = flights_[e.ref];
      const int from = f.from, to = f.to;
      if (!nodes_[from].up || nodes_[from].epoch != f.from_epoch) {
        FreeFlight(e.ref);  // the opener crashed: its connection is gone
        return;
      }
      if (!nodes_[to].up || !CanReach(from, to)) {
        FailStream(e.ref);
        return;
      }
      Node& dst = nodes_[to];
      ++dst.counters.streams_in;
      dst.counters.stream_bytes_in += f.bytes.size();
      Mix(static_cast<uint64_t>(now_) * 31 + 2);
      Mix((static_cast<uint64_t>(from) << 32) | static_cast<uint32_t>(to));
      Mix(HashBytes(f.bytes.data(), f.bytes.size()));
      const swim::Bytes request = std::move(f.bytes);
      swim::Bytes reply = dst.ep->HandleStream(nodes_[from].address, request.data(), request.size(), now_);
      nodes_[to].counters.stream_bytes_out += reply.size();
      Flush(to);
      Flight& g = flights_[e.ref];  // Flush may have grown flights_
      g.bytes = std::move(reply);
      if (now_ + options_.link.stream_latency_ms > g.deadline)
        FailStream(e.ref);
      else
        Schedule(now_ + options_.link.stream_latency_ms, Kind::kStreamReply, e.ref);
      return;
    }
    case Kind::kStreamReply:
    case Kind::kStreamFail: {
      Flight& f = flights_[e.ref];
      const int from = f.from, to = f.to;
      const uint64_t id = f.stream_id;
      Node& opener = nodes_[from];
      if (!opener.up || opener.epoch != f.from_epoch) {
        FreeFlight(e.ref);
        return;
      }
      if (e.kind == Kind::kStreamReply && !CanReach(to, from)) {
        FailStream(e.ref);  // cut while the reply was on its way
        return;
      }
      std::optional<swim::Bytes> reply;
      if (e.kind == Kind::kStreamReply) {
        opener.counters.stream_bytes_in += f.bytes.size();
        Mix(static_cast<uint64_t>(now_) * 31 + 3);
        Mix(HashBytes(f.bytes.data(), f.bytes.size()) ^ id);
        reply = std::move(f.bytes);
      } else {
        ++opener.counters.streams_failed;
        ++stats_.streams_failed;
        Mix(static_cast<uint64_t>(now_) * 31 + 4);
        Mix(id);
      }
      FreeFlight(e.ref);
      opener.ep->HandleStreamReply(id, std::move(reply), now_);
      Flush(from);
      return;
    }
  }
}

}  // namespace hub::cluster::sim
