// cluster_bench: the SWIM core on the simulated network (src/cluster/sim/),
// for 10, 100 and 1,000 nodes, with our defaults (swim::Options::Lan()) and
// with memberlist's DefaultLANConfig timing, beside the figures memberlist's
// parameters imply. Virtual time: the figures are protocol properties, the
// same on any machine for a given seed. See bench/cluster/README.md.
//
//   cluster_bench [--nodes 10,100,1000] [--seeds 3] [--window-ms 0 (auto)]

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "cluster/envelope.h"
#include "cluster/sim/cluster.h"

namespace {

using hub::cluster::sim::Cluster;
using hub::cluster::sim::ClusterOptions;
using hub::cluster::sim::LinkOptions;
using hub::cluster::swim::MemberState;
using hub::cluster::swim::Options;

// memberlist's DefaultLANConfig (config.go), in our option names.
Options MemberlistLan() {
  Options o = Options::Lan();
  o.probe_interval_ms = 1000;
  o.probe_timeout_ms = 500;
  o.indirect_checks = 3;
  o.gossip_interval_ms = 200;
  o.gossip_nodes = 3;
  o.gossip_to_dead_ms = 30'000;
  o.retransmit_mult = 4;
  o.suspicion_mult = 4;
  o.suspicion_max_timeout_mult = 6;
  o.awareness_max_multiplier = 8;
  o.push_pull_interval_ms = 30'000;
  o.stream_timeout_ms = 10'000;
  o.heartbeat_interval_ms = int64_t{1} << 40;  // memberlist has no periodic alive re-broadcast
  return o;
}

double SuspicionMin(const Options& o, int n) {
  return o.suspicion_mult * std::max(1.0, std::log10(std::max(1, n))) * o.probe_interval_ms;
}
int RetransmitLimit(const Options& o, int n) {
  return o.retransmit_mult * static_cast<int>(std::ceil(std::log10(n + 1.0)));
}
// memberlist's pushPullScale: the interval grows past 32 nodes.
double PushPullScaled(double interval, int n) {
  if (n <= 32) return interval;
  return (std::ceil(std::log2(n) - std::log2(32.0)) + 1.0) * interval;
}

struct Sample {
  double join_ms = -1;        // a new node's alive known by every member
  double fail_first_ms = -1;  // a killed node first declared dead by someone
  double fail_all_ms = -1;    // ... by every survivor
  double udp = 0, tcp = 0;    // plaintext bytes per node per second, steady state
  double sealed = 0;          // udp + tcp + the envelope on every datagram and stream message
  double packets = 0;         // datagrams per node per second
  double wall_s = 0;
};

Sample Run(const Options& node, int n, uint64_t seed, int64_t window_ms) {
  const auto t0 = std::chrono::steady_clock::now();
  ClusterOptions co;
  co.seed = seed;
  co.link = LinkOptions{.latency_ms = 1, .jitter_ms = 4, .stream_latency_ms = 2};
  co.node = node;
  Cluster c(co);
  Sample s;
  c.AddJoined(n - 1, n >= 1000 ? 5 : 20);
  if (!c.RunUntil([&] { return c.Converged(); }, 300'000, 100)) {
    std::fprintf(stderr, "n=%d seed=%llu: the first %d nodes never converged\n", n,
                 static_cast<unsigned long long>(seed), n - 1);
    return s;
  }
  c.RunFor(10'000);

  // Steady state: nothing changes; what does staying in touch cost?
  const int members = c.size();
  struct Totals {
    uint64_t udp = 0, tcp = 0, packets = 0, messages = 0;
  };
  auto totals = [&] {
    Totals t;
    for (int i = 0; i < members; ++i) {
      const auto& k = c.network().counters(i);
      t.udp += k.bytes_out;
      t.tcp += k.stream_bytes_out;
      t.packets += k.packets_out;
      t.messages += k.packets_out + 2 * k.streams_out;  // each stream: a request and a reply
    }
    return t;
  };
  const Totals before = totals();
  c.RunFor(window_ms);
  const Totals after = totals();
  const double per = 1000.0 / window_ms / members;
  s.udp = (after.udp - before.udp) * per;
  s.tcp = (after.tcp - before.tcp) * per;
  s.packets = (after.packets - before.packets) * per;
  s.sealed = s.udp + s.tcp + (after.messages - before.messages) * per * hub::cluster::kEnvelopeOverhead(0);

  // A join: one more node contacts node 0.
  const int newcomer = c.Add();
  const int64_t joined = c.now();
  c.Join(newcomer, {0});
  if (c.RunUntil([&] { return c.Converged(); }, 120'000, 10)) {
    int64_t last = 0;
    for (int i = 0; i < c.size(); ++i)
      if (i != newcomer) last = std::max(last, c.FirstSeen(i, newcomer, MemberState::kAlive, joined));
    s.join_ms = static_cast<double>(last - joined);
  }
  c.RunFor(10'000);

  // A crash.
  const int victim = 1 + static_cast<int>(c.network().Random(n - 2));
  const int64_t killed = c.now();
  c.Kill(victim);
  if (c.RunUntil([&] { return c.AllSee(victim, MemberState::kDead); }, 300'000, 10)) {
    int64_t first = INT64_MAX, last = 0;
    for (int i = 0; i < c.size(); ++i) {
      if (i == victim) continue;
      const int64_t t = c.FirstSeen(i, victim, MemberState::kDead, killed);
      first = std::min(first, t);
      last = std::max(last, t);
    }
    s.fail_first_ms = static_cast<double>(first - killed);
    s.fail_all_ms = static_cast<double>(last - killed);
  }
  s.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return s;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  if (v.empty()) return -1;
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

std::vector<int> ParseList(const char* s) {
  std::vector<int> out;
  for (const char* p = s; *p;) {
    out.push_back(std::atoi(p));
    p = std::strchr(p, ',');
    if (!p) break;
    ++p;
  }
  return out;
}

// What memberlist's parameters imply for n nodes (not a measurement); see
// bench/cluster/README.md for the assumptions.
void PrintTheory(const Options& o, int n) {
  const double smin = SuspicionMin(o, n), smax = o.suspicion_max_timeout_mult * smin;
  const int limit = RetransmitLimit(o, n);
  // Epidemic spread: each round multiplies the informed by about (fanout + 1).
  const double rounds = std::ceil(std::log(n) / std::log(o.gossip_nodes + 1.0));
  const double spread = rounds * o.gossip_interval_ms;
  const double pp = PushPullScaled(o.push_pull_interval_ms, n);
  // Kill -> dead everywhere: up to one interval until some member probes the
  // victim, that probe's interval (timeout, indirect probes), the minimum
  // suspicion timeout (the k = suspicion_mult - 2 confirmations arrive), then
  // the "dead" message spreads.
  const double detect = 2.0 * o.probe_interval_ms + smin + spread;
  // Steady state: one ping (~80 B msgpack) and one ack (~22 B) out per node
  // per probe interval, and a push-pull every scaled interval: ~82 B per node
  // state, sent by the initiator and by the responder; no gossip rounds when
  // nothing changes. LZW compression (on by default) would shrink push-pull.
  const double bytes = (80.0 + 22.0) * 1000.0 / o.probe_interval_ms + 2.0 * n * 82.0 * 1000.0 / pp;
  std::printf("| %5d | %.1f .. %.1f | %d | %.0f | ~%.0f | ~%.0f | ~%.0f |\n", n, smin / 1000, smax / 1000,
              limit, pp / 1000, spread, detect, bytes);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int> sizes = {10, 100, 1000};
  int seeds = 3;
  int64_t window_ms = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--nodes")) sizes = ParseList(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--seeds")) seeds = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--window-ms")) window_ms = std::atoll(argv[i + 1]);
  }
  struct Config {
    const char* name;
    Options options;
  };
  const Config configs[] = {{"stream-hub Lan()", Options::Lan()}, {"memberlist LAN cfg", MemberlistLan()}};

  std::printf("cluster_bench: simulated LAN (1 ms + 0..4 ms jitter, no loss), virtual time, "
              "median of %d seeds\n\n", seeds);
  std::printf("| config | nodes | join -> all (ms) | kill -> all dead (ms) | first dead (ms) |"
              " UDP B/node/s | TCP B/node/s | sealed B/node/s | datagrams/node/s | wall s/run |\n");
  std::printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (int n : sizes) {
    for (const Config& cfg : configs) {
      // A whole number of (scaled) push-pull intervals, at least 60 s: every
      // node then does the same number of rounds in the window whatever its
      // phase (the first round comes within the unscaled interval, so the
      // phases of a cluster started together are not spread over the scaled one).
      const auto pp = static_cast<int64_t>(PushPullScaled(cfg.options.push_pull_interval_ms, n - 1));
      const int64_t window = window_ms > 0 ? window_ms : (60'000 + pp - 1) / pp * pp;
      std::vector<double> join, first, all, udp, tcp, sealed, packets, wall;
      for (int k = 0; k < seeds; ++k) {
        const Sample s = Run(cfg.options, n, 1000 + 17 * k + n, window);
        join.push_back(s.join_ms);
        first.push_back(s.fail_first_ms);
        all.push_back(s.fail_all_ms);
        udp.push_back(s.udp);
        tcp.push_back(s.tcp);
        sealed.push_back(s.sealed);
        packets.push_back(s.packets);
        wall.push_back(s.wall_s);
      }
      std::printf("| %s | %5d | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %.1f | %.1f |\n", cfg.name, n,
                  Median(join), Median(all), Median(first), Median(udp), Median(tcp), Median(sealed),
                  Median(packets), Median(wall));
      std::fflush(stdout);
    }
  }
  std::printf("\nmemberlist DefaultLANConfig, what its parameters imply (estimates, not measured):\n\n");
  std::printf("| nodes | suspicion timeout min .. max (s) | retransmit limit | push-pull every (s) |"
              " join -> all (ms) | kill -> all dead (ms) | B/node/s |\n");
  std::printf("|---:|---:|---:|---:|---:|---:|---:|\n");
  for (int n : sizes) PrintTheory(MemberlistLan(), n);
  return 0;
}
