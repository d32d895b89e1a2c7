// Membership transitions, the SWIM rules (memberlist state.go): a claim about
// a member is applied only when it is newer by incarnation, alive beats
// suspect and dead only with a higher incarnation, and a node never accepts
// a claim that it is suspect or dead: it refutes it with a higher incarnation.
#include <algorithm>

#include "cluster/swim/detail/node_impl.h"

namespace hub::cluster::swim {

using detail::Alive;
using detail::Dead;
using detail::Suspect;

namespace {

size_t Index(MemberState s) { return static_cast<size_t>(s); }

Member FromAlive(const Alive& a) {
  Member m;
  m.name = a.name;
  m.address = a.addr;
  m.meta = a.meta;
  m.incarnation = a.incarnation;
  m.protocol = a.protocol;
  return m;
}

}  // namespace

void Node::Impl::AddSelf(int64_t now) {
  MemberEntry e;
  e.m.name = opt.name;
  e.m.address = opt.address;
  e.m.meta = delegate->NodeMeta(opt.max_meta);
  if (e.m.meta.size() > opt.max_meta) e.m.meta.resize(opt.max_meta);
  e.m.incarnation = 1;
  e.m.state = MemberState::kAlive;
  e.m.state_since_ms = now;
  e.m.last_seen_ms = now;
  e.m.protocol = opt.protocol;
  e.m.is_self = true;
  by_addr[opt.address] = opt.name;
  counts[Index(MemberState::kAlive)]++;
  const MemberEntry& me = members.emplace(opt.name, std::move(e)).first->second;
  QueueSelfAlive();
  Notify(me);
}

void Node::Impl::QueueSelfAlive(int max_transmits) {
  const Member& m = self().m;
  queue.Push(m.name, detail::EncodeMessage(Alive{m.incarnation, m.name, m.address, m.meta, m.protocol}),
             max_transmits);
}

void Node::Impl::SetState(MemberEntry& e, MemberState s, int64_t now) {
  if (e.m.state != s) {
    counts[Index(e.m.state)]--;
    counts[Index(s)]++;
    e.m.state = s;
    e.m.state_since_ms = now;
    if (s == MemberState::kSuspect) {
      suspects.insert(e.m.name);
    } else {
      suspects.erase(e.m.name);
    }
  }
  if (s != MemberState::kSuspect) e.suspicion.reset();
}

void Node::Impl::Notify(const MemberEntry& e) { delegate->OnMemberChange(e.m); }

void Node::Impl::Refute(uint32_t accused, int64_t now) {
  MemberEntry& me = self();
  // At the top of the range there is nothing higher to claim; stay there.
  const uint32_t top = std::max(me.m.incarnation, accused);
  me.m.incarnation = top == UINT32_MAX ? top : top + 1;
  QueueSelfAlive();
  awareness.Apply(1);
  stats.refutes++;
  Notify(me);
  (void)now;
}

void Node::Impl::OnAlive(const Alive& a, int64_t now) {
  if (a.meta.size() > opt.max_meta) {
    stats.malformed++;
    return;
  }
  if (a.name == opt.name) {
    if (leaving) return;
    MemberEntry& me = self();
    if (a.addr != opt.address) {
      delegate->OnNameConflict(me.m, FromAlive(a));
      return;
    }
    if (a.incarnation < me.m.incarnation) return;
    // Our own alive coming back (heartbeat, gossip echo): nothing to refute.
    if (a.incarnation == me.m.incarnation && a.meta == me.m.meta && a.protocol == me.m.protocol) return;
    // A claim about us we did not make (an earlier life, or a forgery).
    Refute(a.incarnation, now);
    return;
  }

  auto it = members.find(a.name);
  if (it == members.end()) {
    MemberEntry e;
    e.m = FromAlive(a);
    e.m.state = MemberState::kAlive;
    e.m.state_since_ms = now;
    counts[Index(MemberState::kAlive)]++;
    by_addr[a.addr] = a.name;
    // A random place in the probe order keeps the detection bound low on average.
    probe_order.push_back(a.name);
    std::swap(probe_order.back(), probe_order[rng.Below(probe_order.size())]);
    MemberEntry& added = members.emplace(a.name, std::move(e)).first->second;
    roster.push_back(&added);
    queue.Push(a.name, detail::EncodeMessage(a));
    Notify(added);
    return;
  }

  MemberEntry& e = it->second;
  if (e.m.address != a.addr) {
    const bool reclaim =
        e.m.state == MemberState::kLeft ||
        (e.m.state == MemberState::kDead && opt.dead_reclaim_ms > 0 &&
         now - e.m.state_since_ms >= opt.dead_reclaim_ms);
    if (!reclaim) {
      delegate->OnNameConflict(e.m, FromAlive(a));
      return;
    }
    if (auto b = by_addr.find(e.m.address); b != by_addr.end() && b->second == e.m.name) by_addr.erase(b);
    by_addr[a.addr] = a.name;
    e.m.address = a.addr;
    e.m.rtt_ms = -1;
  } else if (a.incarnation <= e.m.incarnation) {
    return;
  }
  queue.Push(a.name, detail::EncodeMessage(a));
  e.m.incarnation = a.incarnation;
  e.m.meta = a.meta;
  e.m.protocol = a.protocol;
  SetState(e, MemberState::kAlive, now);
  Notify(e);
}

void Node::Impl::OnSuspect(const Suspect& s, int64_t now) {
  auto it = members.find(s.name);
  if (it == members.end()) return;
  MemberEntry& e = it->second;
  if (s.incarnation < e.m.incarnation) return;
  if (e.suspicion) {
    // Lifeguard: an independent report shortens the timer; pass it on so
    // others count it too.
    if (e.suspicion->Confirm(s.from)) queue.Push(s.name, detail::EncodeMessage(s));
    return;
  }
  if (e.m.state != MemberState::kAlive) return;
  if (e.m.is_self) {
    if (!leaving) Refute(s.incarnation, now);
    return;
  }
  queue.Push(s.name, detail::EncodeMessage(s));
  e.m.incarnation = s.incarnation;
  SetState(e, MemberState::kSuspect, now);
  const size_t n = LiveCount();
  int k = opt.suspicion_mult - 2;
  // Too few others to confirm: do not wait for confirmations that cannot come.
  if (n < 2 || static_cast<int>(n - 2) < k) k = 0;
  const int64_t min = detail::SuspicionMinTimeout(opt.suspicion_mult, n, opt.probe_interval_ms);
  const int64_t max = opt.suspicion_max_timeout_mult * min;
  e.suspicion.emplace(s.from, k, min, max, now);
  Notify(e);
}

void Node::Impl::OnDead(const Dead& d, int64_t now) {
  auto it = members.find(d.name);
  if (it == members.end()) return;
  MemberEntry& e = it->second;
  if (d.incarnation < e.m.incarnation) return;
  if (e.m.state == MemberState::kDead || e.m.state == MemberState::kLeft) return;
  if (e.m.is_self) {
    // Our own leave is applied by Leave(); anyone else's claim is refuted.
    if (!leaving) Refute(d.incarnation, now);
    return;
  }
  queue.Push(d.name, detail::EncodeMessage(d));
  e.m.incarnation = d.incarnation;
  SetState(e, d.from == d.name ? MemberState::kLeft : MemberState::kDead, now);
  Notify(e);
}

void Node::Impl::Merge(const std::vector<detail::MemberRecord>& remote, int64_t now) {
  for (const detail::MemberRecord& r : remote) {
    switch (r.state) {
      case MemberState::kAlive:
        OnAlive(Alive{r.incarnation, r.name, r.addr, r.meta, r.protocol}, now);
        break;
      case MemberState::kLeft:
        OnDead(Dead{r.incarnation, r.name, r.name}, now);
        break;
      case MemberState::kDead:
        // Another node's verdict is only a suspicion here: it may be stale,
        // and our own timer gives the member its chance to refute.
      case MemberState::kSuspect:
        OnSuspect(Suspect{r.incarnation, r.name, opt.name}, now);
        break;
    }
  }
}

void Node::Impl::CheckSuspicions(int64_t now) {
  std::vector<Dead> due;
  for (const std::string& name : suspects) {
    const MemberEntry& e = members.at(name);
    if (e.suspicion && e.suspicion->deadline() <= now) due.push_back(Dead{e.m.incarnation, name, opt.name});
  }
  for (const Dead& d : due) OnDead(d, now);
}

std::optional<int64_t> Node::Impl::NextSuspicionDeadline() const {
  std::optional<int64_t> t;
  for (const std::string& name : suspects) {
    const MemberEntry& e = members.at(name);
    if (e.suspicion && (!t || e.suspicion->deadline() < *t)) t = e.suspicion->deadline();
  }
  return t;
}

void Node::Impl::Reap(int64_t now) {
  for (auto it = members.begin(); it != members.end();) {
    const Member& m = it->second.m;
    const bool gone = !m.is_self && (m.state == MemberState::kDead || m.state == MemberState::kLeft) &&
                      now - m.state_since_ms >= opt.reap_dead_ms;
    if (!gone) {
      ++it;
      continue;
    }
    if (auto b = by_addr.find(m.address); b != by_addr.end() && b->second == m.name) by_addr.erase(b);
    counts[Index(m.state)]--;
    suspects.erase(m.name);
    roster.erase(std::find(roster.begin(), roster.end(), &it->second));
    it = members.erase(it);
  }
  // Timed-out streams the driver never answered.
  for (auto it = streams.begin(); it != streams.end();) {
    it = it->second.expires <= now ? streams.erase(it) : std::next(it);
  }
}

std::vector<detail::MemberRecord> Node::Impl::Records() const {
  std::vector<detail::MemberRecord> out;
  out.reserve(members.size());
  for (const auto& [name, e] : members) {
    out.push_back(detail::MemberRecord{name, e.m.address, e.m.meta, e.m.incarnation, e.m.state,
                                       e.m.protocol});
  }
  return out;
}

}  // namespace hub::cluster::swim
