#include "cluster/swim/node.h"

#include <algorithm>
#include <stdexcept>

#include "cluster/swim/detail/node_impl.h"

namespace hub::cluster::swim {

using detail::Message;

std::string_view ToString(MemberState s) {
  switch (s) {
    case MemberState::kAlive: return "alive";
    case MemberState::kSuspect: return "suspect";
    case MemberState::kDead: return "dead";
    case MemberState::kLeft: return "left";
  }
  return "unknown";
}

Options Options::Lan() { return Options{}; }

Options Options::Wan() {
  Options o;
  o.probe_interval_ms = 5'000;
  o.probe_timeout_ms = 3'000;
  o.gossip_interval_ms = 500;
  o.gossip_nodes = 4;
  o.gossip_to_dead_ms = 60'000;
  o.suspicion_mult = 6;
  o.stream_timeout_ms = 30'000;
  return o;
}

Options Options::Local() {
  Options o;
  o.probe_interval_ms = 1'000;
  o.probe_timeout_ms = 200;
  o.gossip_interval_ms = 100;
  o.gossip_to_dead_ms = 15'000;
  o.indirect_checks = 1;
  o.retransmit_mult = 2;
  o.suspicion_mult = 3;
  o.stream_timeout_ms = 1'000;
  return o;
}

namespace {

Options Checked(Options o) {
  if (o.name.empty() || o.name.size() > detail::kMaxName)
    throw std::invalid_argument("swim: Options::name must be 1..255 bytes (P2P_NODE_NAME)");
  if (o.address.empty() || o.address.size() > detail::kMaxName)
    throw std::invalid_argument("swim: Options::address must be a non-empty \"ip:port\"");
  // Zero or negative periods would spin the timers; the smallest sane values instead.
  o.probe_interval_ms = std::max<int64_t>(o.probe_interval_ms, 1);
  o.probe_timeout_ms = std::clamp<int64_t>(o.probe_timeout_ms, 1, o.probe_interval_ms);
  o.gossip_interval_ms = std::max<int64_t>(o.gossip_interval_ms, 1);
  o.push_pull_interval_ms = std::max<int64_t>(o.push_pull_interval_ms, 1);
  o.heartbeat_interval_ms = std::max<int64_t>(o.heartbeat_interval_ms, 1);
  o.stream_timeout_ms = std::max<int64_t>(o.stream_timeout_ms, 1);
  o.reap_dead_ms = std::max(o.reap_dead_ms, o.gossip_to_dead_ms);
  o.indirect_checks = std::max(o.indirect_checks, 0);
  o.gossip_nodes = std::max(o.gossip_nodes, 0);
  o.retransmit_mult = std::max(o.retransmit_mult, 1);
  o.suspicion_mult = std::max(o.suspicion_mult, 1);
  o.suspicion_max_timeout_mult = std::max(o.suspicion_max_timeout_mult, 1);
  o.awareness_max_multiplier = std::max(o.awareness_max_multiplier, 1);
  o.max_packet = std::max<size_t>(o.max_packet, 64);
  o.max_meta = std::min(o.max_meta, detail::kMaxMetaWire);
  o.max_event_payload = std::min(o.max_event_payload, detail::kMaxPayloadWire);
  return o;
}

}  // namespace

Node::Impl::Impl(Options options, Delegate* d, uint64_t seed, int64_t now)
    : opt(Checked(std::move(options))),
      delegate(d ? d : &fallback_delegate),
      rng(seed),
      awareness(opt.awareness_max_multiplier),
      events(opt.event_catchup) {
  boot = rng.Next();
  next_seq = static_cast<uint32_t>(rng.Next());
  // Random phases so that nodes started together do not probe and gossip in step.
  next_probe_at = now + static_cast<int64_t>(rng.Below(opt.probe_interval_ms));
  next_gossip_at = now + static_cast<int64_t>(rng.Below(opt.gossip_interval_ms));
  next_push_pull_at = now + static_cast<int64_t>(rng.Below(opt.push_pull_interval_ms));
  next_heartbeat_at = now + static_cast<int64_t>(rng.Below(opt.heartbeat_interval_ms));
  next_reap_at = now + opt.probe_interval_ms;
  AddSelf(now);
}

void Node::Impl::SendBytes(const std::string& to, Bytes bytes) {
  if (to == opt.address) return;
  stats.packets_out++;
  stats.bytes_out += bytes.size();
  outputs.emplace_back(SendPacket{to, std::move(bytes)});
}

void Node::Impl::Send(const std::string& to, const std::vector<Message>& msgs) {
  std::vector<Bytes> parts;
  size_t size = detail::kCompoundHeader;
  for (const Message& m : msgs) {
    parts.push_back(detail::EncodeMessage(m));
    size += detail::kCompoundPerPart + parts.back().size();
  }
  if (size < opt.max_packet && parts.size() < detail::kMaxCompound) {
    auto extra = queue.Take(detail::kCompoundPerPart, opt.max_packet - size, TransmitLimit(),
                            detail::kMaxCompound - parts.size());
    for (Bytes& b : extra) parts.push_back(std::move(b));
  }
  SendBytes(to, detail::EncodeParts(parts));
}

void Node::Impl::Open(PendingStream pending, Bytes bytes, int64_t timeout_ms, int64_t now) {
  if (pending.to == opt.address) return;
  // A driver that never answers must not grow this map without bound.
  constexpr size_t kMaxPending = 4096;
  while (streams.size() >= kMaxPending) streams.erase(streams.begin());
  const uint64_t id = next_stream_id++;
  pending.expires = now + timeout_ms + opt.stream_timeout_ms;
  std::string to = pending.to;
  streams.emplace(id, std::move(pending));
  stats.streams_out++;
  stats.bytes_out += bytes.size();
  outputs.emplace_back(OpenStream{id, std::move(to), std::move(bytes), timeout_ms});
}

std::vector<MemberEntry*> Node::Impl::RandomMembers(
    size_t k, const std::function<bool(const MemberEntry&)>& keep) {
  // memberlist kRandomNodes: up to 3n random draws, so a pick costs O(k) when
  // most members qualify and never more than O(n).
  std::vector<MemberEntry*> out;
  const size_t n = roster.size();
  for (size_t i = 0; i < 3 * n && out.size() < k; ++i) {
    MemberEntry* e = roster[rng.Below(n)];
    if (!keep(*e) || std::find(out.begin(), out.end(), e) != out.end()) continue;
    out.push_back(e);
  }
  return out;
}

void Node::Impl::Dispatch(Message& m, std::string_view from, int64_t now) {
  if (auto* p = std::get_if<detail::Ping>(&m)) return OnPing(*p, from, now);
  if (auto* p = std::get_if<detail::PingReq>(&m)) return OnPingReq(*p, from, now);
  if (auto* p = std::get_if<detail::Ack>(&m)) return OnAck(*p, now);
  if (auto* p = std::get_if<detail::Nack>(&m)) return OnNack(*p);
  if (auto* p = std::get_if<detail::Alive>(&m)) return OnAlive(*p, now);
  if (auto* p = std::get_if<detail::Suspect>(&m)) return OnSuspect(*p, now);
  if (auto* p = std::get_if<detail::Dead>(&m)) return OnDead(*p, now);
  if (auto* p = std::get_if<detail::WireEvent>(&m)) return OnEvent(*p, now);
}

// ---- Node ----

Node::Node(Options options, Delegate* delegate, uint64_t seed, int64_t now_ms)
    : impl_(std::make_unique<Impl>(std::move(options), delegate, seed, now_ms)) {}

Node::~Node() = default;

void Node::Join(const std::vector<std::string>& addresses, int64_t now_ms) {
  if (impl_->leaving) return;
  for (const std::string& a : addresses) {
    if (a != impl_->opt.address) impl_->StartPushPull(a, true, now_ms);
  }
}

void Node::Leave(int64_t now_ms) {
  Impl& s = *impl_;
  if (s.leaving) return;
  s.leaving = true;
  s.probe.active = false;
  MemberEntry& me = s.self();
  const detail::Dead d{me.m.incarnation, s.opt.name, s.opt.name};
  s.queue.Push(s.opt.name, detail::EncodeMessage(d));
  s.SetState(me, MemberState::kLeft, now_ms);
  s.Notify(me);
  // Spread the news at once rather than at the next gossip round.
  s.Gossip(now_ms);
}

void Node::HandlePacket(std::string_view from, const uint8_t* data, size_t size, int64_t now_ms) {
  Impl& s = *impl_;
  s.stats.packets_in++;
  s.stats.bytes_in += size;
  auto msgs = detail::DecodePacket(data, size);
  if (!msgs) {
    s.stats.malformed++;
    return;
  }
  if (s.leaving) return;
  for (const Message& m : *msgs) {
    // Streams only: a datagram carrying them is not ours to trust.
    if (std::holds_alternative<detail::PushPull>(m) || std::holds_alternative<detail::Events>(m)) {
      s.stats.malformed++;
      return;
    }
  }
  if (auto it = s.by_addr.find(std::string(from)); it != s.by_addr.end()) {
    if (auto m = s.members.find(it->second); m != s.members.end()) m->second.m.last_seen_ms = now_ms;
  }
  for (Message& m : *msgs) s.Dispatch(m, from, now_ms);
}

Bytes Node::HandleStream(std::string_view from, const uint8_t* data, size_t size, int64_t now_ms) {
  Impl& s = *impl_;
  s.stats.streams_in++;
  s.stats.bytes_in += size;
  if (size > s.opt.max_stream_message) {
    s.stats.malformed++;
    return {};
  }
  auto msgs = detail::DecodePacket(data, size);
  if (!msgs || msgs->size() != 1) {
    s.stats.malformed++;
    return {};
  }
  if (s.leaving) return {};
  Message& m = msgs->front();
  Bytes reply;
  if (auto* p = std::get_if<detail::Ping>(&m)) {
    if (p->target.empty() || p->target == s.opt.name) reply = detail::EncodePacket(detail::Ack{p->seq});
  } else if (auto* p = std::get_if<detail::PushPull>(&m)) {
    reply = s.AnswerPushPull(*p, now_ms);
  } else if (auto* p = std::get_if<detail::Events>(&m)) {
    s.OnEvents(std::move(p->events), now_ms);
  } else {
    s.stats.malformed++;
    return {};
  }
  (void)from;
  s.stats.bytes_out += reply.size();
  return reply;
}

void Node::HandleStreamReply(uint64_t id, std::optional<Bytes> reply, int64_t now_ms) {
  Impl& s = *impl_;
  auto it = s.streams.find(id);
  if (it == s.streams.end()) return;
  const PendingStream ps = std::move(it->second);
  s.streams.erase(it);
  if (reply) s.stats.bytes_in += reply->size();
  if (reply && reply->size() > s.opt.max_stream_message) {
    s.stats.malformed++;
    return;
  }
  if (s.leaving) return;
  switch (ps.kind) {
    case PendingStream::Kind::kPushPull:
      s.OnPushPullReply(ps, reply, now_ms);
      break;
    case PendingStream::Kind::kPing:
      s.OnStreamPingReply(ps, reply);
      break;
    case PendingStream::Kind::kEvents:
      break;
  }
}

void Node::Tick(int64_t now_ms) {
  Impl& s = *impl_;
  if (now_ms >= s.next_gossip_at) {
    s.Gossip(now_ms);
    s.next_gossip_at = std::max(s.next_gossip_at + s.opt.gossip_interval_ms, now_ms + 1);
  }
  if (s.leaving) return;
  if (s.probe.active && !s.probe.indirect_sent && now_ms >= s.probe.timeout_at) s.ProbeTimeout(now_ms);
  if (s.probe.active && now_ms >= s.probe.end_at) s.EndProbe(now_ms);
  if (now_ms >= s.next_probe_at) s.StartProbe(now_ms);
  if (!s.forwards.empty()) s.CheckForwards(now_ms);
  s.CheckSuspicions(now_ms);
  if (now_ms >= s.next_push_pull_at) {
    s.PushPullRound(now_ms);
    s.next_push_pull_at = now_ms + s.PushPullInterval();
  }
  if (now_ms >= s.next_heartbeat_at) {
    // Same incarnation: peers that know us drop it unchanged; one that lost
    // us (reaped after a partition) learns us again.
    s.QueueSelfAlive(s.opt.retransmit_mult);
    s.next_heartbeat_at = now_ms + s.opt.heartbeat_interval_ms;
  }
  if (now_ms >= s.next_reap_at) {
    s.Reap(now_ms);
    s.next_reap_at = now_ms + s.opt.probe_interval_ms;
  }
}

int64_t Node::NextDeadline() const {
  const Impl& s = *impl_;
  if (s.leaving) return s.queue.empty() ? kNever : s.next_gossip_at;
  int64_t t = std::min({s.next_gossip_at, s.next_probe_at, s.next_push_pull_at, s.next_heartbeat_at,
                        s.next_reap_at});
  if (s.probe.active) {
    t = std::min(t, s.probe.end_at);
    if (!s.probe.indirect_sent) t = std::min(t, s.probe.timeout_at);
  }
  for (const auto& [seq, f] : s.forwards) t = std::min(t, f.deadline);
  if (auto d = s.NextSuspicionDeadline()) t = std::min(t, *d);
  return t;
}

std::vector<Output> Node::TakeOutputs() {
  std::vector<Output> out;
  out.swap(impl_->outputs);
  return out;
}

void Node::Broadcast(std::string type, std::string payload, int64_t now_ms) {
  impl_->Emit(std::move(type), std::move(payload), now_ms);
}

void Node::UpdateMeta(int64_t now_ms) {
  Impl& s = *impl_;
  if (s.leaving) return;
  MemberEntry& me = s.self();
  std::string meta = s.delegate->NodeMeta(s.opt.max_meta);
  if (meta.size() > s.opt.max_meta) meta.resize(s.opt.max_meta);
  me.m.meta = std::move(meta);
  me.m.incarnation++;
  s.QueueSelfAlive();
  s.Notify(me);
  (void)now_ms;
}

std::vector<Member> Node::Members() const {
  std::vector<Member> out;
  out.reserve(impl_->members.size());
  for (const auto& [name, e] : impl_->members) out.push_back(e.m);
  std::sort(out.begin(), out.end(), [](const Member& a, const Member& b) { return a.name < b.name; });
  return out;
}

size_t Node::NumAlive() const { return impl_->counts[static_cast<size_t>(MemberState::kAlive)]; }

const Stats& Node::stats() const {
  impl_->stats.health = impl_->awareness.score();
  return impl_->stats;
}

const Options& Node::options() const { return impl_->opt; }

}  // namespace hub::cluster::swim
