#include "cluster/mdns/engine.h"

#include <gtest/gtest.h>

#include <functional>
#include <map>

namespace hub::cluster::mdns {
namespace {

// A simulated link in virtual time: multicast reaches every started host
// (the sender too, as IP_MULTICAST_LOOP does), unicast the host with that
// address; every datagram takes `latency_ms`. Hosts can be cut off (a crash:
// nothing in, nothing out).
class Lan {
 public:
  struct Sent {
    int64_t at;
    size_t from;
    Datagram d;
    Message m;
  };

  size_t Add(const std::string& name, uint8_t last_octet, uint64_t seed, uint16_t port = 6881) {
    EngineOptions o;
    o.instance = name;
    o.port = port;
    o.txt = {{"version", "1.0"}, {"node_name", name}};
    o.addresses = {Ipv4{10, 0, 0, last_octet}};
    o.seed = seed;
    return Add(o);
  }
  size_t Add(EngineOptions o) {
    Host h;
    h.ip = o.addresses.empty() ? Ipv4{10, 0, 0, static_cast<uint8_t>(200 + hosts_.size())} : o.addresses[0];
    h.e = std::make_unique<Engine>(std::move(o));
    hosts_.push_back(std::move(h));
    return hosts_.size() - 1;
  }

  Engine& engine(size_t i) { return *hosts_[i].e; }
  int64_t now() const { return now_; }
  const std::vector<Sent>& sent() const { return sent_; }
  std::vector<Event>& events(size_t i) { return hosts_[i].events; }
  void Cut(size_t i) { hosts_[i].up = false; }

  void Start(size_t i) {
    hosts_[i].started = true;
    hosts_[i].e->Start(now_);
    Collect(i);
  }
  void Stop(size_t i) {
    hosts_[i].e->Stop(now_);
    Collect(i);
  }

  // Delivers a message as if `from` sent it, now.
  void Inject(size_t to, const Endpoint& from, const Message& m) {
    auto b = Encode(m, kMaxMessage);
    ASSERT_TRUE(b.ok());
    InjectBytes(to, from, *b);
  }
  void InjectBytes(size_t to, const Endpoint& from, const std::vector<uint8_t>& b) {
    hosts_[to].e->Receive(now_, from, b);
    Collect(to);
  }

  void RunFor(int64_t ms) { RunUntil(now_ + ms); }
  void RunUntil(int64_t t) {
    for (;;) {
      int64_t next = INT64_MAX;
      if (!wire_.empty()) next = wire_.begin()->first;
      for (const auto& h : hosts_)
        if (h.started) next = std::min(next, h.e->NextWakeMs());
      if (next > t) break;
      now_ = std::max(now_, next);
      while (!wire_.empty() && wire_.begin()->first <= now_) {
        auto [from, d] = wire_.begin()->second;
        wire_.erase(wire_.begin());
        Deliver(from, d);
      }
      for (size_t i = 0; i < hosts_.size(); ++i) {
        if (hosts_[i].started && hosts_[i].e->NextWakeMs() <= now_) {
          hosts_[i].e->Tick(now_);
          Collect(i);
        }
      }
    }
    now_ = t;
  }

  int64_t latency_ms = 1;

 private:
  struct Host {
    std::unique_ptr<Engine> e;
    Ipv4 ip{};
    bool up = true, started = false;
    std::vector<Event> events;
  };

  void Collect(size_t i) {
    for (auto& d : hosts_[i].e->TakeOutgoing()) {
      auto m = Decode(d.bytes);
      EXPECT_TRUE(m.ok()) << "an engine sent a message it cannot decode";
      EXPECT_LE(d.bytes.size(), 1440u);
      sent_.push_back(Sent{now_, i, d, m.ok() ? *m : Message{}});
      if (hosts_[i].up) wire_.emplace(now_ + latency_ms, std::make_pair(i, d));
    }
    for (auto& e : hosts_[i].e->TakeEvents()) hosts_[i].events.push_back(std::move(e));
  }

