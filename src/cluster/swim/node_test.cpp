#include "cluster/swim/node.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>

#include "cluster/swim/detail/codec.h"

namespace hub::cluster::swim {
namespace {

namespace d = detail;

class Recorder : public Delegate {
 public:
  std::string meta;
  std::string state;
  std::vector<Event> events;
  std::vector<Member> changes;
  std::vector<std::pair<Member, Member>> conflicts;
  std::vector<std::pair<std::string, bool>> merged;

  std::string NodeMeta(size_t limit) override { return meta.substr(0, limit); }
  void OnEvent(const Event& e) override { events.push_back(e); }
  std::string LocalState(bool) override { return state; }
  void MergeRemoteState(std::string_view s, bool join) override { merged.emplace_back(s, join); }
  void OnMemberChange(const Member& m) override { changes.push_back(m); }
  void OnNameConflict(const Member& a, const Member& b) override { conflicts.emplace_back(a, b); }

  bool SawState(const std::string& name, MemberState s) const {
    return std::any_of(changes.begin(), changes.end(),
                       [&](const Member& m) { return m.name == name && m.state == s; });
  }
};

std::string Addr(const std::string& name) { return "10.0.0." + std::to_string(name[0]) + ":7946"; }

// A tiny network: 1 ms latency, optional UDP-only cuts and full partitions,
// streams answered synchronously by the peer. Virtual time only.
class Net {
 public:
  struct Host {
    Options options;
    std::unique_ptr<Recorder> rec;
    std::unique_ptr<Node> node;
    bool up = true;
  };

  Node& Add(const std::string& name, Options o = Options::Lan(), std::string addr = {}) {
    o.name = name;
    o.address = addr.empty() ? Addr(name) : addr;
    Host& h = hosts_[o.address];
    h.options = o;
    h.rec = std::make_unique<Recorder>();
    h.rec->meta = "meta-" + name;
    h.rec->state = "state-of-" + name;
    h.node = std::make_unique<Node>(o, h.rec.get(), ++seed_ * 7919, now);
    h.up = true;
    Collect(o.address);
    return *h.node;
  }
  Host& host(const std::string& name) { return hosts_.at(Addr(name)); }
  Host& host_at(const std::string& addr) { return hosts_.at(addr); }
  Node& node(const std::string& name) { return *host(name).node; }
  Recorder& rec(const std::string& name) { return *host(name).rec; }

  void JoinAll(const std::vector<std::string>& names, const std::string& seed) {
    for (const auto& n : names) {
      if (n == seed) continue;
      node(n).Join({Addr(seed)}, now);
      Collect(Addr(n));
    }
  }
  void Kill(const std::string& name) { host(name).up = false; }
  Node& Restart(const std::string& name) {
    Options o = host(name).options;
    return Add(name, o, o.address);
  }
  void Cut(const std::vector<std::string>& a, const std::vector<std::string>& b, bool udp_only = false) {
    for (const auto& x : a) {
      for (const auto& y : b) {
        auto& set = udp_only ? udp_cut_ : cut_;
        set.insert({Addr(x), Addr(y)});
        set.insert({Addr(y), Addr(x)});
      }
    }
  }
  void Heal() {
    cut_.clear();
    udp_cut_.clear();
  }
  void Inject(const std::string& to, const d::Message& m, const std::string& from = "10.9.9.9:1") {
    const Bytes b = d::EncodePacket(m);
    node(to).HandlePacket(from, b.data(), b.size(), now);
    Collect(Addr(to));
  }
  void Do(const std::string& name, const std::function<void(Node&)>& f) { DoAt(Addr(name), f); }
  void DoAt(const std::string& addr, const std::function<void(Node&)>& f) {
    f(*hosts_.at(addr).node);
    Collect(addr);
  }

  void RunFor(int64_t ms) { RunUntil(now + ms); }
  void RunUntil(int64_t end) {
    for (int guard = 0;; ++guard) {
      ASSERT_LT(guard, 50'000'000) << "the loop makes no progress";
      int64_t next = end + 1;
      for (auto& [addr, h] : hosts_) {
        if (h.up) next = std::min(next, h.node->NextDeadline());
      }
      if (!queue_.empty()) next = std::min(next, queue_.begin()->first.first);
      if (next > end) break;
      now = std::max(now, next);
      while (!queue_.empty() && queue_.begin()->first.first <= now) {
        auto node = queue_.extract(queue_.begin());
        Deliver(node.mapped());
      }
      for (auto& [addr, h] : hosts_) {
        if (h.up && h.node->NextDeadline() <= now) {
          h.node->Tick(now);
          Collect(addr);
        }
      }
    }
    now = end;
  }
  // Runs until `done` or `max_ms`; true if done.
  bool RunUntil(const std::function<bool()>& done, int64_t max_ms) {
    const int64_t end = now + max_ms;
    while (now < end) {
      if (done()) return true;
      RunFor(100);
    }
    return done();
  }

