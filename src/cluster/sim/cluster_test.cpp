#include "cluster/sim/cluster.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

// Scenario tests of the SWIM core (src/cluster/swim/) on the simulated
// network. Time is virtual: every bound below is derived from the protocol's
// parameters (memberlist's formulas), never from the machine's speed.

namespace hub::cluster::sim {
namespace {

using swim::MemberState;

// A LAN with some reordering.
LinkOptions Lan() { return LinkOptions{.latency_ms = 1, .jitter_ms = 4, .stream_latency_ms = 2}; }

ClusterOptions Options(uint64_t seed, LinkOptions link = Lan()) {
  ClusterOptions o;
  o.seed = seed;
  o.link = link;
  o.node = swim::Options::Lan();
  return o;
}

// What the protocol's parameters promise for a cluster of n members.
struct Bounds {
  int64_t min_suspicion;   // suspicion_mult * max(1, log10 n) * probe_interval
  int64_t max_suspicion;   // suspicion_max_timeout_mult * min_suspicion
  int64_t first_probe;     // some member probes a given one within this (see below)
  int64_t dissemination;   // a broadcast's retransmissions: limit * gossip_interval
};

Bounds For(const swim::Options& o, int n) {
  Bounds b;
  const double scale = std::max(1.0, std::log10(std::max(1, n)));
  b.min_suspicion = static_cast<int64_t>(o.suspicion_mult * scale * o.probe_interval_ms);
  b.max_suspicion = o.suspicion_max_timeout_mult * b.min_suspicion;
  // Each member probes the others round-robin in a shuffled order; the
  // chance that none of the n-1 probers picks the target within 8 intervals
  // is (1 - 8/(n-1))^(n-1): ~3e-9 for n = 10, ~e^-8 for large n. Plus the
  // probe's own timeout.
  b.first_probe = std::min(n - 1, 8) * o.probe_interval_ms + o.probe_timeout_ms;
  const int limit = o.retransmit_mult * static_cast<int>(std::ceil(std::log10(n + 1.0)));
  b.dissemination = limit * o.gossip_interval_ms;
  return b;
}

// Every state change any node ever recorded about `member`.
int CountSeen(const Cluster& c, int member, MemberState state) {
  int n = 0;
  for (int i = 0; i < c.size(); ++i)
    for (const MemberChange& ch : c.record(i).changes) n += ch.member == member && ch.state == state;
  return n;
}

// Deaths recorded about nodes that are up now: in scenarios without restarts,
// false positives.
int FalseDeaths(const Cluster& c) {
  int n = 0;
  for (int i = 0; i < c.size(); ++i)
    for (const MemberChange& ch : c.record(i).changes)
      if (ch.member >= 0 && c.up(ch.member) && ch.state == MemberState::kDead) ++n;
  return n;
}

void JoinAndConverge(Cluster& c, int n, int64_t stagger_ms, int64_t max_ms) {
  c.AddJoined(n, stagger_ms);
  ASSERT_TRUE(c.RunUntil([&] { return c.Converged(); }, max_ms, 100))
      << "not converged " << max_ms << " ms after the last join";
}

// --- join ---------------------------------------------------------------

void CheckJoin(int n, uint64_t seed, int64_t stagger_ms) {
  const ClusterOptions options = Options(seed);
  Cluster c(options);
  const Bounds b = For(options.node, n);
  c.AddJoined(n, stagger_ms);
  const int64_t last_join = c.now();
  // Alive messages spread by gossip within the dissemination bound; push-pull
  // (every push_pull_interval) repairs what gossip missed. Generous: 3x both.
  const int64_t bound = 3 * (b.dissemination + options.node.push_pull_interval_ms);
  ASSERT_TRUE(c.RunUntil([&] { return c.Converged(); }, bound, 50))
      << n << " nodes not converged " << bound << " ms after the last join";
  const int64_t took = c.now() - last_join;
  for (int i = 0; i < n; ++i) {
    EXPECT_EQ(c.node(i).NumAlive(), static_cast<size_t>(n)) << "node " << i;
    EXPECT_EQ(c.record(i).unknown_members, 0u);
  }
  EXPECT_EQ(FalseDeaths(c), 0);
  std::printf("  %d nodes: all see all alive %lld ms after the last join (bound %lld)\n", n,
              static_cast<long long>(took), static_cast<long long>(bound));
}

TEST(SimCluster, JoinConverges10) { CheckJoin(10, 1, 20); }
TEST(SimCluster, JoinConverges100) { CheckJoin(100, 2, 20); }

TEST(SimCluster, ASingleNodeIsItsOwnCluster) {
  Cluster c(Options(4));
  c.Add();
  c.Join(0, {0});  // joining ourselves is allowed
  c.RunFor(10'000);
  EXPECT_EQ(c.node(0).NumAlive(), 1u);
  EXPECT_TRUE(c.Converged());
}

// --- failure detection ---------------------------------------------------

void CheckDetection(int n, uint64_t seed) {
  Cluster c(Options(seed));
  JoinAndConverge(c, n, 20, 60'000);
  c.RunFor(5'000);
  const int victim = static_cast<int>(c.network().Random(n));
  const swim::Options o = c.node(0).options();
  const Bounds b = For(o, n - 1);
  const int64_t killed = c.now();
  c.Kill(victim);
  const int64_t bound = b.first_probe + b.max_suspicion + 2 * b.dissemination;
  ASSERT_TRUE(c.RunUntil([&] { return c.AllSee(victim, MemberState::kDead); }, bound, 50))
      << "victim " << victim << " not dead everywhere within " << bound << " ms";
  int64_t first = INT64_MAX, last = 0;
  for (int i = 0; i < n; ++i) {
    if (i == victim) continue;
    const int64_t suspect = c.FirstSeen(i, victim, MemberState::kSuspect, killed);
    const int64_t dead = c.FirstSeen(i, victim, MemberState::kDead, killed);
    ASSERT_GE(dead, 0) << "observer " << i;
    EXPECT_GE(suspect, 0) << "observer " << i << " never suspected the victim";
    EXPECT_LE(suspect, dead) << "observer " << i;
    // Nobody may declare it dead before a full minimum suspicion timeout.
    EXPECT_GE(dead - killed, b.min_suspicion) << "observer " << i;
    first = std::min(first, dead);
    last = std::max(last, dead);
  }
  EXPECT_EQ(FalseDeaths(c), 0);
  std::printf("  %d nodes: first dead after %lld ms, everywhere after %lld ms "
              "(min suspicion %lld, bound %lld)\n",
              n, static_cast<long long>(first - killed), static_cast<long long>(last - killed),
              static_cast<long long>(b.min_suspicion), static_cast<long long>(bound));
}

TEST(SimCluster, KilledNodeDetectedByEverySurvivor10) { CheckDetection(10, 11); }
TEST(SimCluster, KilledNodeDetectedByEverySurvivor100) { CheckDetection(100, 12); }

// 1,000 nodes take ~40 s of CPU in an optimised build; unoptimised or under
// a sanitizer that would be many minutes, so those builds run 300.
#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define HUB_SIM_SLOW_BUILD 1
#endif
#endif
#if !defined(NDEBUG) || defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define HUB_SIM_SLOW_BUILD 1
#endif
#ifdef HUB_SIM_SLOW_BUILD
constexpr int kLargeCluster = 300;
#else
constexpr int kLargeCluster = 1000;
#endif

// One large cluster for both (the join is the expensive part).
TEST(SimCluster, AtScaleJoinConvergesAndAKillIsDetected) {
  const ClusterOptions options = Options(13);
  Cluster c(options);
  const int n = kLargeCluster;
  c.AddJoined(n, 2);
  const int64_t last_join = c.now();
  Bounds b = For(options.node, n);
  // While 1,000 alive messages queue up everywhere, push-pull does most of
  // the work: allow several rounds of it.
  int64_t bound = 6 * (b.dissemination + options.node.push_pull_interval_ms);
  ASSERT_TRUE(c.RunUntil([&] { return c.Converged(); }, bound, 100))
      << "not converged " << bound << " ms after the last join";
  std::printf("  %d nodes: all see all alive %lld ms after the last join (bound %lld)\n", n,
              static_cast<long long>(c.now() - last_join), static_cast<long long>(bound));
  EXPECT_EQ(FalseDeaths(c), 0);

  const int victim = n * 7 / 9;
  b = For(options.node, n - 1);
  const int64_t killed = c.now();
  c.Kill(victim);
  bound = b.first_probe + b.max_suspicion + 2 * b.dissemination;
  ASSERT_TRUE(c.RunUntil([&] { return c.AllSee(victim, MemberState::kDead); }, bound, 100));
  int64_t first = INT64_MAX;
  for (int i = 0; i < n; ++i) {
    if (i == victim) continue;
    const int64_t dead = c.FirstSeen(i, victim, MemberState::kDead, killed);
    EXPECT_GE(dead - killed, b.min_suspicion) << "observer " << i;
    first = std::min(first, dead);
  }
  std::printf("  %d nodes: first dead after %lld ms, everywhere after %lld ms (bound %lld)\n", n,
              static_cast<long long>(first - killed), static_cast<long long>(c.now() - killed),
              static_cast<long long>(bound));
  EXPECT_EQ(FalseDeaths(c), 0);
}

TEST(SimCluster, LeaveIsSeenAsLeftNotDead) {
  Cluster c(Options(21));
  JoinAndConverge(c, 10, 20, 60'000);
  c.Leave(3);
  ASSERT_TRUE(c.RunUntil([&] { return c.AllSee(3, MemberState::kLeft); }, 10'000));
  c.Kill(3);  // the process exits after its leave spread
  c.RunFor(60'000);
  EXPECT_TRUE(c.AllSee(3, MemberState::kLeft));
  EXPECT_EQ(CountSeen(c, 3, MemberState::kDead), 0);
  EXPECT_TRUE(c.Converged());
}

// --- no false positives under loss -----------------------------------------

// 10% of datagrams lost and, so that the TCP fallback cannot hide every
// lost ping, 10% of streams failing: suspicions happen and must be refuted.
TEST(SimCluster, NoHealthyNodeMarkedDeadAt10PercentLoss) {
  LinkOptions link = Lan();
  link.loss = 0.10;
  link.stream_failure = 0.10;
  link.jitter_ms = 10;
  Cluster c(Options(31, link));
  JoinAndConverge(c, 100, 20, 120'000);
  c.RunFor(5 * 60'000);
  int suspicions = 0;
  for (int i = 0; i < c.size(); ++i)
    for (const MemberChange& ch : c.record(i).changes) suspicions += ch.state == MemberState::kSuspect;
  EXPECT_EQ(FalseDeaths(c), 0);
  EXPECT_TRUE(c.Converged());
  EXPECT_GT(suspicions, 0) << "the scenario no longer exercises suspicion and refutation";
  std::printf("  100 nodes, 10%% loss, 5 min: %d suspect notices, all refuted, 0 deaths, %llu datagrams lost\n",
              suspicions, static_cast<unsigned long long>(c.network().stats().lost));
}

// --- partitions ------------------------------------------------------------

// Splits 20 nodes 12/8, broadcasts events on both sides, waits until each
// side holds the other suspect or dead and at least `split_ms` have passed,
// heals, and expects one cluster again with every event everywhere, once.
void CheckPartition(uint64_t seed, int64_t split_ms) {
  const ClusterOptions options = Options(seed);
  Cluster c(options);
  const int n = 20, cut = 12;
  JoinAndConverge(c, n, 20, 60'000);
  std::vector<int> left, right;
  for (int i = 0; i < n; ++i) (i < cut ? left : right).push_back(i);
  auto side = [&](int i) { return i < cut; };
  auto split_seen = [&] {
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < n; ++j) {
        if (side(i) == side(j)) continue;
        const MemberState s = c.View(i, j).state;
        if (s != MemberState::kSuspect && s != MemberState::kDead) return false;
      }
    return true;
  };

  c.network().Partition({left, right});
  const int64_t split = c.now();
  c.Broadcast(1, "video.added", "left-1");
  c.Broadcast(15, "note.changed", "right-1");
  // Lifeguard slows the probing of a node whose probes keep failing (up to
  // awareness_max_multiplier), and each member probes the others in turn:
  // a round over everyone at the slowest pace bounds the detection.
  const swim::Options& o = options.node;
  const int64_t bound = (n - 1) * o.awareness_max_multiplier * o.probe_interval_ms;
  ASSERT_TRUE(c.RunUntil(split_seen, bound)) << "the sides did not notice the split";
  const int64_t noticed = c.now() - split;
  c.Broadcast(2, "video.ready", "left-2");
  c.Broadcast(19, "note.changed", "right-2");
  // Within a side events still spread (gossip, then push-pull catch-up).
  EXPECT_TRUE(c.RunUntil(
      [&] {
        for (int i = 0; i < n; ++i)
          if (c.record(i).events.size() != 2) return false;
        return true;
      },
      6 * o.push_pull_interval_ms))
      << "an event did not reach its own side of the split";
  c.RunUntil(std::max(c.now(), split + split_ms));
  EXPECT_TRUE(split_seen());
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) {
      if (i == j || side(i) != side(j)) continue;
      EXPECT_EQ(c.View(i, j).state, MemberState::kAlive) << i << " about " << j;
    }
  for (int i = 0; i < n; ++i) EXPECT_EQ(c.record(i).events.size(), 2u) << "node " << i;  // own side only

  c.network().Heal();
  const int64_t healed = c.now();
  ASSERT_TRUE(c.RunUntil([&] { return c.Converged(); }, 120'000))
      << "not whole again 120 s after the heal";
  std::printf("  split of %lld ms, noticed after %lld ms: whole again %lld ms after the heal\n",
              static_cast<long long>(healed - split), static_cast<long long>(noticed),
              static_cast<long long>(c.now() - healed));
  c.RunFor(10'000);
  for (int i = 0; i < n; ++i) {
    std::map<std::string, int> got;
    for (const swim::Event& e : c.record(i).events) ++got[e.payload];
    EXPECT_EQ(got.size(), 4u) << "node " << i << " missed an event from the other side";
    for (auto& [payload, times] : got) EXPECT_EQ(times, 1) << "node " << i << ": " << payload;
  }
}

// Healed as soon as both sides noticed: gossip to the dead still flows.
TEST(SimCluster, ShortPartitionHeals) { CheckPartition(41, 0); }
// Longer than gossip_to_dead_ms: only the reconnecting push-pull can heal it.
TEST(SimCluster, LongPartitionHeals) { CheckPartition(42, 90'000); }

// --- restarts --------------------------------------------------------------

TEST(SimCluster, RestartedNodeIsAliveAgainWithAHigherIncarnation) {
  Cluster c(Options(51));
  const int n = 10, victim = 6;
  JoinAndConverge(c, n, 20, 60'000);
  c.UpdateMeta(victim, "v1");  // some incarnation history before the crash
  c.RunFor(5'000);
  c.Kill(victim);
  ASSERT_TRUE(c.RunUntil([&] { return c.AllSee(victim, MemberState::kDead); }, 120'000));
  uint32_t dead_inc = 0;
  for (int i = 0; i < n; ++i)
    if (i != victim) dead_inc = std::max(dead_inc, c.View(i, victim).incarnation);
  // Missed while down: it must catch up after rejoining.
  c.Broadcast(0, "video.ready", "while-down");

  c.Restart(victim);
  EXPECT_EQ(c.life(victim), 1);
  c.Join(victim, {0});
  ASSERT_TRUE(c.RunUntil([&] { return c.Converged(); }, 60'000));
  for (int i = 0; i < n; ++i) {
    if (i == victim) continue;
    EXPECT_EQ(c.View(i, victim).state, MemberState::kAlive) << "observer " << i;
    EXPECT_GT(c.View(i, victim).incarnation, dead_inc) << "observer " << i;
  }
  EXPECT_GT(c.node(victim).stats().refutes, 0u);
  c.RunFor(10'000);
  int got = 0;
  for (const swim::Event& e : c.record(victim).events) got += e.payload == "while-down";
  EXPECT_EQ(got, 1);
}

TEST(SimCluster, QuickRestartWhileSuspectedRefutes) {
  Cluster c(Options(52));
  const int n = 10, victim = 4;
  JoinAndConverge(c, n, 20, 60'000);
  c.Kill(victim);
  ASSERT_TRUE(c.RunUntil(
      [&] {
        for (int i = 0; i < n; ++i)
          if (i != victim && c.View(i, victim).state == MemberState::kSuspect) return true;
        return false;
      },
      30'000));
  uint32_t inc = 0;
  for (int i = 0; i < n; ++i)
    if (i != victim) inc = std::max(inc, c.View(i, victim).incarnation);
  c.Restart(victim);
  c.Join(victim, {0, 1});
  ASSERT_TRUE(c.RunUntil([&] { return c.Converged(); }, 60'000));
  for (int i = 0; i < n; ++i) {
    if (i == victim) continue;
    EXPECT_GT(c.View(i, victim).incarnation, inc) << "observer " << i;
  }
}

// --- events ------------------------------------------------------------------

TEST(SimCluster, EventsReachEveryNodeExactlyOnceUnderLossAndDuplication) {
  LinkOptions link = Lan();
  link.loss = 0.10;
  link.duplicate = 0.10;
  link.jitter_ms = 20;
  Cluster c(Options(61, link));
  const int n = 30;
  JoinAndConverge(c, n, 20, 120'000);
  const int origins = 10, per_origin = 5;
  std::set<std::pair<std::string, uint64_t>> sent;
  for (int k = 0; k < per_origin; ++k) {
    for (int o = 0; o < origins; ++o) c.Broadcast(o * 3, "t" + std::to_string(k), "p");
    c.RunFor(300);
  }
  c.RunFor(30'000);
  for (int i = 0; i < n; ++i) {
    std::map<std::pair<std::string, uint64_t>, int> got;
    int local = 0;
    for (const swim::Event& e : c.record(i).events) {
      ++got[{e.origin, e.id}];
      local += e.local;
      if (e.local) {
        EXPECT_EQ(e.origin, c.name(i));
      }
    }
    EXPECT_EQ(got.size(), static_cast<size_t>(origins * per_origin)) << "node " << i;
    for (auto& [key, times] : got) EXPECT_EQ(times, 1) << "node " << i << " got " << key.first << "/" << key.second;
    EXPECT_EQ(local, i % 3 == 0 && i / 3 < origins ? per_origin : 0) << "node " << i;
  }
}

TEST(SimCluster, EventsCarryIncreasingIdsAndLamportTimes) {
  Cluster c(Options(62));
  JoinAndConverge(c, 5, 20, 60'000);
  c.Broadcast(0, "a", "1");
  c.RunFor(2'000);
  c.Broadcast(1, "b", "2");  // after node 1 saw "a": a later Lamport time
  c.RunFor(2'000);
  c.Broadcast(0, "c", "3");
  c.RunFor(5'000);
  for (int i = 0; i < 5; ++i) {
    std::map<std::string, swim::Event> by_type;
    for (const swim::Event& e : c.record(i).events) by_type[e.type] = e;
    ASSERT_EQ(by_type.size(), 3u);
    EXPECT_LT(by_type["a"].lamport, by_type["b"].lamport);
    EXPECT_LT(by_type["b"].lamport, by_type["c"].lamport);
    EXPECT_LT(by_type["a"].id, by_type["c"].id);
  }
}

// --- determinism -------------------------------------------------------------

uint64_t Turbulent(uint64_t seed) {
  LinkOptions link = Lan();
  link.loss = 0.05;
  link.duplicate = 0.05;
  link.jitter_ms = 15;
  Cluster c(Options(seed, link));
  c.AddJoined(25, 30);
  c.RunFor(10'000);
  c.Broadcast(3, "x", "1");
  c.Kill(7);
  c.RunFor(5'000);
  c.network().Partition({{0, 1, 2, 3, 4, 5}});
  c.Broadcast(1, "y", "2");
  c.RunFor(15'000);
  c.network().Heal();
  c.Restart(7);
  c.Join(7, {2});
  c.RunFor(20'000);
  uint64_t h = c.network().trace_hash();
  for (int i = 0; i < c.size(); ++i)
    for (const swim::Member& m : c.node(i).Members())
      h = h * 1099511628211ULL + m.incarnation * 7 + static_cast<uint64_t>(m.state);
  return h;
}

TEST(SimCluster, SameSeedSameTrace) {
  const uint64_t a = Turbulent(71), b = Turbulent(71), d = Turbulent(72);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, d);
}

}  // namespace
}  // namespace hub::cluster::sim