  void Deliver(size_t from, const Datagram& d) {
    for (size_t i = 0; i < hosts_.size(); ++i) {
      if (!hosts_[i].started || !hosts_[i].up) continue;
      if (!(d.to == kMulticast) && d.to.ip != hosts_[i].ip) continue;
      hosts_[i].e->Receive(now_, Endpoint{hosts_[from].ip, kPort}, d.bytes);
      Collect(i);
    }
  }

  int64_t now_ = 1'000'000;
  std::vector<Host> hosts_;
  std::multimap<int64_t, std::pair<size_t, Datagram>> wire_;
  std::vector<Sent> sent_;
};

std::vector<Event> Of(const std::vector<Event>& all, Event::Kind k) {
  std::vector<Event> out;
  for (const auto& e : all)
    if (e.kind == k) out.push_back(e);
  return out;
}

const Record* Find(const std::vector<Record>& rs, uint16_t type) {
  for (const auto& r : rs)
    if (r.type == type) return &r;
  return nullptr;
}

Message PtrQuery(std::vector<Record> known = {}) {
  Message q;
  q.questions.push_back(Question{MakeName("_stream-hub._tcp.local"), kPtr, kClassIn, false});
  q.answers = std::move(known);
  return q;
}

Record PtrTo(const std::string& instance, uint32_t ttl) {
  return Record{MakeName("_stream-hub._tcp.local"), kPtr, kClassIn, false, ttl,
                Name{instance, "_stream-hub", "_tcp", "local"}};
}

size_t ResponsesFrom(const Lan& lan, size_t host, int64_t since) {
  size_t n = 0;
  for (const auto& s : lan.sent())
    if (s.from == host && s.at >= since && s.m.is_response()) ++n;
  return n;
}

TEST(MdnsEngine, ProbesThreeTimesThenAnnouncesWithRfcTtls) {
  Lan lan;
  size_t a = lan.Add("hub1", 1, 7);
  int64_t t0 = lan.now();
  lan.Start(a);
  lan.RunFor(6000);

  std::vector<Lan::Sent> probes, announces;
  for (const auto& s : lan.sent()) {
    if (s.from != a) continue;
    if (!s.m.is_response() && !s.m.authorities.empty()) probes.push_back(s);
    if (s.m.is_response()) announces.push_back(s);
  }
  ASSERT_EQ(probes.size(), 3u);
  EXPECT_LE(probes[0].at - t0, 250);
  EXPECT_EQ(probes[1].at - probes[0].at, 250);
  EXPECT_EQ(probes[2].at - probes[1].at, 250);
  const Message& p = probes[0].m;
  ASSERT_EQ(p.questions.size(), 2u);
  EXPECT_TRUE(p.questions[0].unicast_response);
  EXPECT_EQ(p.questions[0].type, kAny);
  EXPECT_EQ(p.questions[0].name, (Name{"hub1", "_stream-hub", "_tcp", "local"}));
  EXPECT_EQ(p.questions[1].name, (Name{"hub1", "local"}));
  EXPECT_TRUE(Find(p.authorities, kSrv) && Find(p.authorities, kTxt) && Find(p.authorities, kA));

  ASSERT_EQ(announces.size(), 3u);
  EXPECT_GE(announces[0].at - probes[2].at, 250);
  EXPECT_GE(announces[1].at - announces[0].at, 1000);
  EXPECT_GE(announces[2].at - announces[1].at, 1000);
  const auto& ans = announces[0].m.answers;
  const Record* ptr = Find(ans, kPtr);
  const Record* srv = Find(ans, kSrv);
  const Record* txt = Find(ans, kTxt);
  const Record* addr = Find(ans, kA);
  ASSERT_TRUE(ptr && srv && txt && addr);
  EXPECT_EQ(ptr->ttl, 4500u);
  EXPECT_FALSE(ptr->cache_flush) << "PTR is a shared record";
  EXPECT_EQ(srv->ttl, 120u);
  EXPECT_TRUE(srv->cache_flush);
  EXPECT_EQ(std::get<Srv>(srv->data).port, 6881);
  EXPECT_EQ(std::get<Srv>(srv->data).target, (Name{"hub1", "local"}));
  EXPECT_EQ(txt->ttl, 4500u);
  EXPECT_TRUE(txt->cache_flush);
  EXPECT_EQ(std::get<Txt>(txt->data).strings, (std::vector<std::string>{"node_name=hub1", "version=1.0"}));
  EXPECT_EQ(addr->ttl, 120u);
  EXPECT_EQ(std::get<Ipv4>(addr->data), (Ipv4{10, 0, 0, 1}));
  bool enum_ptr = false;
  for (const auto& r : ans)
    if (r.type == kPtr && SameName(r.name, MakeName("_services._dns-sd._udp.local"))) enum_ptr = true;
  EXPECT_TRUE(enum_ptr);
  EXPECT_EQ(Of(lan.events(a), Event::Kind::kAdvertised).size(), 1u);
  EXPECT_TRUE(lan.engine(a).advertised());
}

TEST(MdnsEngine, TwoHostsFindEachOtherAndNotThemselves) {
  Lan lan;
  size_t a = lan.Add("hub1", 1, 1, 6881);
  size_t b = lan.Add("hub2", 2, 2, 7000);
  lan.Start(a);
  lan.Start(b);
  lan.RunFor(5000);
  auto fa = Of(lan.events(a), Event::Kind::kFound);
  auto fb = Of(lan.events(b), Event::Kind::kFound);
  ASSERT_EQ(fa.size(), 1u);
  ASSERT_EQ(fb.size(), 1u);
  EXPECT_EQ(fa[0].candidate.address, "10.0.0.2:7000");
  EXPECT_EQ(fa[0].candidate.node_name, "hub2");
  EXPECT_EQ(fa[0].candidate.version, "1.0");
  EXPECT_EQ(fa[0].candidate.source, "mdns");
  EXPECT_EQ(fa[0].instance, "hub2");
  EXPECT_EQ(fb[0].candidate.address, "10.0.0.1:6881");
  EXPECT_EQ(fb[0].candidate.node_name, "hub1");
}

TEST(MdnsEngine, ThreeHostsStartedApartAllFindEachOther) {
  Lan lan;
  size_t h[3] = {lan.Add("a", 1, 11), lan.Add("b", 2, 12), lan.Add("c", 3, 13)};
  lan.Start(h[0]);
  lan.RunFor(30'000);   // a's query back-off has grown by the time b and c arrive
  lan.Start(h[1]);
  lan.RunFor(7'000);
  lan.Start(h[2]);
  lan.RunFor(5'000);
  for (size_t i : h) {
    auto f = Of(lan.events(i), Event::Kind::kFound);
    EXPECT_EQ(f.size(), 2u) << "host " << i;
    for (const auto& e : f) EXPECT_NE(e.instance, lan.engine(i).instance());
  }
}

TEST(MdnsEngine, BrowserQueriesBackOffExponentiallyToTheCap) {
  EngineOptions o;
  o.seed = 3;
  o.max_query_interval_ms = 16'000;
  Lan lan;
  size_t a = lan.Add(o);
  lan.Start(a);
  lan.RunFor(120'000);
  std::vector<int64_t> at;
  for (const auto& s : lan.sent())
    if (!s.m.is_response() && s.m.questions.size() == 1 && s.m.questions[0].type == kPtr) at.push_back(s.at);
  ASSERT_GE(at.size(), 8u);
  std::vector<int64_t> gaps;
  for (size_t i = 1; i < at.size(); ++i) gaps.push_back(at[i] - at[i - 1]);
  EXPECT_EQ(std::vector<int64_t>(gaps.begin(), gaps.begin() + 7),
            (std::vector<int64_t>{1000, 2000, 4000, 8000, 16000, 16000, 16000}));
  EXPECT_TRUE(Of(lan.events(a), Event::Kind::kFound).empty());
}

TEST(MdnsEngine, SimultaneousNameClashRenamesExactlyOne) {
  Lan lan;
  EngineOptions o1, o2;
  for (auto* o : {&o1, &o2}) {
    o->instance = "twin";
    o->txt = {{"version", "1.0"}, {"node_name", "twin"}};
  }
  o1.addresses = {Ipv4{10, 0, 0, 1}};
  o2.addresses = {Ipv4{10, 0, 0, 2}};
  o1.seed = 5;
  o2.seed = 6;
  size_t a = lan.Add(o1), b = lan.Add(o2);
  lan.Start(a);
  lan.Start(b);
  lan.RunFor(15'000);
  std::string na = lan.engine(a).instance(), nb = lan.engine(b).instance();
  EXPECT_NE(na, nb);
  EXPECT_TRUE((na == "twin" && nb == "twin (2)") || (na == "twin (2)" && nb == "twin")) << na << " / " << nb;
  EXPECT_NE(lan.engine(a).host(), lan.engine(b).host());
  size_t renames = Of(lan.events(a), Event::Kind::kRenamed).size() + Of(lan.events(b), Event::Kind::kRenamed).size();
  EXPECT_EQ(renames, 1u);
  EXPECT_TRUE(lan.engine(a).advertised() && lan.engine(b).advertised());
  // Each finds the other exactly at its address, under the other's instance name.
  auto fa = Of(lan.events(a), Event::Kind::kFound);
  auto fb = Of(lan.events(b), Event::Kind::kFound);
  ASSERT_FALSE(fa.empty());
  ASSERT_FALSE(fb.empty());
  EXPECT_EQ(fa.back().candidate.address, "10.0.0.2:6881");
  EXPECT_EQ(fa.back().instance, nb);
  EXPECT_EQ(fb.back().candidate.address, "10.0.0.1:6881");
  EXPECT_EQ(fb.back().instance, na);
  EXPECT_EQ(fb.back().candidate.node_name, "twin");
}

TEST(MdnsEngine, LateJoinerWithATakenNameIsTheOneRenamed) {
  Lan lan;
  EngineOptions o1, o2;
  for (auto* o : {&o1, &o2}) {
    o->instance = "dup";
    o->host = "dup";
    o->txt = {{"version", "1.0"}, {"node_name", "dup"}};
  }
  o1.addresses = {Ipv4{10, 0, 0, 1}};
  o2.addresses = {Ipv4{10, 0, 0, 2}};
  size_t a = lan.Add(o1), b = lan.Add(o2);
  lan.Start(a);
  lan.RunFor(10'000);
  lan.Start(b);
  lan.RunFor(10'000);
  EXPECT_EQ(lan.engine(a).instance(), "dup");
  EXPECT_EQ(lan.engine(a).host(), "dup");
  EXPECT_EQ(lan.engine(b).instance(), "dup (2)");
  EXPECT_EQ(lan.engine(b).host(), "dup-2");
  EXPECT_TRUE(Of(lan.events(a), Event::Kind::kRenamed).empty());
  auto r = Of(lan.events(b), Event::Kind::kRenamed);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].old_name, "dup");
  EXPECT_EQ(r[0].name, "dup (2)");
  EXPECT_EQ(lan.engine(b).stats().conflicts, 2u);   // the instance and the host
  auto fa = Of(lan.events(a), Event::Kind::kFound);
  ASSERT_EQ(fa.size(), 1u);
  EXPECT_EQ(fa[0].candidate.address, "10.0.0.2:6881");
}

TEST(MdnsEngine, GoodbyeRemovesTheServiceWithinASecond) {
  Lan lan;
  size_t a = lan.Add("hub1", 1, 1), b = lan.Add("hub2", 2, 2);
  lan.Start(a);
  lan.Start(b);
  lan.RunFor(5000);
  ASSERT_EQ(Of(lan.events(b), Event::Kind::kFound).size(), 1u);
  size_t before = lan.sent().size();
  int64_t stop = lan.now();
  lan.Stop(a);
  ASSERT_GT(lan.sent().size(), before);
  const Message& bye = lan.sent().back().m;
  ASSERT_TRUE(bye.is_response());
  ASSERT_TRUE(Find(bye.answers, kPtr) && Find(bye.answers, kSrv) && Find(bye.answers, kTxt) && Find(bye.answers, kA));
  for (const auto& r : bye.answers) EXPECT_EQ(r.ttl, 0u);
  lan.RunFor(999);
  EXPECT_TRUE(Of(lan.events(b), Event::Kind::kRemoved).empty()) << "goodbyes take effect after one second";
  lan.RunFor(100);
  auto removed = Of(lan.events(b), Event::Kind::kRemoved);
  ASSERT_EQ(removed.size(), 1u);
  EXPECT_EQ(removed[0].candidate.address, "10.0.0.1:6881");
  EXPECT_LE(lan.now() - stop, 1100);
  // The stopped engine is inert.
  size_t n = lan.sent().size();
  lan.RunFor(60'000);
  for (size_t i = n; i < lan.sent().size(); ++i) EXPECT_NE(lan.sent()[i].from, a);
}

TEST(MdnsEngine, RecordsExpireAfterTheirTtlWhenTheHostVanishes) {
  Lan lan;
  size_t a = lan.Add("hub1", 1, 1), b = lan.Add("hub2", 2, 2);
  lan.Start(a);
  lan.Start(b);
  lan.RunFor(5000);
  ASSERT_EQ(Of(lan.events(b), Event::Kind::kFound).size(), 1u);
  lan.Cut(a);   // a crash: no goodbye
  int64_t cut = lan.now();
  lan.RunFor(100'000);
  EXPECT_TRUE(Of(lan.events(b), Event::Kind::kRemoved).empty()) << "removed before the 120 s TTL ran out";
  lan.RunFor(30'000);
  auto removed = Of(lan.events(b), Event::Kind::kRemoved);
  ASSERT_EQ(removed.size(), 1u);
  EXPECT_EQ(removed[0].instance, "hub1");
  EXPECT_LE(lan.now() - cut, 130'000);
  // b asked again before giving up (§5.2 refresh at 80-95 % of the TTL).
  size_t refreshes = 0;
  for (const auto& s : lan.sent())
    if (s.from == b && s.at > cut && !s.m.is_response())
      for (const auto& q : s.m.questions)
        if (q.type == kSrv || q.type == kA) ++refreshes;
  EXPECT_GE(refreshes, 4u);
}

TEST(MdnsEngine, LiveServicesStayFoundForHoursThroughTtlRefresh) {
  Lan lan;
  size_t a = lan.Add("hub1", 1, 1), b = lan.Add("hub2", 2, 2);
  lan.Start(a);
  lan.Start(b);
  lan.RunFor(3 * 3600 * 1000);
  EXPECT_EQ(Of(lan.events(a), Event::Kind::kFound).size(), 1u);
  EXPECT_EQ(Of(lan.events(b), Event::Kind::kFound).size(), 1u);
  EXPECT_TRUE(Of(lan.events(a), Event::Kind::kRemoved).empty());
  EXPECT_TRUE(Of(lan.events(b), Event::Kind::kRemoved).empty());
  // Bounded chatter: a few packets per minute per host, not a storm.
  EXPECT_LT(lan.sent().size(), 2000u);
}

TEST(MdnsEngine, ResponderSuppressesAnswersTheQuerierAlreadyKnows) {
  Lan lan;
  size_t a = lan.Add("hub1", 1, 1);
  lan.Start(a);
  lan.RunFor(5000);
  const Endpoint querier{Ipv4{10, 0, 0, 9}, kPort};

  int64_t t = lan.now();
  uint64_t suppressed = lan.engine(a).stats().answers_suppressed;
  lan.Inject(a, querier, PtrQuery({PtrTo("hub1", 4500)}));
  lan.RunFor(1000);
  EXPECT_EQ(ResponsesFrom(lan, a, t), 0u);
  EXPECT_EQ(lan.engine(a).stats().answers_suppressed, suppressed + 1);

  t = lan.now();
  lan.Inject(a, querier, PtrQuery({PtrTo("hub1", 2249)}));   // under half of 4500: not known enough
  lan.RunFor(1000);
  ASSERT_EQ(ResponsesFrom(lan, a, t), 1u);
  const auto& resp = lan.sent().back();
  EXPECT_EQ(resp.d.to, kMulticast);
  EXPECT_TRUE(Find(resp.m.answers, kPtr));
  EXPECT_TRUE(Find(resp.m.additionals, kSrv) && Find(resp.m.additionals, kA)) << "RFC 6763 §12.1";
  EXPECT_GE(resp.at - t, 20) << "a shared answer waits 20-120 ms";
  EXPECT_LE(resp.at - t, 120);

  // Within a second of that answer the same record is not multicast again (§6).
  t = lan.now();
  lan.Inject(a, querier, PtrQuery());
  lan.RunFor(1000);
  EXPECT_EQ(ResponsesFrom(lan, a, t), 0u);

  // Another host's PTR in the known answers does not suppress ours.
  lan.RunFor(1000);
  t = lan.now();
  lan.Inject(a, querier, PtrQuery({PtrTo("other", 4500)}));
  lan.RunFor(1000);
  EXPECT_EQ(ResponsesFrom(lan, a, t), 1u);
}

TEST(MdnsEngine, BrowserSendsWhatItKnowsWithItsQueries) {
  Lan lan;
  size_t a = lan.Add("hub1", 1, 1), b = lan.Add("hub2", 2, 2);
  lan.Start(a);
  lan.Start(b);
  lan.RunFor(5000);
  ASSERT_EQ(Of(lan.events(b), Event::Kind::kFound).size(), 1u);
  size_t from = lan.sent().size();
  uint64_t suppressed = lan.engine(a).stats().answers_suppressed;
  lan.RunFor(20'000);
  bool carried = false;
  for (size_t i = from; i < lan.sent().size(); ++i) {
    const auto& s = lan.sent()[i];
    if (s.from != b || s.m.is_response()) continue;
    for (const auto& r : s.m.answers)
      if (r.type == kPtr && std::get<Name>(r.data)[0] == "hub1") {
        carried = true;
        EXPECT_GT(r.ttl, 2250u);
      }
  }
  EXPECT_TRUE(carried);
  EXPECT_GT(lan.engine(a).stats().answers_suppressed, suppressed) << "and hub1 stayed quiet for them";
}

TEST(MdnsEngine, QuestionsWithTheQuBitAndLegacyQueriesGetUnicastAnswers) {
  Lan lan;
  size_t a = lan.Add("hub1", 1, 1);
  lan.Start(a);
  lan.RunFor(5000);

  Message qu;
  qu.questions.push_back(Question{Name{"hub1", "_stream-hub", "_tcp", "local"}, kSrv, kClassIn, true});
  lan.Inject(a, Endpoint{Ipv4{10, 0, 0, 9}, kPort}, qu);
  const auto& r1 = lan.sent().back();
  EXPECT_EQ(r1.d.to, (Endpoint{Ipv4{10, 0, 0, 9}, kPort}));
  EXPECT_TRUE(r1.m.questions.empty());
  ASSERT_TRUE(Find(r1.m.answers, kSrv));
  EXPECT_TRUE(Find(r1.m.additionals, kA));

  Message legacy;
  legacy.id = 0x1234;
  legacy.questions.push_back(Question{Name{"hub1", "local"}, kA, kClassIn, false});
  lan.Inject(a, Endpoint{Ipv4{10, 0, 0, 9}, 40000}, legacy);
  const auto& r2 = lan.sent().back();
  EXPECT_EQ(r2.d.to, (Endpoint{Ipv4{10, 0, 0, 9}, 40000}));
  EXPECT_EQ(r2.m.id, 0x1234);
  ASSERT_EQ(r2.m.questions.size(), 1u);
  const Record* rec = Find(r2.m.answers, kA);
  ASSERT_TRUE(rec);
  EXPECT_LE(rec->ttl, 10u);
  EXPECT_FALSE(rec->cache_flush);

  // A type the host name lacks is denied with NSEC (§6.1).
  Message aaaa;
  aaaa.questions.push_back(Question{Name{"hub1", "local"}, kAaaa, kClassIn, true});
  lan.Inject(a, Endpoint{Ipv4{10, 0, 0, 9}, kPort}, aaaa);
  const Record* nsec = Find(lan.sent().back().m.answers, kNsec);
  ASSERT_TRUE(nsec);
  EXPECT_EQ(std::get<Nsec>(nsec->data).types, (std::vector<uint16_t>{kA}));
}

TEST(MdnsEngine, ResponsesFromAPortOtherThan5353AreIgnored) {
  EngineOptions o;
  o.seed = 1;
  Lan lan;
  size_t b = lan.Add(o);
  lan.Start(b);
  lan.RunFor(100);
  Message resp;
  resp.flags = Message::kResponse | Message::kAuthoritative;
  Name inst{"spoof", "_stream-hub", "_tcp", "local"};
  resp.answers = {PtrTo("spoof", 4500), Record{inst, kSrv, kClassIn, true, 120, Srv{0, 0, 1, Name{"s", "local"}}},
                  Record{inst, kTxt, kClassIn, true, 4500, Txt{{"version=1.0"}}},
                  Record{Name{"s", "local"}, kA, kClassIn, true, 120, Ipv4{10, 0, 0, 7}}};
  lan.Inject(b, Endpoint{Ipv4{10, 0, 0, 7}, 12345}, resp);
  EXPECT_TRUE(Of(lan.events(b), Event::Kind::kFound).empty());
  EXPECT_EQ(lan.engine(b).stats().ignored, 1u);
  lan.Inject(b, Endpoint{Ipv4{10, 0, 0, 7}, kPort}, resp);   // the same from 5353 counts
  auto f = Of(lan.events(b), Event::Kind::kFound);
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].candidate.address, "10.0.0.7:1");
  EXPECT_EQ(f[0].candidate.node_name, "spoof") << "no node_name in TXT: the instance name";
}

TEST(MdnsEngine, MalformedPacketsAreCountedAndChangeNothing) {
  Lan lan;
  size_t a = lan.Add("hub1", 1, 1), b = lan.Add("hub2", 2, 2);
  lan.Start(a);
  lan.Start(b);
  lan.RunFor(5000);
  const Endpoint evil{Ipv4{10, 0, 0, 66}, kPort};
  std::vector<std::vector<uint8_t>> bad = {
      {},
      {0, 0, 0x84},
      {0, 0, 0x84, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0xC0, 12, 0, 12, 0, 1, 0, 0, 0, 1, 0, 0},   // pointer loop
      {0, 0, 0x84, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 'x', 0, 0, 1, 0, 1, 0, 0, 0, 1, 0xFF, 0xFF, 1},   // rdlen
      {0, 0, 0x84, 0, 0, 0, 0xFF, 0xFF, 0, 0, 0, 0, 0},                                    // counts
      std::vector<uint8_t>(9000, 0xC0),
  };
  size_t before_events = lan.events(b).size();
  uint64_t before = lan.engine(b).stats().malformed;
  for (const auto& p : bad) lan.InjectBytes(b, evil, p);
  EXPECT_EQ(lan.engine(b).stats().malformed - before, bad.size());
  EXPECT_EQ(lan.events(b).size(), before_events);
  // Still answering and still browsing.
  lan.Stop(a);
  lan.RunFor(2000);
  EXPECT_EQ(Of(lan.events(b), Event::Kind::kRemoved).size(), 1u);
}

TEST(MdnsEngine, ProbeTiebreakDefersToLexicographicallyLaterData) {
  Lan lan;
  size_t a = lan.Add("hub1", 5, 1);
  lan.Start(a);
  lan.RunFor(1);   // probing has begun, nothing claimed
  auto probe_with = [](Ipv4 ip) {
    Message p;
    p.questions.push_back(Question{Name{"hub1", "local"}, kAny, kClassIn, true});
    p.authorities.push_back(Record{Name{"hub1", "local"}, kA, kClassIn, false, 120, ip});
    return p;
  };
  lan.Inject(a, Endpoint{Ipv4{10, 0, 0, 4}, kPort}, probe_with(Ipv4{10, 0, 0, 4}));   // earlier: ignored
  EXPECT_EQ(lan.engine(a).stats().probe_defers, 0u);
  lan.Inject(a, Endpoint{Ipv4{10, 0, 0, 5}, kPort}, probe_with(Ipv4{10, 0, 0, 5}));   // ours looped back: a tie
  EXPECT_EQ(lan.engine(a).stats().probe_defers, 0u);
  lan.Inject(a, Endpoint{Ipv4{10, 0, 0, 9}, kPort}, probe_with(Ipv4{10, 0, 0, 9}));   // later: we wait 1 s
  EXPECT_EQ(lan.engine(a).stats().probe_defers, 1u);
  int64_t deferred = lan.now();
  lan.RunFor(5000);
  // Nobody defended the name afterwards, so it is ours after probing again.
  EXPECT_TRUE(lan.engine(a).advertised());
  EXPECT_EQ(lan.engine(a).host(), "hub1");
  int64_t first_probe_after = 0;
  for (const auto& s : lan.sent())
    if (s.from == a && s.at > deferred && !s.m.authorities.empty()) {
      first_probe_after = s.at;
      break;
    }
  EXPECT_GE(first_probe_after - deferred, 1000);
}

TEST(MdnsEngine, ACacheFlushReplacesAnOldAddress) {
  Lan lan;
  size_t a = lan.Add("hub1", 1, 1, 6881), b = lan.Add("hub2", 2, 2);
  lan.Start(a);
  lan.Start(b);
  lan.RunFor(5000);
  lan.Cut(a);   // crashed without a goodbye, and comes back on another port
  lan.RunFor(10'000);
  size_t a2 = lan.Add("hub1", 1, 9, 7777);
  lan.Start(a2);
  lan.RunFor(5000);
  auto removed = Of(lan.events(b), Event::Kind::kRemoved);
  auto found = Of(lan.events(b), Event::Kind::kFound);
  ASSERT_EQ(removed.size(), 1u);
  EXPECT_EQ(removed[0].candidate.address, "10.0.0.1:6881");
  ASSERT_EQ(found.size(), 2u);
  EXPECT_EQ(found[1].candidate.address, "10.0.0.1:7777");
  EXPECT_EQ(lan.engine(a2).instance(), "hub1") << "identical records are no conflict";
}

TEST(MdnsEngine, NextInstanceNameStaysWithin63Bytes) {
  EXPECT_EQ(NextInstanceName("hub", 2), "hub (2)");
  std::string longname(70, 'x');
  EXPECT_EQ(NextInstanceName(longname, 12).size(), 63u);
  std::string utf8;
  for (int i = 0; i < 30; ++i) utf8 += "\xC3\xA9";   // 60 bytes of "é"
  std::string n = NextInstanceName(utf8, 3);
  EXPECT_LE(n.size(), 63u);
  EXPECT_EQ(n.substr(n.size() - 4), " (3)");
  EXPECT_EQ((n.size() - 4) % 2, 0u) << "not cut inside a character";
}

}  // namespace
}  // namespace hub::cluster::mdns