  int64_t now = 0;
  size_t max_datagram_seen = 0;
  std::function<void(const std::string& from, const std::string& to, const Bytes&)> tap;
  uint32_t loss_percent = 0;  // datagrams dropped at random (deterministically)

 private:
  enum class Kind { kPacket, kRequest, kReply };
  struct Flight {
    Kind kind;
    std::string from, to;
    Bytes bytes;
    uint64_t id = 0;
    std::optional<Bytes> reply;
  };

  bool Up(const std::string& addr) const {
    auto it = hosts_.find(addr);
    return it != hosts_.end() && it->second.up;
  }
  bool Linked(const std::string& a, const std::string& b) const {
    return Up(a) && Up(b) && !cut_.count({a, b});
  }
  void Schedule(int64_t at, Flight f) { queue_.emplace(std::make_pair(at, order_++), std::move(f)); }

  void Collect(const std::string& addr) {
    Host& h = hosts_.at(addr);
    for (Output& out : h.node->TakeOutputs()) {
      if (auto* p = std::get_if<SendPacket>(&out)) {
        max_datagram_seen = std::max(max_datagram_seen, p->bytes.size());
        lcg_ = lcg_ * 6364136223846793005ULL + 1442695040888963407ULL;
        const bool lost = (lcg_ >> 33) % 100 < loss_percent;
        if (!lost && Linked(addr, p->to) && !udp_cut_.count({addr, p->to}))
          Schedule(now + 1, Flight{Kind::kPacket, addr, p->to, std::move(p->bytes)});
      } else {
        auto& s = std::get<OpenStream>(out);
        if (Linked(addr, s.to)) {
          Schedule(now + 1, Flight{Kind::kRequest, addr, s.to, std::move(s.bytes), s.id});
        } else {
          // Refused at once by a down host; a partition times out.
          const int64_t at = Up(s.to) ? now + s.timeout_ms : now + 1;
          Schedule(at, Flight{Kind::kReply, s.to, addr, {}, s.id, std::nullopt});
        }
      }
    }
  }

  void Deliver(Flight& f) {
    if (!Up(f.to)) return;
    Node& dst = *hosts_.at(f.to).node;
    switch (f.kind) {
      case Kind::kPacket:
        if (!Linked(f.from, f.to)) break;
        if (tap) tap(f.from, f.to, f.bytes);
        dst.HandlePacket(f.from, f.bytes.data(), f.bytes.size(), now);
        break;
      case Kind::kRequest: {
        std::optional<Bytes> reply;
        if (Linked(f.from, f.to)) reply = dst.HandleStream("10.8.8.8:40000", f.bytes.data(), f.bytes.size(), now);
        Schedule(now + 1, Flight{Kind::kReply, f.to, f.from, {}, f.id, std::move(reply)});
        break;
      }
      case Kind::kReply:
        dst.HandleStreamReply(f.id, std::move(f.reply), now);
        break;
    }
    Collect(f.to);
  }

