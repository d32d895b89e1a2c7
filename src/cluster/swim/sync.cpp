// Dissemination: gossip rounds that carry the broadcast queue to a few random
// members, push-pull anti-entropy over a stream (full membership, the
// delegate's state, and the recent events the other side lacks), and cluster
// events.
#include <algorithm>
#include <cmath>

#include "cluster/swim/detail/node_impl.h"

namespace hub::cluster::swim {

using detail::Events;
using detail::PushPull;
using detail::WireEvent;

void Node::Impl::Gossip(int64_t now) {
  if (queue.empty()) return;
  auto targets = RandomMembers(static_cast<size_t>(opt.gossip_nodes), [&](const MemberEntry& e) {
    switch (e.m.state) {
      case MemberState::kAlive:
      case MemberState::kSuspect:
        return true;
      case MemberState::kDead:
        // A little longer, so a member wrongly declared dead hears it and refutes.
        return now - e.m.state_since_ms < opt.gossip_to_dead_ms;
      case MemberState::kLeft:
        return false;
    }
    return false;
  });
  const size_t budget = opt.max_packet - detail::kCompoundHeader;
  for (MemberEntry* t : targets) {
    auto parts = queue.Take(detail::kCompoundPerPart, budget, TransmitLimit());
    if (parts.empty()) break;
    SendBytes(t->m.address, detail::EncodeParts(parts));
  }
}

int64_t Node::Impl::PushPullInterval() const {
  // memberlist pushPullScale: beyond 32 members, fewer rounds per node so the
  // cluster-wide cost of full-state exchange grows slower than n^2.
  const double n = static_cast<double>(LiveCount());
  if (n <= 32) return opt.push_pull_interval_ms;
  const auto mult = static_cast<int64_t>(std::ceil(std::log2(n) - std::log2(32.0)) + 1.0);
  return mult * opt.push_pull_interval_ms;
}

void Node::Impl::PushPullRound(int64_t now) {
  // Now and then the round goes to a member we hold dead instead (Serf's
  // reconnect, with probability dead / (alive + dead)): if it was only cut
  // off, the exchange lets both sides refute and the partition heals.
  const size_t dead = counts[static_cast<size_t>(MemberState::kDead)];
  const size_t alive = counts[static_cast<size_t>(MemberState::kAlive)] - 1;
  const bool reconnect = dead > 0 && rng.Below(alive + dead) < dead;
  const MemberState want = reconnect ? MemberState::kDead : MemberState::kAlive;
  auto peer = RandomMembers(1, [want](const MemberEntry& e) { return e.m.state == want; });
  if (peer.empty()) return;
  StartPushPull(peer.front()->m.address, false, now);
}

void Node::Impl::StartPushPull(const std::string& addr, bool join, int64_t now) {
  PushPull p;
  p.join = join;
  p.members = Records();
  p.user_state = delegate->LocalState(join);
  p.digest = events.Digest();
  PendingStream ps{PendingStream::Kind::kPushPull, addr, join, 0, 0};
  Open(std::move(ps), detail::EncodePacket(p), opt.stream_timeout_ms, now);
}

Bytes Node::Impl::AnswerPushPull(const PushPull& p, int64_t now) {
  // Merge first: if their view wrongly holds us (or our side of a healed
  // partition) dead, the refutation is in this very reply instead of in a
  // gossip that may never reach them.
  Merge(p.members, now);
  delegate->MergeRemoteState(p.user_state, p.join);
  OnEvents(p.events, now);

  PushPull reply;
  reply.join = p.join;
  reply.members = Records();
  reply.user_state = delegate->LocalState(p.join);
  reply.events = events.Missing(p.digest);
  reply.digest = events.Digest();
  return detail::EncodePacket(reply);
}

void Node::Impl::OnPushPullReply(const PendingStream& ps, const std::optional<Bytes>& reply, int64_t now) {
  if (!reply || reply->empty()) return;  // failed, timed out, or the peer is leaving
  auto msgs = detail::DecodePacket(reply->data(), reply->size());
  const PushPull* p = msgs && msgs->size() == 1 ? std::get_if<PushPull>(&msgs->front()) : nullptr;
  if (!p) {
    stats.malformed++;
    return;
  }
  Merge(p->members, now);
  delegate->MergeRemoteState(p->user_state, ps.join);
  OnEvents(p->events, now);
  // What they lack of ours goes back on a second stream (a stream carries one
  // request and one reply).
  if (auto missing = events.Missing(p->digest); !missing.empty()) {
    PendingStream out{PendingStream::Kind::kEvents, ps.to, false, 0, 0};
    Open(std::move(out), detail::EncodePacket(Events{std::move(missing)}), opt.stream_timeout_ms, now);
  }
}

void Node::Impl::Emit(std::string type, std::string payload, int64_t now) {
  if (leaving || type.empty() || type.size() > detail::kMaxEventType ||
      payload.size() > opt.max_event_payload) {
    stats.events_refused++;
    return;
  }
  WireEvent e{opt.name, boot, ++next_event_id, events.Tick(), std::move(type), std::move(payload)};
  events.MarkSeen(e.origin, e.boot, e.id);
  events.Remember(e);
  delegate->OnEvent(Event{e.origin, e.id, e.lamport, e.type, e.payload, true});
  Disseminate(e, now);
}

void Node::Impl::OnEvent(const WireEvent& e, int64_t now) {
  if (e.payload.size() > opt.max_event_payload) {
    stats.malformed++;
    return;
  }
  if (e.origin == opt.name && e.boot == boot) return;  // our own, come back
  if (!events.MarkSeen(e.origin, e.boot, e.id)) return;
  events.Observe(e.lamport);
  events.Remember(e);
  stats.events_in++;
  delegate->OnEvent(Event{e.origin, e.id, e.lamport, e.type, e.payload, false});
  Disseminate(e, now);
}

void Node::Impl::OnEvents(std::vector<WireEvent> batch, int64_t now) {
  // Oldest first, so each origin's ids arrive in order and the seen-window
  // never skips past one still to come.
  std::sort(batch.begin(), batch.end(), [](const WireEvent& a, const WireEvent& b) {
    if (a.lamport != b.lamport) return a.lamport < b.lamport;
    if (a.origin != b.origin) return a.origin < b.origin;
    return a.id < b.id;
  });
  for (const WireEvent& e : batch) OnEvent(e, now);
}

void Node::Impl::Disseminate(const WireEvent& e, int64_t now) {
  Bytes msg = detail::EncodeMessage(e);
  if (msg.size() + detail::kCompoundHeader + detail::kCompoundPerPart <= opt.max_packet) {
    queue.Push({}, std::move(msg));
    return;
  }
  // Too large to piggyback: each node that first delivers it passes it on by
  // stream to gossip_nodes random members (an epidemic over TCP); push-pull
  // catch-up covers whoever that misses.
  auto targets = RandomMembers(static_cast<size_t>(opt.gossip_nodes),
                               [](const MemberEntry& m) { return m.m.state == MemberState::kAlive; });
  const Bytes bytes = detail::EncodePacket(Events{{e}});
  for (MemberEntry* t : targets) {
    Open(PendingStream{PendingStream::Kind::kEvents, t->m.address, false, 0, 0}, bytes,
         opt.stream_timeout_ms, now);
  }
}

}  // namespace hub::cluster::swim
