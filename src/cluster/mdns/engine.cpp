#include "cluster/mdns/engine.h"

#include <algorithm>
#include <climits>
#include <set>
#include <tuple>

namespace hub::cluster::mdns {
namespace {

constexpr int64_t kNever = INT64_MAX;
constexpr int64_t kLongAgo = INT64_MIN / 2;
constexpr int kProbes = 3;
constexpr int64_t kProbeIntervalMs = 250;
constexpr int64_t kTiebreakWaitMs = 1000;     // §8.2: the loser waits one second
constexpr int kConflictBurst = 15;            // §8.1: 15 conflicts in 10 s ...
constexpr int64_t kConflictWindowMs = 10'000;
constexpr int64_t kConflictBackoffMs = 5'000; // ... then probe once per 5 s
constexpr uint32_t kLegacyTtlS = 10;          // §6.7
constexpr int kResolveAttempts = 4;

// splitmix64: tiny, deterministic, good enough for jitter.
class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed) {}
  uint64_t Next() {
    uint64_t z = (s_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  int64_t Range(int64_t lo, int64_t hi) {   // [lo, hi]
    return lo + static_cast<int64_t>(Next() % static_cast<uint64_t>(hi - lo + 1));
  }

 private:
  uint64_t s_;
};

std::string Fold(std::string s) {
  for (auto& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

// Cuts to at most `max` bytes without splitting a UTF-8 sequence.
std::string CutUtf8(std::string s, size_t max) {
  if (s.size() <= max) return s;
  size_t n = max;
  while (n > 0 && (static_cast<uint8_t>(s[n]) & 0xC0) == 0x80) --n;
  s.resize(n);
  return s;
}

std::string HostLabel(const std::string& from) {
  std::string h;
  for (char c : Fold(from)) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (ok) h.push_back(c);
    else if (!h.empty() && h.back() != '-') h.push_back('-');
  }
  while (!h.empty() && h.back() == '-') h.pop_back();
  h = h.substr(0, 56);   // room for "-NNN"
  while (!h.empty() && h.back() == '-') h.pop_back();
  return h.empty() ? "stream-hub" : h;
}

std::string FormatAddress(const Ipv4& ip, uint16_t port) {
  return std::to_string(ip[0]) + "." + std::to_string(ip[1]) + "." + std::to_string(ip[2]) + "." +
         std::to_string(ip[3]) + ":" + std::to_string(port);
}

Name Concat(std::string first, const Name& rest) {
  Name n{std::move(first)};
  n.insert(n.end(), rest.begin(), rest.end());
  return n;
}

std::string NameKey(const Name& n) { return Fold(ToString(n)); }

std::string CacheKey(const Record& r) {
  std::string k = NameKey(r.name);
  k.push_back('\0');
  k.push_back(static_cast<char>(r.type >> 8));
  k.push_back(static_cast<char>(r.type));
  auto d = RdataBytes(r, true);
  k.append(d.begin(), d.end());
  return k;
}

// The value of `key` in TXT strings "key=value" (RFC 6763 §6.4: keys are
// case-insensitive, the first occurrence wins).
std::string TxtValue(const Txt& t, std::string_view key) {
  for (const auto& s : t.strings) {
    auto eq = s.find('=');
    std::string k = s.substr(0, eq);
    if (Fold(k) == key) return eq == std::string::npos ? std::string() : s.substr(eq + 1);
  }
  return {};
}

bool Later(std::vector<std::tuple<uint16_t, uint16_t, std::vector<uint8_t>>> a,
           std::vector<std::tuple<uint16_t, uint16_t, std::vector<uint8_t>>> b) {
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  return std::lexicographical_compare(b.begin(), b.end(), a.begin(), a.end());
}

}  // namespace

std::string NextInstanceName(const std::string& base, int n) {
  std::string suffix = " (" + std::to_string(n) + ")";
  return CutUtf8(base, kMaxLabel - suffix.size()) + suffix;
}

struct Engine::State {
  enum class Phase { kIdle, kProbing, kAnnouncing, kRunning, kStopped };
  enum class Role { kPtr, kEnumPtr, kSrv, kTxt, kA, kNsecInstance, kNsecHost };
  struct Own {
    Record rec;
    Role role;
    bool unique;
    int64_t last_multicast = kLongAgo;
  };
  struct Pending {
    int64_t due;
    std::vector<size_t> answers, additionals;   // indices into own
    Endpoint querier;
  };
  struct Entry {
    Record rec;
    int64_t received = 0, expires = 0, next_refresh = kNever;
    uint32_t ttl = 0;
    int refreshes = 0;                          // of 4 (80, 85, 90, 95 %)
  };
  struct Instance {
    std::string label;
    std::map<std::string, Candidate> reported;  // by address
    int64_t next_resolve = kNever;
    int64_t resolve_interval = 1000;
    int attempts = 0;
  };

  explicit State(EngineOptions opt) : o(std::move(opt)), rng(o.seed) {
    service_name = MakeName(o.service + ".local");
    enum_name = MakeName("_services._dns-sd._udp.local");
    advertise = !o.instance.empty();
    base_instance = instance = CutUtf8(o.instance, kMaxLabel);
    base_host = host = o.host.empty() ? HostLabel(o.instance) : HostLabel(o.host);
    for (const auto& [k, v] : o.txt) txt.strings.push_back(CutUtf8(k + "=" + v, 255));
    if (o.announcements < 2) o.announcements = 2;
    if (o.max_packet < 512) o.max_packet = 512;
    if (o.max_packet > kMaxMessage) o.max_packet = kMaxMessage;
    BuildRecords();
  }

  EngineOptions o;
  Rng rng;
  EngineStats stats;
  std::vector<Datagram> out;
  std::vector<Event> events;
  Name service_name, enum_name;
  Txt txt;

  // Responder.
  Phase phase = Phase::kIdle;
  bool advertise = false;
  std::string base_instance, instance, base_host, host;
  int instance_try = 1, host_try = 1;
  std::vector<Own> own;
  int probes_sent = 0;
  int64_t next_probe = kNever;
  int announces_sent = 0;
  int64_t next_announce = kNever;
  std::deque<int64_t> conflict_times;
  std::vector<Pending> pending;

  // Browser.
  int64_t next_query = kNever;
  int64_t query_interval = 1000;
  std::map<std::string, Entry> cache;
  std::map<std::string, Instance> instances;    // by folded label

  Name InstanceName() const { return Concat(instance, service_name); }
  Name HostName() const { return Name{host, "local"}; }
  bool Claimed() const { return phase == Phase::kAnnouncing || phase == Phase::kRunning; }

  void BuildRecords() {
    own.clear();
    if (!advertise) return;
    auto add = [&](Name name, uint16_t type, uint32_t ttl, Rdata d, Role role, bool unique) {
      Record r{std::move(name), type, kClassIn, unique, ttl, std::move(d)};
      own.push_back(Own{std::move(r), role, unique});
    };
    add(service_name, kPtr, o.other_ttl_s, InstanceName(), Role::kPtr, false);
    add(enum_name, kPtr, o.other_ttl_s, service_name, Role::kEnumPtr, false);
    add(InstanceName(), kSrv, o.host_ttl_s, Srv{0, 0, o.port, HostName()}, Role::kSrv, true);
    add(InstanceName(), kTxt, o.other_ttl_s, txt, Role::kTxt, true);
    for (const auto& a : o.addresses) add(HostName(), kA, o.host_ttl_s, a, Role::kA, true);
    add(InstanceName(), kNsec, o.host_ttl_s, Nsec{InstanceName(), {kTxt, kSrv}}, Role::kNsecInstance, true);
    add(HostName(), kNsec, o.host_ttl_s, Nsec{HostName(), {kA}}, Role::kNsecHost, true);
  }

  // ---- output ---------------------------------------------------------------

  void Emit(const Endpoint& to, const Message& m) {
    auto bytes = Encode(m, o.max_packet);
    if (!bytes) return;   // own records are validated at construction; cannot happen
    out.push_back(Datagram{to, std::move(*bytes)});
    ++stats.packets_out;
  }

  // Sends `answers` (split over as many datagrams as needed) and as many
  // `additionals` as fit in the last one. For a query (`base` without
  // kResponse), every datagram but the last carries TC (§7.2) and only the
  // first carries the questions.
  void Send(const Endpoint& to, Message base, const std::vector<Record>& answers,
            const std::vector<Record>& additionals) {
    const bool query = !base.is_response();
    Message cur = base;
    auto fits = [&](const Message& m) { return Encode(m, o.max_packet).ok(); };
    for (const auto& r : answers) {
      cur.answers.push_back(r);
      if (fits(cur)) continue;
      cur.answers.pop_back();
      if (cur.answers.empty() && (cur.questions.empty() || !query)) continue;   // can never fit
      if (query) cur.flags |= Message::kTruncated;
      Emit(to, cur);
      cur = base;
      cur.flags &= static_cast<uint16_t>(~Message::kTruncated);
      if (query) cur.questions.clear();
      cur.answers.push_back(r);
      if (!fits(cur)) cur.answers.pop_back();
    }
    for (const auto& r : additionals) {
      cur.additionals.push_back(r);
      if (!fits(cur)) cur.additionals.pop_back();
    }
    if (cur.questions.empty() && cur.answers.empty() && cur.additionals.empty()) return;
    Emit(to, cur);
  }

  Record Wire(size_t i, bool legacy) const {
    Record r = own[i].rec;
    if (legacy) {
      r.cache_flush = false;
      r.ttl = std::min(r.ttl, kLegacyTtlS);
    }
    return r;
  }

  // ---- responder ------------------------------------------------------------

  void SendProbe() {
    Message m;
    m.questions.push_back(Question{InstanceName(), kAny, kClassIn, true});
    m.questions.push_back(Question{HostName(), kAny, kClassIn, true});
    for (const auto& w : own) {
      if (!w.unique || w.rec.type == kNsec) continue;
      Record r = w.rec;
      r.cache_flush = false;
      m.authorities.push_back(std::move(r));
    }
    Emit(kMulticast, m);
  }

  void Announce(int64_t now) {
    std::vector<Record> answers, additionals;
    for (auto& w : own) {
      (w.rec.type == kNsec ? additionals : answers).push_back(w.rec);
      w.last_multicast = now;
    }
    Message base;
    base.flags = Message::kResponse | Message::kAuthoritative;
    Send(kMulticast, base, answers, additionals);
  }

  void StartProbing(int64_t now, int64_t delay) {
    phase = Phase::kProbing;
    probes_sent = 0;
    announces_sent = 0;
    next_announce = kNever;
    pending.clear();
    // §8.1: after 15 conflicts within 10 s, wait 5 s between attempts.
    while (!conflict_times.empty() && conflict_times.front() <= now - kConflictWindowMs)
      conflict_times.pop_front();
    if (static_cast<int>(conflict_times.size()) >= kConflictBurst) delay = std::max(delay, kConflictBackoffMs);
    next_probe = now + delay;
  }

  void RunResponder(int64_t now) {
    if (phase == Phase::kProbing && now >= next_probe) {
      if (probes_sent < kProbes) {
        SendProbe();
        ++probes_sent;
        next_probe = now + kProbeIntervalMs;
      } else {
        // 250 ms after the third probe went unanswered, the names are ours.
        phase = Phase::kAnnouncing;
        next_probe = kNever;
        announces_sent = 0;
        next_announce = now;
        Event e;
        e.kind = Event::Kind::kAdvertised;
        e.name = instance;
        events.push_back(std::move(e));
      }
    }
    if (phase == Phase::kAnnouncing && now >= next_announce) {
      Announce(now);
      ++announces_sent;
      if (announces_sent >= o.announcements) {
        phase = Phase::kRunning;
        next_announce = kNever;
      } else {
        next_announce = now + (int64_t{1000} << (announces_sent - 1));   // 1 s, 2 s, 4 s ...
      }
    }
    FlushPending(now);
  }

  void FlushPending(int64_t now) {
    std::vector<size_t> answers, additionals;
    auto add = [](std::vector<size_t>& v, size_t i) {
      if (std::find(v.begin(), v.end(), i) == v.end()) v.push_back(i);
    };
    for (auto it = pending.begin(); it != pending.end();) {
      if (it->due > now) {
        ++it;
        continue;
      }
      for (size_t i : it->answers) add(answers, i);
      for (size_t i : it->additionals) add(additionals, i);
      it = pending.erase(it);
    }
    if (answers.empty()) return;
    std::vector<Record> a, b;
    for (size_t i : answers) {
      a.push_back(own[i].rec);
      own[i].last_multicast = now;
    }
    for (size_t i : additionals)
      if (std::find(answers.begin(), answers.end(), i) == answers.end()) b.push_back(own[i].rec);
    Message base;
    base.flags = Message::kResponse | Message::kAuthoritative;
    Send(kMulticast, base, a, b);
  }

  bool Known(const std::vector<Record>& known, const Record& r) const {
    for (const auto& k : known)
      if (k.ttl >= r.ttl / 2 && SameRecord(k, r)) return true;   // §7.1: at least half the TTL
    return false;
  }

  std::vector<size_t> AdditionalsFor(const std::vector<size_t>& answers) const {
    std::vector<size_t> add;
    auto push_role = [&](Role role) {
      for (size_t i = 0; i < own.size(); ++i)
        if (own[i].role == role && std::find(add.begin(), add.end(), i) == add.end()) add.push_back(i);
    };
    for (size_t i : answers) {
      switch (own[i].role) {
        case Role::kPtr:   // RFC 6763 §12.1
          push_role(Role::kSrv);
          push_role(Role::kTxt);
          push_role(Role::kA);
          push_role(Role::kNsecInstance);
          push_role(Role::kNsecHost);
          break;
        case Role::kSrv:   // RFC 6763 §12.2
          push_role(Role::kA);
          push_role(Role::kNsecHost);
          break;
        default:
          break;
      }
    }
    std::erase_if(add, [&](size_t i) { return std::find(answers.begin(), answers.end(), i) != answers.end(); });
    return add;
  }

  // §8.2: another host probing for one of the names this one is probing for.
  void Tiebreak(int64_t now, const Message& m) {
    for (const Name& n : {InstanceName(), HostName()}) {
      std::vector<std::tuple<uint16_t, uint16_t, std::vector<uint8_t>>> theirs, ours;
      for (const auto& r : m.authorities)
        if (SameName(r.name, n)) theirs.emplace_back(r.rclass, r.type, RdataBytes(r, false));
      if (theirs.empty()) continue;
      for (const auto& w : own)
        if (w.unique && w.rec.type != kNsec && SameName(w.rec.name, n))
          ours.emplace_back(w.rec.rclass, w.rec.type, RdataBytes(w.rec, false));
      if (Later(theirs, ours)) {
        ++stats.probe_defers;
        StartProbing(now, kTiebreakWaitMs);
        return;
      }
    }
  }

  void AnswerQuery(int64_t now, const Endpoint& from, const Message& m) {
    if (!advertise) return;
    if (phase == Phase::kProbing) Tiebreak(now, m);
    if (!Claimed()) return;
    const bool legacy = from.port != kPort;
    const bool probe = !m.authorities.empty();
    const std::vector<Record>& known = m.answers;

    if (m.questions.empty()) {
      // A continuation of a truncated query's known answers (§7.2).
      for (auto& p : pending) {
        if (!(p.querier == from)) continue;
        auto drop = [&](size_t i) {
          bool k = Known(known, own[i].rec);
          if (k) ++stats.answers_suppressed;
          return k;
        };
        std::erase_if(p.answers, drop);
        std::erase_if(p.additionals, [&](size_t i) { return Known(known, own[i].rec); });
      }
      std::erase_if(pending, [](const Pending& p) { return p.answers.empty(); });
      return;
    }

    std::vector<size_t> uni, multi;
    bool all_unique = true;
    for (const auto& q : m.questions) {
      if (q.qclass != kClassIn && q.qclass != kAny) continue;
      bool name_is_ours = false, type_found = false;
      std::vector<size_t> hits;
      for (size_t i = 0; i < own.size(); ++i) {
        const Record& r = own[i].rec;
        if (!SameName(q.name, r.name)) continue;
        name_is_ours = true;
        if (r.type == kNsec ? q.type == kNsec : (q.type == kAny || q.type == r.type)) {
          hits.push_back(i);
          type_found = true;
        }
      }
      // §6.1: a unique name of ours asked for a type it lacks gets the NSEC.
      if (name_is_ours && !type_found && q.type != kAny) {
        for (size_t i = 0; i < own.size(); ++i)
          if (own[i].rec.type == kNsec && SameName(q.name, own[i].rec.name)) hits.push_back(i);
      }
      for (size_t i : hits) {
        if (Known(known, own[i].rec)) {
          ++stats.answers_suppressed;
          continue;
        }
        // §5.4: answer a QU question by unicast, unless the record has not
        // been multicast for a quarter of its TTL.
        bool unicast = legacy || (q.unicast_response &&
                                  now - own[i].last_multicast < int64_t{own[i].rec.ttl} * 250);
        auto& dst = unicast ? uni : multi;
        if (std::find(dst.begin(), dst.end(), i) == dst.end()) dst.push_back(i);
        if (!unicast && !own[i].unique) all_unique = false;
      }
    }

    if (!uni.empty()) {
      std::vector<Record> a, b;
      for (size_t i : uni) a.push_back(Wire(i, legacy));
      for (size_t i : AdditionalsFor(uni))
        if (!Known(known, own[i].rec)) b.push_back(Wire(i, legacy));
      Message base;
      base.flags = Message::kResponse | Message::kAuthoritative;
      if (legacy) {   // §6.7: echo the ID and the questions
        base.id = m.id;
        base.questions = m.questions;
      }
      Send(from, base, a, b);
    }

    // §6: at most one multicast of a record per second (per 250 ms when
    // defending against a probe).
    const int64_t min_gap = probe ? 250 : 1000;
    std::erase_if(multi, [&](size_t i) { return now - own[i].last_multicast < min_gap; });
    if (multi.empty()) return;
    Pending p;
    // Unique answers go at once; shared ones after 20-120 ms so that other
    // responders' answers can suppress them (§6), 400-500 ms when more known
    // answers are coming (§7.2).
    p.due = m.truncated() ? now + rng.Range(400, 500) : all_unique ? now : now + rng.Range(20, 120);
    p.answers = multi;
    for (size_t i : AdditionalsFor(multi))
      if (!Known(known, own[i].rec)) p.additionals.push_back(i);
    p.querier = from;
    pending.push_back(std::move(p));
  }

  void Rename(int64_t now, bool instance_clash, bool host_clash) {
    conflict_times.push_back(now);
    if (instance_clash) {
      ++stats.conflicts;
      std::string old = instance;
      instance = NextInstanceName(base_instance, ++instance_try);
      Event e;
      e.kind = Event::Kind::kRenamed;
      e.name = instance;
      e.old_name = old;
      events.push_back(std::move(e));
    }
    if (host_clash) {
      ++stats.conflicts;
      std::string old = host;
      std::string suffix = "-" + std::to_string(++host_try);
      host = base_host.substr(0, kMaxLabel - suffix.size()) + suffix;
      Event e;
      e.kind = Event::Kind::kHostRenamed;
      e.name = host;
      e.old_name = old;
      events.push_back(std::move(e));
    }
    BuildRecords();
    StartProbing(now, 0);
  }

  // §8.1, §9: conflicts; §6.6: our records heard with a TTL under half ours;
  // §7.4: duplicate answer suppression.
  void CheckResponse(int64_t now, const Message& m) {
    if (!advertise || phase == Phase::kIdle || phase == Phase::kStopped) return;
    const Name inst = InstanceName(), hostname = HostName();
    bool inst_clash = false, host_clash = false;
    std::vector<size_t> refresh;
    for (const auto* sec : {&m.answers, &m.additionals}) {
      for (const auto& r : *sec) {
        bool on_inst = SameName(r.name, inst), on_host = SameName(r.name, hostname);
        if (on_inst || on_host) {
          bool identical = false;
          for (size_t i = 0; i < own.size(); ++i) {
            if (own[i].unique && SameRecord(own[i].rec, r)) {
              identical = true;
              if (Claimed() && r.ttl < own[i].rec.ttl / 2) refresh.push_back(i);
            }
          }
          if (!identical) (on_inst ? inst_clash : host_clash) = true;
        }
        for (auto& p : pending) {
          std::erase_if(p.answers, [&](size_t i) {
            bool dup = r.ttl >= own[i].rec.ttl && SameRecord(own[i].rec, r);
            if (dup) ++stats.answers_suppressed;
            return dup;
          });
        }
      }
    }
    std::erase_if(pending, [](const Pending& p) { return p.answers.empty(); });
    if (inst_clash || host_clash) {
      if (phase == Phase::kProbing) {
        Rename(now, inst_clash, host_clash);
      } else {
        // §9: back to probing; the probes decide who keeps the name.
        conflict_times.push_back(now);
        StartProbing(now, 0);
      }
      return;
    }
    if (!refresh.empty()) pending.push_back(Pending{now, refresh, {}, Endpoint{}});
  }

  // ---- browser --------------------------------------------------------------

  bool IsInstanceName(const Name& n) const {
    if (n.size() != service_name.size() + 1) return false;
    return SameName(Name(n.begin() + 1, n.end()), service_name);
  }

  void Insert(int64_t now, const Record& r) {
    std::string key = CacheKey(r);
    auto it = cache.find(key);
    if (r.ttl == 0) {   // §10.1: a goodbye; keep it one more second
      if (it != cache.end()) {
        it->second.expires = std::min(it->second.expires, now + 1000);
        it->second.refreshes = 4;
        it->second.next_refresh = kNever;
      }
      return;
    }
    if (r.cache_flush) {   // §10.2
      for (auto& [k, e] : cache) {
        if (k != key && e.received < now - 1000 && e.rec.type == r.type && e.rec.rclass == r.rclass &&
            SameName(e.rec.name, r.name))
          e.expires = std::min(e.expires, now + 1000);
      }
    }
    if (it == cache.end()) {
      if (cache.size() >= o.max_cache) {
        ++stats.cache_full;
        return;
      }
      it = cache.emplace(key, Entry{}).first;
    }
    Entry& e = it->second;
    e.rec = r;
    e.received = now;
    e.ttl = r.ttl;
    e.expires = now + int64_t{r.ttl} * 1000;
    e.refreshes = 0;
    ScheduleRefresh(e);
  }

  void ScheduleRefresh(Entry& e) {
    if (e.refreshes >= 4) {
      e.next_refresh = kNever;
      return;
    }
    // §5.2: at 80, 85, 90, 95 % of the TTL, plus 0-2 % jitter.
    int64_t permille = 800 + 50 * e.refreshes + rng.Range(0, 20);
    e.next_refresh = e.received + int64_t{e.ttl} * permille;
  }

  void CacheResponse(int64_t now, const Message& m) {
    // First what names instances, then the addresses of the hosts their SRVs
    // name: only records of this service type are cached.
    for (const auto* sec : {&m.answers, &m.additionals}) {
      for (const auto& r : *sec) {
        if (r.rclass != kClassIn) continue;
        bool want = false;
        if (r.type == kPtr && SameName(r.name, service_name)) {
          auto* target = std::get_if<Name>(&r.data);
          want = target && IsInstanceName(*target);
        } else if (r.type == kSrv || r.type == kTxt) {
          want = IsInstanceName(r.name);
        }
        if (want) Insert(now, r);
      }
    }
    std::set<std::string> hosts = SrvTargets(now, false);
    for (const auto* sec : {&m.answers, &m.additionals})
      for (const auto& r : *sec)
        if (r.rclass == kClassIn && r.type == kA && hosts.count(NameKey(r.name))) Insert(now, r);
  }

  // Folded names of the hosts named by live SRVs (of instances still live, if `live_only`).
  std::set<std::string> SrvTargets(int64_t now, bool live_only) const {
    std::set<std::string> hosts;
    for (const auto& [k, e] : cache) {
      if (e.rec.type != kSrv || e.expires <= now) continue;
      if (live_only && !instances.count(Fold(e.rec.name[0]))) continue;
      if (auto* s = std::get_if<Srv>(&e.rec.data)) hosts.insert(NameKey(s->target));
    }
    return hosts;
  }

  const Entry* Latest(int64_t now, const Name& name, uint16_t type) const {
    const Entry* best = nullptr;
    for (const auto& [k, e] : cache)
      if (e.rec.type == type && e.expires > now && SameName(e.rec.name, name) &&
          (!best || e.received > best->received))
        best = &e;
    return best;
  }

  void Evaluate(int64_t now) {
    if (!o.browse) return;
    std::map<std::string, std::string> live;   // folded label -> label
    for (const auto& [k, e] : cache) {
      if (e.rec.type != kPtr || e.expires <= now) continue;
      const auto& target = std::get<Name>(e.rec.data);
      if (advertise && Fold(target[0]) == Fold(instance)) continue;   // our own service
      live.emplace(Fold(target[0]), target[0]);
    }
    for (auto it = instances.begin(); it != instances.end();) {
      if (live.count(it->first)) {
        ++it;
        continue;
      }
      for (auto& [addr, c] : it->second.reported) PushEvent(Event::Kind::kRemoved, it->second.label, c);
      it = instances.erase(it);
    }
    for (const auto& [folded, label] : live) {
      Instance& inst = instances[folded];
      inst.label = label;
      const Name name = Concat(label, service_name);
      const Entry* srv = Latest(now, name, kSrv);
      const Entry* txt_entry = Latest(now, name, kTxt);
      std::map<std::string, Candidate> want;
      if (srv && txt_entry) {
        const auto& s = std::get<Srv>(srv->rec.data);
        const auto& t = std::get<Txt>(txt_entry->rec.data);
        for (const auto& [k, e] : cache) {
          if (e.rec.type != kA || e.expires <= now || !SameName(e.rec.name, s.target)) continue;
          Candidate c;
          c.address = FormatAddress(std::get<Ipv4>(e.rec.data), s.port);
          c.node_name = TxtValue(t, "node_name");
          if (c.node_name.empty()) c.node_name = label;
          c.version = TxtValue(t, "version");
          c.source = "mdns";
          want.emplace(c.address, std::move(c));
        }
      }
      for (auto it = inst.reported.begin(); it != inst.reported.end();) {
        auto w = want.find(it->first);
        if (w != want.end() && w->second.node_name == it->second.node_name &&
            w->second.version == it->second.version) {
          ++it;
          continue;
        }
        PushEvent(Event::Kind::kRemoved, label, it->second);
        it = inst.reported.erase(it);
      }
      for (auto& [addr, c] : want) {
        if (inst.reported.count(addr)) continue;
        PushEvent(Event::Kind::kFound, label, c);
        inst.reported.emplace(addr, c);
      }
      if (!want.empty()) {
        inst.next_resolve = kNever;
        inst.attempts = 0;
        inst.resolve_interval = 1000;
      } else if (inst.next_resolve == kNever && inst.attempts < kResolveAttempts) {
        inst.next_resolve = now + rng.Range(20, 120);
      }
    }
  }

  void PushEvent(Event::Kind kind, const std::string& label, const Candidate& c) {
    Event e;
    e.kind = kind;
    e.instance = label;
    e.candidate = c;
    events.push_back(std::move(e));
  }

  void RunBrowser(int64_t now) {
    if (!o.browse) return;
    bool expired = false;
    for (auto it = cache.begin(); it != cache.end();) {
      if (it->second.expires <= now) {
        it = cache.erase(it);
        expired = true;
      } else {
        ++it;
      }
    }
    if (expired) Evaluate(now);

    std::vector<Question> qs;
    auto ask = [&](const Name& n, uint16_t type) {
      for (const auto& q : qs)
        if (q.type == type && SameName(q.name, n)) return;
      qs.push_back(Question{n, type, kClassIn, false});
    };
    if (now >= next_query) {
      ask(service_name, kPtr);
      next_query = now + query_interval;
      query_interval = std::min(query_interval * 2, std::max<int64_t>(o.max_query_interval_ms, 1000));
    }
    std::set<std::string> hosts = SrvTargets(now, true);
    for (auto& [k, e] : cache) {
      if (e.next_refresh > now) continue;
      bool wanted = (e.rec.type == kPtr) ||
                    ((e.rec.type == kSrv || e.rec.type == kTxt) && instances.count(Fold(e.rec.name[0]))) ||
                    (e.rec.type == kA && hosts.count(NameKey(e.rec.name)));
      if (wanted) ask(e.rec.name, e.rec.type);
      e.refreshes = wanted ? e.refreshes + 1 : 4;
      ScheduleRefresh(e);
    }
    for (auto& [folded, inst] : instances) {
      if (inst.next_resolve > now) continue;
      const Name name = Concat(inst.label, service_name);
      const Entry* srv = Latest(now, name, kSrv);
      if (!srv) ask(name, kSrv);
      if (!Latest(now, name, kTxt)) ask(name, kTxt);
      if (srv) ask(std::get<Srv>(srv->rec.data).target, kA);
      ++inst.attempts;
      inst.next_resolve = inst.attempts < kResolveAttempts ? now + inst.resolve_interval : kNever;
      inst.resolve_interval *= 2;
    }
    if (qs.empty()) return;
    // §7.1: known answers are what we hold with more than half the TTL left.
    std::vector<Record> known;
    for (const auto& [k, e] : cache) {
      int64_t left = e.expires - now;
      if (left * 2 <= int64_t{e.ttl} * 1000) continue;
      for (const auto& q : qs) {
        if (q.type == e.rec.type && SameName(q.name, e.rec.name)) {
          Record r = e.rec;
          r.cache_flush = false;
          r.ttl = static_cast<uint32_t>(left / 1000);
          known.push_back(std::move(r));
          break;
        }
      }
    }
    Message base;
    base.questions = std::move(qs);
    Send(kMulticast, base, known, {});
  }

  int64_t NextWake() const {
    int64_t t = kNever;
    if (phase == Phase::kIdle || phase == Phase::kStopped) return t;
    if (phase == Phase::kProbing) t = std::min(t, next_probe);
    if (phase == Phase::kAnnouncing) t = std::min(t, next_announce);
    for (const auto& p : pending) t = std::min(t, p.due);
    if (o.browse) {
      t = std::min(t, next_query);
      for (const auto& [k, e] : cache) t = std::min({t, e.expires, e.next_refresh});
      for (const auto& [k, i] : instances) t = std::min(t, i.next_resolve);
    }
    return t;
  }
};

Engine::Engine(EngineOptions options) : s_(std::make_unique<State>(std::move(options))) {}
Engine::~Engine() = default;

void Engine::Start(int64_t now_ms) {
  if (s_->phase != State::Phase::kIdle) return;
  if (s_->advertise) {
    s_->StartProbing(now_ms, s_->rng.Range(0, 250));   // §8.1: 0-250 ms before the first probe
  } else {
    s_->phase = State::Phase::kRunning;
  }
  if (s_->o.browse) s_->next_query = now_ms + s_->rng.Range(20, 120);   // §5.2
  Tick(now_ms);
}

void Engine::Stop(int64_t /*now_ms*/) {
  if (s_->phase == State::Phase::kStopped) return;
  if (s_->advertise && s_->Claimed()) {
    // §10.1 goodbyes. Not for the _services._dns-sd._udp PTR: other hubs
    // share that exact record, and a goodbye would delete theirs too.
    std::vector<Record> bye;
    for (const auto& w : s_->own) {
      if (w.role == State::Role::kEnumPtr || w.rec.type == kNsec) continue;
      Record r = w.rec;
      r.ttl = 0;
      bye.push_back(std::move(r));
    }
    Message base;
    base.flags = Message::kResponse | Message::kAuthoritative;
    s_->Send(kMulticast, base, bye, {});
  }
  s_->phase = State::Phase::kStopped;
  s_->pending.clear();
}

void Engine::Receive(int64_t now_ms, const Endpoint& from, std::span<const uint8_t> bytes) {
  if (s_->phase == State::Phase::kIdle || s_->phase == State::Phase::kStopped) return;
  ++s_->stats.packets_in;
  auto m = Decode(bytes);
  if (!m) {
    ++s_->stats.malformed;
    return;
  }
  const uint16_t opcode = (m->flags >> 11) & 0xF, rcode = m->flags & 0xF;
  if (opcode != 0 || rcode != 0) {   // §18.3, §18.11: silently ignored
    ++s_->stats.ignored;
    return;
  }
  if (m->is_response()) {
    if (from.port != kPort) {   // §6: responses come from port 5353
      ++s_->stats.ignored;
      return;
    }
    s_->CheckResponse(now_ms, *m);
    if (s_->o.browse) {
      s_->CacheResponse(now_ms, *m);
      s_->Evaluate(now_ms);
    }
  } else {
    s_->AnswerQuery(now_ms, from, *m);
  }
  Tick(now_ms);
}

void Engine::Tick(int64_t now_ms) {
  if (s_->phase == State::Phase::kIdle || s_->phase == State::Phase::kStopped) return;
  s_->RunResponder(now_ms);
  s_->RunBrowser(now_ms);
}

int64_t Engine::NextWakeMs() const { return s_->NextWake(); }

std::vector<Datagram> Engine::TakeOutgoing() { return std::exchange(s_->out, {}); }
std::vector<Event> Engine::TakeEvents() { return std::exchange(s_->events, {}); }
std::string Engine::instance() const { return s_->instance; }
std::string Engine::host() const { return s_->host; }
bool Engine::advertised() const { return s_->Claimed(); }
const EngineStats& Engine::stats() const { return s_->stats; }

}  // namespace hub::cluster::mdns