  uint64_t seed_ = 0;
  uint64_t order_ = 0;
  uint64_t lcg_ = 1;
  std::map<std::string, Host> hosts_;
  std::set<std::pair<std::string, std::string>> cut_, udp_cut_;
  std::map<std::pair<int64_t, uint64_t>, Flight> queue_;
};

std::optional<Member> Find(const Node& n, const std::string& name) {
  for (const Member& m : n.Members()) {
    if (m.name == name) return m;
  }
  return std::nullopt;
}

MemberState StateOf(const Node& n, const std::string& name) {
  auto m = Find(n, name);
  return m ? m->state : MemberState::kDead;
}

bool AllAlive(Net& net, const std::vector<std::string>& names) {
  for (const auto& a : names) {
    for (const auto& b : names) {
      auto m = Find(net.node(a), b);
      if (!m || m->state != MemberState::kAlive) return false;
    }
  }
  return true;
}

const std::vector<std::string> kFive = {"a", "b", "c", "d", "e"};

Net Converged(const std::vector<std::string>& names, Options o = Options::Lan()) {
  Net net;
  for (const auto& n : names) net.Add(n, o);
  net.JoinAll(names, names.front());
  return net;
}

// ---- single node, packet level ----

Bytes DecodeOnlyPacketTo(const std::vector<Output>& outs, const std::string& to) {
  for (const Output& o : outs) {
    if (auto* p = std::get_if<SendPacket>(&o); p && p->to == to) return p->bytes;
  }
  return {};
}

template <typename T>
std::optional<T> FindMsg(const Bytes& b) {
  auto msgs = d::DecodePacket(b.data(), b.size());
  if (!msgs) return std::nullopt;
  for (const d::Message& m : *msgs) {
    if (auto* x = std::get_if<T>(&m)) return *x;
  }
  return std::nullopt;
}

Options Solo(const std::string& name) {
  Options o = Options::Lan();
  o.name = name;
  o.address = Addr(name);
  return o;
}

TEST(Node, RefusesMissingNameOrAddress) {
  EXPECT_THROW(Node(Options{}, nullptr, 1, 0), std::invalid_argument);
  Options o;
  o.name = "x";
  EXPECT_THROW(Node(o, nullptr, 1, 0), std::invalid_argument);
}

TEST(Node, StartsAloneAndAlive) {
  Recorder rec;
  rec.meta = "http=:8080";
  Node n(Solo("a"), &rec, 1, 1000);
  auto ms = n.Members();
  ASSERT_EQ(ms.size(), 1u);
  EXPECT_TRUE(ms[0].is_self);
  EXPECT_EQ(ms[0].state, MemberState::kAlive);
  EXPECT_EQ(ms[0].meta, "http=:8080");
  EXPECT_EQ(n.NumAlive(), 1u);
  EXPECT_GE(n.NextDeadline(), 1000);
  EXPECT_EQ(ToString(MemberState::kSuspect), "suspect");
}

TEST(Node, AnswersAPingForItsNameOnly) {
  Node n(Solo("a"), nullptr, 1, 0);
  const Bytes ping = d::EncodePacket(d::Ping{7, "a", "z", "10.9.9.9:7946"});
  n.HandlePacket("10.9.9.9:7946", ping.data(), ping.size(), 10);
  auto ack = FindMsg<d::Ack>(DecodeOnlyPacketTo(n.TakeOutputs(), "10.9.9.9:7946"));
  ASSERT_TRUE(ack);
  EXPECT_EQ(ack->seq, 7u);
  const Bytes other = d::EncodePacket(d::Ping{8, "someone-else", "z", "10.9.9.9:7946"});
  n.HandlePacket("10.9.9.9:7946", other.data(), other.size(), 11);
  EXPECT_TRUE(n.TakeOutputs().empty());
  // The TCP fallback ping is answered on the stream.
  const Bytes reply = n.HandleStream("10.9.9.9:5555", ping.data(), ping.size(), 12);
  ASSERT_TRUE(FindMsg<d::Ack>(reply));
}

TEST(Node, RelaysAPingReqAndNacksWhenTheTargetIsSilent) {
  Node n(Solo("a"), nullptr, 1, 0);
  n.TakeOutputs();
  const Bytes req = d::EncodePacket(d::PingReq{9, "t", "10.7.7.7:1", true, "r", "10.6.6.6:1"});
  n.HandlePacket("10.6.6.6:1", req.data(), req.size(), 100);
  auto ping = FindMsg<d::Ping>(DecodeOnlyPacketTo(n.TakeOutputs(), "10.7.7.7:1"));
  ASSERT_TRUE(ping);
  EXPECT_EQ(ping->target, "t");
  // The target answers: the ack goes back to the requester with its seq.
  const Bytes ack = d::EncodePacket(d::Ack{ping->seq});
  n.HandlePacket("10.7.7.7:1", ack.data(), ack.size(), 150);
  auto relayed = FindMsg<d::Ack>(DecodeOnlyPacketTo(n.TakeOutputs(), "10.6.6.6:1"));
  ASSERT_TRUE(relayed);
  EXPECT_EQ(relayed->seq, 9u);
  // A second request whose target never answers: a nack after the probe timeout.
  n.HandlePacket("10.6.6.6:1", req.data(), req.size(), 200);
  n.TakeOutputs();
  n.Tick(200 + n.options().probe_timeout_ms);
  auto nack = FindMsg<d::Nack>(DecodeOnlyPacketTo(n.TakeOutputs(), "10.6.6.6:1"));
  ASSERT_TRUE(nack);
  EXPECT_EQ(nack->seq, 9u);
}

TEST(Node, ProbingASuspectCarriesTheSuspicionToIt) {
  Options o = Solo("a");
  o.retransmit_mult = 1;   // the suspect broadcast itself rides along once only
  o.suspicion_mult = 10;   // and b stays suspect for 10 s
  Node n(o, nullptr, 1, 0);
  const Bytes alive = d::EncodePacket(d::Alive{3, "b", Addr("b"), "", 1});
  n.HandlePacket(Addr("b"), alive.data(), alive.size(), 0);
  const Bytes suspect = d::EncodePacket(d::Suspect{3, "b", "c"});
  n.HandlePacket(Addr("c"), suspect.data(), suspect.size(), 0);
  ASSERT_EQ(StateOf(n, "b"), MemberState::kSuspect);
  n.TakeOutputs();
  int pings = 0, with_suspicion = 0;
  for (int64_t t = 0; t < 9'000; t = n.NextDeadline()) {
    n.Tick(t);
    for (const Output& out : n.TakeOutputs()) {
      auto* p = std::get_if<SendPacket>(&out);
      if (!p || p->to != Addr("b") || !FindMsg<d::Ping>(p->bytes)) continue;
      ++pings;
      auto buddy = FindMsg<d::Suspect>(p->bytes);
      if (buddy && buddy->name == "b" && buddy->incarnation == 3) ++with_suspicion;
    }
  }
  EXPECT_GE(pings, 3);
  EXPECT_EQ(with_suspicion, pings);
}

TEST(Node, GarbageIsCountedAndChangesNothing) {
  Recorder rec;
  Node n(Solo("a"), &rec, 1, 0);
  const size_t changes = rec.changes.size();
  const uint8_t junk[] = {1, 5, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 3};
  for (size_t len = 0; len <= sizeof(junk); ++len) n.HandlePacket("x:1", junk, len, 1);
  EXPECT_EQ(n.stats().malformed, sizeof(junk) + 1);
  EXPECT_EQ(n.HandleStream("x:1", junk, sizeof(junk), 1).size(), 0u);
  // Stream-only messages in a datagram are refused too.
  const Bytes pp = d::EncodePacket(d::PushPull{});
  n.HandlePacket("x:1", pp.data(), pp.size(), 1);
  EXPECT_EQ(n.stats().malformed, sizeof(junk) + 3);
  EXPECT_EQ(rec.changes.size(), changes);
  EXPECT_EQ(n.Members().size(), 1u);
  // An alive whose metadata exceeds max_meta is refused.
  const Bytes fat = d::EncodePacket(d::Alive{1, "b", Addr("b"), std::string(513, 'm'), 1});
  n.HandlePacket("x:1", fat.data(), fat.size(), 1);
  EXPECT_EQ(n.Members().size(), 1u);
}

TEST(Node, ReorderedAndReplayedClaimsKeepTheNewestIncarnation) {
  for (bool dead_first : {true, false}) {
    Node n(Solo("a"), nullptr, 1, 0);
    const Bytes alive5 = d::EncodePacket(d::Alive{5, "b", Addr("b"), "", 1});
    const Bytes dead5 = d::EncodePacket(d::Dead{5, "b", "c"});
    const Bytes alive6 = d::EncodePacket(d::Alive{6, "b", Addr("b"), "", 1});
    n.HandlePacket("x:1", alive5.data(), alive5.size(), 0);
    if (dead_first) n.HandlePacket("x:1", dead5.data(), dead5.size(), 1);
    n.HandlePacket("x:1", alive6.data(), alive6.size(), 2);
    if (!dead_first) n.HandlePacket("x:1", dead5.data(), dead5.size(), 3);
    // Replays of the older ones change nothing.
    n.HandlePacket("x:1", alive5.data(), alive5.size(), 4);
    n.HandlePacket("x:1", dead5.data(), dead5.size(), 5);
    auto b = Find(n, "b");
    ASSERT_TRUE(b);
    EXPECT_EQ(b->state, MemberState::kAlive) << dead_first;
    EXPECT_EQ(b->incarnation, 6u);
  }
}

TEST(Node, ForgedClaimsAboutItselfAreRefuted) {
  Recorder rec;
  Node n(Solo("a"), &rec, 1, 0);
  for (const d::Message& m :
       std::vector<d::Message>{d::Dead{1, "a", "mallory"}, d::Suspect{5, "a", "mallory"},
                               d::Dead{9, "a", "a"}, d::Alive{20, "a", Addr("a"), "forged", 1}}) {
    const Bytes b = d::EncodePacket(m);
    n.HandlePacket("x:1", b.data(), b.size(), 1);
    auto self = Find(n, "a");
    ASSERT_TRUE(self);
    EXPECT_EQ(self->state, MemberState::kAlive);
  }
  EXPECT_EQ(Find(n, "a")->incarnation, 21u);
  EXPECT_EQ(Find(n, "a")->meta, "");
  EXPECT_EQ(n.stats().refutes, 4u);
  EXPECT_GT(n.stats().health, 0);  // refuting is a sign of trouble at home
}

TEST(Node, BroadcastRefusesWhatBreaksTheRules) {
  Recorder rec;
  Node n(Solo("a"), &rec, 1, 0);
  n.Broadcast("", "x", 0);
  n.Broadcast(std::string(65, 't'), "x", 0);
  n.Broadcast("t", std::string(n.options().max_event_payload + 1, 'p'), 0);
  EXPECT_EQ(n.stats().events_refused, 3u);
  EXPECT_TRUE(rec.events.empty());
  n.Broadcast("t", "ok", 0);
  ASSERT_EQ(rec.events.size(), 1u);
  EXPECT_TRUE(rec.events[0].local);
  EXPECT_EQ(rec.events[0].id, 1u);
}

// ---- clusters ----

TEST(Cluster, JoinConvergesAndExchangesState) {
  Net net = Converged(kFive);
  ASSERT_TRUE(net.RunUntil([&] { return AllAlive(net, kFive); }, 10'000));
  for (const auto& n : kFive) {
    EXPECT_EQ(net.node(n).NumAlive(), 5u);
    EXPECT_EQ(Find(net.node(n), "a")->meta, "meta-a");
  }
  // The joiners merged a's state with join = true; a merged theirs.
  auto& merged = net.rec("b").merged;
  EXPECT_NE(std::find(merged.begin(), merged.end(), std::make_pair(std::string("state-of-a"), true)),
            merged.end());
  EXPECT_GE(net.rec("a").merged.size(), 4u);
  EXPECT_LE(net.max_datagram_seen, net.node("a").options().max_packet);
}

TEST(Cluster, DetectsANodeThatStopsAnswering) {
  Net net = Converged(kFive);
  ASSERT_TRUE(net.RunUntil([&] { return AllAlive(net, kFive); }, 10'000));
  net.RunFor(5'000);
  const int64_t killed = net.now;
  net.Kill("c");
  const std::vector<std::string> rest = {"a", "b", "d", "e"};
  ASSERT_TRUE(net.RunUntil(
      [&] {
        return std::all_of(rest.begin(), rest.end(),
                           [&](const auto& n) { return StateOf(net.node(n), "c") == MemberState::kDead; });
      },
      60'000));
  // Suspect first, then dead; within the Lifeguard bound (max suspicion 24 s
  // for 5 nodes plus a probe round or two).
  EXPECT_LT(net.now - killed, 30'000);
  for (const auto& n : rest) {
    EXPECT_TRUE(net.rec(n).SawState("c", MemberState::kSuspect));
    for (const auto& other : rest) {
      EXPECT_FALSE(net.rec(n).SawState(other, MemberState::kSuspect)) << n << " suspected " << other;
    }
  }
  net.RunFor(30'000);
  EXPECT_TRUE(AllAlive(net, rest));
}

TEST(Cluster, TcpFallbackKeepsAMemberWhoseUdpIsCutAlive) {
  std::vector<std::string> two = {"a", "b"};
  Net net = Converged(two);
  ASSERT_TRUE(net.RunUntil([&] { return AllAlive(net, two); }, 10'000));
  net.Cut({"a"}, {"b"}, /*udp_only=*/true);
  net.RunFor(30'000);
  EXPECT_TRUE(AllAlive(net, two));
  EXPECT_GT(net.node("a").stats().streams_out, 2u);
  // Without TCP either, the member is suspected.
  net.Cut({"a"}, {"b"});
  net.RunFor(5'000);
  EXPECT_TRUE(net.rec("a").SawState("b", MemberState::kSuspect));
}

TEST(Cluster, AForgedDeadAboutALiveMemberIsRefuted) {
  Net net = Converged({"a", "b", "c"});
  ASSERT_TRUE(net.RunUntil([&] { return AllAlive(net, {"a", "b", "c"}); }, 10'000));
  const uint32_t inc = Find(net.node("a"), "b")->incarnation;
  net.Inject("a", d::Dead{inc, "b", "mallory"});
  EXPECT_EQ(StateOf(net.node("a"), "b"), MemberState::kDead);
  net.Inject("c", d::Suspect{inc, "b", "mallory"});
  EXPECT_EQ(StateOf(net.node("c"), "b"), MemberState::kSuspect);
  ASSERT_TRUE(net.RunUntil([&] { return AllAlive(net, {"a", "b", "c"}); }, 20'000));
  EXPECT_GT(Find(net.node("a"), "b")->incarnation, inc);
  EXPECT_GE(net.node("b").stats().refutes, 1u);
  // Replaying the forgery changes nothing now.
  net.Inject("a", d::Dead{inc, "b", "mallory"});
  EXPECT_EQ(StateOf(net.node("a"), "b"), MemberState::kAlive);
}

TEST(Cluster, LeaveIsSeenAsLeftNotDead) {
  Net net = Converged({"a", "b", "c"});
  ASSERT_TRUE(net.RunUntil([&] { return AllAlive(net, {"a", "b", "c"}); }, 10'000));
  net.Do("c", [&](Node& n) { n.Leave(net.now); });
  net.RunFor(2'000);
  EXPECT_EQ(StateOf(net.node("a"), "c"), MemberState::kLeft);
  EXPECT_EQ(StateOf(net.node("b"), "c"), MemberState::kLeft);
  // c keeps running but answers nothing: it stays left, never becomes dead.
  net.RunFor(60'000);
  EXPECT_EQ(StateOf(net.node("a"), "c"), MemberState::kLeft);
  EXPECT_FALSE(net.rec("a").SawState("c", MemberState::kDead));
  EXPECT_EQ(net.node("c").NextDeadline(), std::numeric_limits<int64_t>::max());
  // Reaped after reap_dead_ms.
  net.RunFor(net.node("a").options().reap_dead_ms);
  EXPECT_FALSE(Find(net.node("a"), "c"));
}

TEST(Cluster, NameConflictKeepsTheFirst) {
  Net net = Converged({"a", "b"});
  ASSERT_TRUE(net.RunUntil([&] { return AllAlive(net, {"a", "b"}); }, 10'000));
  // A second node also called "b", from another address, joins through a.
  const std::string other = "10.0.0.200:7946";
  net.Add("b", Options::Lan(), other);
  net.DoAt(other, [&](Node& n) { n.Join({Addr("a")}, net.now); });
  net.RunFor(10'000);
  auto b = Find(net.node("a"), "b");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->address, Addr("b"));
  EXPECT_EQ(b->state, MemberState::kAlive);
  ASSERT_FALSE(net.rec("a").conflicts.empty());
  EXPECT_EQ(net.rec("a").conflicts[0].first.address, Addr("b"));
  EXPECT_EQ(net.rec("a").conflicts[0].second.address, other);
  // The newcomer hears the name is taken.
  ASSERT_FALSE(net.host_at(other).rec->conflicts.empty());
  EXPECT_TRUE(net.host_at(other).rec->conflicts[0].first.is_self);
  EXPECT_EQ(StateOf(net.node("b"), "b"), MemberState::kAlive);
}

std::set<std::pair<std::string, uint64_t>> Keys(const std::vector<Event>& evs) {
  std::set<std::pair<std::string, uint64_t>> out;
  for (const Event& e : evs) out.insert({e.origin, e.id});
  return out;
}

TEST(Cluster, EventsAreDeliveredExactlyOnceEverywhere) {
  const std::vector<std::string> four = {"a", "b", "c", "d"};
  Net net = Converged(four);
  ASSERT_TRUE(net.RunUntil([&] { return AllAlive(net, four); }, 10'000));
  for (int i = 0; i < 5; ++i) {
    for (const auto& n : four) {
      net.Do(n, [&](Node& node) { node.Broadcast("test.tick", n + std::to_string(i), net.now); });
    }
    net.RunFor(50);
  }
  net.RunFor(20'000);  // several push-pull rounds too: catch-up must not redeliver
  for (const auto& n : four) {
    const auto& evs = net.rec(n).events;
    EXPECT_EQ(evs.size(), 20u) << n;
    EXPECT_EQ(Keys(evs).size(), 20u) << n;
    for (const Event& e : evs) {
      EXPECT_EQ(e.local, e.origin == n);
      EXPECT_EQ(e.type, "test.tick");
    }
    EXPECT_EQ(net.node(n).stats().events_in, 15u);
  }
}

TEST(Cluster, LamportTimeFollowsCausality) {
  Net net = Converged({"a", "b", "c"});
  ASSERT_TRUE(net.RunUntil([&] { return AllAlive(net, {"a", "b", "c"}); }, 10'000));
  for (int i = 0; i < 10; ++i) net.Do("a", [&](Node& n) { n.Broadcast("t", "x", net.now); });
  ASSERT_TRUE(net.RunUntil([&] { return net.rec("b").events.size() == 10; }, 5'000));
  net.Do("b", [&](Node& n) { n.Broadcast("t", "reply", net.now); });
  ASSERT_TRUE(net.RunUntil([&] { return net.rec("c").events.size() == 11; }, 5'000));
  uint64_t max_a = 0, reply = 0;
  for (const Event& e : net.rec("c").events) {
    if (e.origin == "a") max_a = std::max(max_a, e.lamport);
    if (e.origin == "b") reply = e.lamport;
  }
  EXPECT_GT(reply, max_a);
}

TEST(Cluster, EventsTooLargeForADatagramGoByStream) {
  Options o = Options::Lan();
  o.max_event_payload = 4000;
  const std::vector<std::string> four = {"a", "b", "c", "d"};
  Net net = Converged(four, o);
  ASSERT_TRUE(net.RunUntil([&] { return AllAlive(net, four); }, 10'000));
  const std::string big(3000, 'B');
  net.Do("a", [&](Node& n) { n.Broadcast("big", big, net.now); });
  net.RunFor(15'000);
  for (const auto& n : four) {
    ASSERT_EQ(net.rec(n).events.size(), 1u) << n;
    EXPECT_EQ(net.rec(n).events[0].payload, big);
  }
  EXPECT_LE(net.max_datagram_seen, o.max_packet);
}

TEST(Cluster, EventsCatchUpAfterAPartitionHeals) {
  const std::vector<std::string> four = {"a", "b", "c", "d"};
  Net net = Converged(four);
  ASSERT_TRUE(net.RunUntil([&] { return AllAlive(net, four); }, 10'000));
  net.Cut({"a", "b"}, {"c", "d"});
  for (int i = 0; i < 3; ++i) net.Do("a", [&](Node& n) { n.Broadcast("during", std::to_string(i), net.now); });
  // Long enough for each side to declare the other dead and stop gossiping to it.
  net.RunFor(60'000);
  EXPECT_EQ(StateOf(net.node("a"), "c"), MemberState::kDead);
  EXPECT_TRUE(net.rec("c").events.empty());
  EXPECT_EQ(net.rec("b").events.size(), 3u);
  net.Heal();
  // Push-pull retries the dead now and then; the first exchange across heals.
  ASSERT_TRUE(net.RunUntil([&] { return AllAlive(net, four); }, 120'000));
  ASSERT_TRUE(net.RunUntil([&] { return net.rec("c").events.size() >= 3 && net.rec("d").events.size() >= 3; },
                           60'000));
  net.RunFor(20'000);
  for (const auto& n : four) {
    EXPECT_EQ(net.rec(n).events.size(), 3u) << n;
    EXPECT_EQ(Keys(net.rec(n).events).size(), 3u) << n;
  }
}

TEST(Cluster, ANodeRestartedWithTheSameNameComesBack) {
  Net net = Converged({"a", "b", "c"});
  ASSERT_TRUE(net.RunUntil([&] { return AllAlive(net, {"a", "b", "c"}); }, 10'000));
  net.Do("c", [&](Node& n) { n.Broadcast("t", "first life", net.now); });
  net.RunFor(2'000);
  ASSERT_EQ(net.rec("a").events.size(), 1u);
  net.Kill("c");
  ASSERT_TRUE(net.RunUntil([&] { return StateOf(net.node("a"), "c") == MemberState::kDead; }, 60'000));
  const uint32_t dead_inc = Find(net.node("a"), "c")->incarnation;
  Node& c = net.Restart("c");
  net.Do("c", [&](Node& n) { n.Join({Addr("a")}, net.now); });
  (void)c;
  ASSERT_TRUE(net.RunUntil([&] { return AllAlive(net, {"a", "b", "c"}); }, 20'000));
  EXPECT_GT(Find(net.node("a"), "c")->incarnation, dead_inc);
  EXPECT_GT(Find(net.node("c"), "c")->incarnation, dead_inc);
  // Its ids restart at 1, yet its new events are new to everyone.
  net.Do("c", [&](Node& n) { n.Broadcast("t", "second life", net.now); });
  net.RunFor(3'000);
  ASSERT_EQ(net.rec("a").events.size(), 2u);
  EXPECT_EQ(net.rec("a").events[1].payload, "second life");
  EXPECT_EQ(net.rec("a").events[1].id, 1u);
}

TEST(Cluster, AQuickRestartBeforeDetectionRefutesItsOldLife) {
  Net net = Converged({"a", "b", "c"});
  ASSERT_TRUE(net.RunUntil([&] { return AllAlive(net, {"a", "b", "c"}); }, 10'000));
  // Bump c's incarnation in everyone's view first, so the new life starts below it.
  net.Do("c", [&](Node& n) { n.UpdateMeta(net.now); });
  net.RunFor(3'000);
  const uint32_t old_inc = Find(net.node("a"), "c")->incarnation;
  ASSERT_GE(old_inc, 2u);
  net.Kill("c");
  net.Restart("c");
  net.Do("c", [&](Node& n) { n.Join({Addr("b")}, net.now); });
  net.RunFor(5'000);
  EXPECT_TRUE(AllAlive(net, {"a", "b", "c"}));
  EXPECT_GT(Find(net.node("c"), "c")->incarnation, old_inc);
  EXPECT_EQ(Find(net.node("a"), "c")->incarnation, Find(net.node("c"), "c")->incarnation);
}

TEST(Cluster, UpdateMetaSpreads) {
  Net net = Converged({"a", "b", "c"});
  ASSERT_TRUE(net.RunUntil([&] { return AllAlive(net, {"a", "b", "c"}); }, 10'000));
  net.rec("b").meta = "version=2";
  net.Do("b", [&](Node& n) { n.UpdateMeta(net.now); });
  ASSERT_TRUE(net.RunUntil([&] {
    return Find(net.node("a"), "b")->meta == "version=2" && Find(net.node("c"), "b")->meta == "version=2";
  }, 5'000));
}

TEST(Cluster, AnIsolatedNodeLosesHealthAndRecovers) {
  Net net = Converged(kFive);
  ASSERT_TRUE(net.RunUntil([&] { return AllAlive(net, kFive); }, 10'000));
  net.RunFor(10'000);
  for (const auto& n : kFive) EXPECT_EQ(net.node(n).stats().health, 0) << n;
  net.Cut({"a"}, {"b", "c", "d", "e"});
  net.RunFor(4'000);
  EXPECT_GT(net.node("a").stats().health, 0);
  net.Heal();
  ASSERT_TRUE(net.RunUntil([&] { return AllAlive(net, kFive); }, 120'000));
  net.RunFor(30'000);
  EXPECT_EQ(net.node("a").stats().health, 0);
}

TEST(Cluster, HeartbeatReBroadcastsTheSameAliveEveryInterval) {
  for (int64_t interval : {int64_t{2'000}, int64_t{1'000'000}}) {
    Options o = Options::Lan();
    o.heartbeat_interval_ms = interval;
    o.push_pull_interval_ms = 1'000'000;
    Net net = Converged({"a", "b"}, o);
    ASSERT_TRUE(net.RunUntil([&] { return AllAlive(net, {"a", "b"}); }, 10'000));
    net.RunFor(10'000);  // the join's own broadcasts are long spent
    const uint32_t inc = Find(net.node("a"), "a")->incarnation;
    int heartbeats = 0;
    net.tap = [&](const std::string& from, const std::string&, const Bytes& b) {
      auto alive = FindMsg<d::Alive>(b);
      if (from == Addr("a") && alive && alive->name == "a" && alive->incarnation == inc) ++heartbeats;
    };
    net.RunFor(10'000);
    if (interval == 2'000) {
      EXPECT_GE(heartbeats, 4);  // five intervals, each sent retransmit_mult times
    } else {
      EXPECT_EQ(heartbeats, 0);
    }
    EXPECT_EQ(Find(net.node("b"), "a")->incarnation, inc);  // costs no incarnation
  }
}

TEST(Cluster, ThirtyNodesAtTenPercentLossNoFalsePositivesAndAKillIsDetected) {
  std::vector<std::string> names;
  for (char c = 'A'; c < 'A' + 30; ++c) names.push_back(std::string(1, c));
  Net net;
  for (const auto& n : names) net.Add(n);
  const int64_t start = net.now;
  net.JoinAll(names, "A");
  ASSERT_TRUE(net.RunUntil([&] { return AllAlive(net, names); }, 30'000));
  const int64_t converged = net.now - start;
  net.loss_percent = 10;
  uint64_t bytes0 = 0;
  for (const auto& n : names) bytes0 += net.node(n).stats().bytes_out;
  net.RunFor(60'000);
  uint64_t bytes1 = 0;
  for (const auto& n : names) bytes1 += net.node(n).stats().bytes_out;
  for (const auto& n : names) {
    for (const auto& m : names) EXPECT_FALSE(net.rec(n).SawState(m, MemberState::kDead)) << n << " " << m;
  }
  const int64_t killed = net.now;
  net.Kill("Q");
  std::vector<std::string> rest;
  for (const auto& n : names) {
    if (n != "Q") rest.push_back(n);
  }
  ASSERT_TRUE(net.RunUntil(
      [&] {
        return std::all_of(rest.begin(), rest.end(),
                           [&](const auto& n) { return StateOf(net.node(n), "Q") == MemberState::kDead; });
      },
      120'000));
  std::printf("30 nodes: join converged in %lld ms; kill seen dead by all in %lld ms; %.0f B/node/s at 10%% loss\n",
              static_cast<long long>(converged), static_cast<long long>(net.now - killed),
              static_cast<double>(bytes1 - bytes0) / 30 / 60);
  for (const auto& n : rest) {
    for (const auto& m : rest) EXPECT_FALSE(net.rec(n).SawState(m, MemberState::kDead)) << n << " " << m;
  }
}

TEST(Cluster, SameSeedsSameRun) {
  auto run = [] {
    Net net = Converged(kFive);
    net.RunFor(20'000);
    net.Kill("e");
    net.RunFor(30'000);
    uint64_t bytes = 0;
    for (const auto& n : {"a", "b", "c", "d"}) bytes += net.node(n).stats().bytes_out;
    return bytes;
  };
  EXPECT_EQ(run(), run());
}

}  // namespace
}  // namespace hub::cluster::swim
