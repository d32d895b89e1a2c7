// Failure detection (SWIM with Lifeguard, memberlist state.go probeNode): one
// member per probe interval, in a shuffled round-robin. A direct ping; if no
// ack within the probe timeout, `indirect_checks` members are asked to ping
// it for us (and to nack if they cannot reach it) while the driver tries a
// TCP ping in parallel; with no ack by the end of the interval the member is
// suspected. Both periods are scaled by the local health score.
#include <algorithm>

#include "cluster/swim/detail/node_impl.h"

namespace hub::cluster::swim {

using detail::Ack;
using detail::Message;
using detail::Nack;
using detail::Ping;
using detail::PingReq;

namespace {

bool Probeable(const MemberEntry& e) {
  return !e.m.is_self && (e.m.state == MemberState::kAlive || e.m.state == MemberState::kSuspect);
}

}  // namespace

void Node::Impl::StartProbe(int64_t now) {
  const int64_t interval = awareness.Scale(opt.probe_interval_ms);
  next_probe_at = now + interval;
  MemberEntry* target = nullptr;
  // At most one reshuffle per call: when nobody is probeable, wait a round.
  for (int pass = 0; pass < 2 && !target; ++pass) {
    while (probe_index < probe_order.size()) {
      auto it = members.find(probe_order[probe_index++]);
      if (it != members.end() && Probeable(it->second)) {
        target = &it->second;
        break;
      }
    }
    if (target) break;
    probe_order.clear();
    for (const auto& [name, e] : members) {
      if (!e.m.is_self) probe_order.push_back(name);
    }
    rng.Shuffle(probe_order);
    probe_index = 0;
  }
  if (!target) return;

  probe = Probe{};
  probe.active = true;
  probe.target = target->m.name;
  probe.addr = target->m.address;
  probe.seq = next_seq++;
  probe.start = now;
  probe.timeout_at = now + std::min(awareness.Scale(opt.probe_timeout_ms), interval);
  probe.end_at = now + interval;
  stats.probes++;

  std::vector<Message> msgs{Ping{probe.seq, probe.target, opt.name, opt.address}};
  if (target->m.state == MemberState::kSuspect) {
    // Lifeguard "buddy system": tell a suspect it is suspected so that it can
    // refute at once instead of waiting for the gossip to reach it.
    msgs.emplace_back(detail::Suspect{target->m.incarnation, target->m.name, opt.name});
  }
  Send(probe.addr, msgs);
}

void Node::Impl::ProbeTimeout(int64_t now) {
  probe.indirect_sent = true;
  const std::string& target = probe.target;
  auto helpers = RandomMembers(static_cast<size_t>(opt.indirect_checks), [&](const MemberEntry& e) {
    return e.m.state == MemberState::kAlive && e.m.name != target;
  });
  for (MemberEntry* h : helpers) {
    Send(h->m.address, {PingReq{probe.seq, target, probe.addr, true, opt.name, opt.address}});
    probe.expected_nacks++;
  }
  // TCP reaches some nodes UDP cannot (a filtered port, a lossy path).
  PendingStream ps{PendingStream::Kind::kPing, probe.addr, false, probe.seq, 0};
  Open(std::move(ps), detail::EncodePacket(Ping{probe.seq, target, opt.name, opt.address}),
       std::max<int64_t>(probe.end_at - now, 1), now);
}

void Node::Impl::EndProbe(int64_t now) {
  probe.active = false;
  if (probe.tcp_ok) return;  // reachable, only not by UDP: not its failure, nor ours
  // Lifeguard: nacks we expected but did not get point at our own network;
  // with nobody to nack, every failed probe counts against us a little.
  if (probe.expected_nacks > 0) {
    awareness.Apply(probe.expected_nacks - probe.nacks);
  } else {
    awareness.Apply(1);
  }
  stats.probe_failures++;
  auto it = members.find(probe.target);
  if (it == members.end() || it->second.m.address != probe.addr) return;
  OnSuspect(detail::Suspect{it->second.m.incarnation, probe.target, opt.name}, now);
}

void Node::Impl::OnPing(const Ping& p, std::string_view from, int64_t now) {
  // A ping for a name that used to live at this address is not ours to answer.
  if (!p.target.empty() && p.target != opt.name) return;
  if (!p.source_name.empty()) {
    if (auto it = members.find(p.source_name); it != members.end()) it->second.m.last_seen_ms = now;
  }
  Send(p.source_addr.empty() ? std::string(from) : p.source_addr, {Ack{p.seq}});
}

void Node::Impl::OnPingReq(const PingReq& p, std::string_view from, int64_t now) {
  constexpr size_t kMaxForwards = 1024;
  if (forwards.size() >= kMaxForwards || p.target == opt.name) return;
  const uint32_t seq = next_seq++;
  forwards[seq] = Forward{p.source_addr.empty() ? std::string(from) : p.source_addr, p.seq, p.nack,
                          now + opt.probe_timeout_ms};
  Send(p.target_addr, {Ping{seq, p.target, opt.name, opt.address}});
}

void Node::Impl::OnAck(const Ack& a, int64_t now) {
  if (probe.active && a.seq == probe.seq) {
    probe.active = false;
    awareness.Apply(-1);
    auto it = members.find(probe.target);
    if (it != members.end() && !probe.indirect_sent) {
      // Direct round trip only: an ack relayed by a helper measures two paths.
      const double sample = static_cast<double>(now - probe.start);
      double& rtt = it->second.m.rtt_ms;
      rtt = rtt < 0 ? sample : rtt * 0.875 + sample * 0.125;
    }
    return;
  }
  if (auto it = forwards.find(a.seq); it != forwards.end()) {
    const Forward f = std::move(it->second);
    forwards.erase(it);
    Send(f.reply_to, {Ack{f.seq}});
  }
}

void Node::Impl::OnNack(const Nack& n) {
  if (probe.active && n.seq == probe.seq && probe.nacks < probe.expected_nacks) probe.nacks++;
}

void Node::Impl::OnStreamPingReply(const PendingStream& ps, const std::optional<Bytes>& reply) {
  if (!reply || reply->empty()) return;
  auto msgs = detail::DecodePacket(reply->data(), reply->size());
  if (!msgs || msgs->size() != 1) {
    stats.malformed++;
    return;
  }
  const auto* ack = std::get_if<Ack>(&msgs->front());
  if (ack && ack->seq == ps.seq && probe.active && probe.seq == ps.seq) probe.tcp_ok = true;
}

void Node::Impl::CheckForwards(int64_t now) {
  for (auto it = forwards.begin(); it != forwards.end();) {
    if (it->second.deadline > now) {
      ++it;
      continue;
    }
    if (it->second.nack) Send(it->second.reply_to, {Nack{it->second.seq}});
    it = forwards.erase(it);
  }
}

}  // namespace hub::cluster::swim
