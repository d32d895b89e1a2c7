#include "cluster/sim/network.h"

#include <gtest/gtest.h>

#include <deque>
#include <map>
#include <string>

namespace hub::cluster::sim {
namespace {

swim::Bytes B(std::string_view s) { return swim::Bytes(s.begin(), s.end()); }
std::string S(const uint8_t* p, size_t n) { return std::string(reinterpret_cast<const char*>(p), n); }

// A scripted endpoint: records what reaches it, sends what the test queues,
// answers streams with "re:" + request, and wants ticks at `deadlines`.
class Fake : public Endpoint {
 public:
  struct Got {
    int64_t at;
    std::string from;
    std::string data;
  };
  struct Reply {
    int64_t at;
    uint64_t id;
    std::optional<std::string> data;
  };

  void HandlePacket(std::string_view from, const uint8_t* data, size_t size, int64_t now) override {
    packets.push_back({now, std::string(from), S(data, size)});
    if (echo) Send(std::string(from), "echo:" + S(data, size));
  }
  swim::Bytes HandleStream(std::string_view from, const uint8_t* data, size_t size,
                           int64_t now) override {
    streams.push_back({now, std::string(from), S(data, size)});
    return B("re:" + S(data, size));
  }
  void HandleStreamReply(uint64_t id, std::optional<swim::Bytes> reply, int64_t now) override {
    std::optional<std::string> s;
    if (reply) s = S(reply->data(), reply->size());
    replies.push_back({now, id, s});
  }
  void Tick(int64_t now) override {
    ticks.push_back(now);
    while (!deadlines.empty() && deadlines.front() <= now) deadlines.pop_front();
  }
  int64_t NextDeadline() const override {
    if (stuck) return 0;
    return deadlines.empty() ? INT64_MAX : deadlines.front();
  }
  std::vector<swim::Output> TakeOutputs() override { return std::exchange(out, {}); }

  void Send(const std::string& to, std::string data) {
    out.emplace_back(std::in_place_type<swim::SendPacket>, to, B(data));
  }
  void Open(uint64_t id, const std::string& to, std::string data, int64_t timeout) {
    out.emplace_back(std::in_place_type<swim::OpenStream>, id, to, B(data), timeout);
  }

  std::vector<Got> packets, streams;
  std::vector<Reply> replies;
  std::vector<int64_t> ticks;
  std::deque<int64_t> deadlines;
  std::vector<swim::Output> out;
  bool echo = false;
  bool stuck = false;
};

struct Two {
  explicit Two(LinkOptions link = {}, uint64_t seed = 1) : net(NetworkOptions{seed, link}) {
    a = net.Attach("10.0.0.1:7946", &fa);
    b = net.Attach("10.0.0.2:7946", &fb);
  }
  Fake fa, fb;
  Network net;
  int a, b;
};

TEST(SimNetwork, DeliversAfterLatencyWithSenderAddressAndCounts) {
  Two t(LinkOptions{.latency_ms = 5});
  t.fa.Send("10.0.0.2:7946", "hello");
  t.net.Poke(t.a);
  t.net.RunUntil(4);
  EXPECT_TRUE(t.fb.packets.empty());
  t.net.RunUntil(5);
  ASSERT_EQ(t.fb.packets.size(), 1u);
  EXPECT_EQ(t.fb.packets[0].at, 5);
  EXPECT_EQ(t.fb.packets[0].from, "10.0.0.1:7946");
  EXPECT_EQ(t.fb.packets[0].data, "hello");
  EXPECT_EQ(t.net.counters(t.a).packets_out, 1u);
  EXPECT_EQ(t.net.counters(t.a).bytes_out, 5u);
  EXPECT_EQ(t.net.counters(t.b).packets_in, 1u);
  EXPECT_EQ(t.net.counters(t.b).bytes_in, 5u);
  EXPECT_EQ(t.net.stats().delivered, 1u);
  EXPECT_EQ(t.net.now(), 5);
}

TEST(SimNetwork, RepliesSentDuringDeliveryTravelToo) {
  Two t(LinkOptions{.latency_ms = 3});
  t.fb.echo = true;
  t.fa.Send("10.0.0.2:7946", "ping");
  t.net.Poke(t.a);
  t.net.RunFor(100);
  ASSERT_EQ(t.fa.packets.size(), 1u);
  EXPECT_EQ(t.fa.packets[0].at, 6);
  EXPECT_EQ(t.fa.packets[0].data, "echo:ping");
}

TEST(SimNetwork, SameInstantKeepsSendOrderWithoutJitter) {
  Two t;
  for (int i = 0; i < 50; ++i) t.fa.Send("10.0.0.2:7946", std::to_string(i));
  t.net.Poke(t.a);
  t.net.RunFor(10);
  ASSERT_EQ(t.fb.packets.size(), 50u);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(t.fb.packets[i].data, std::to_string(i));
}

TEST(SimNetwork, JitterReordersWithinBounds) {
  Two t(LinkOptions{.latency_ms = 2, .jitter_ms = 40});
  for (int i = 0; i < 200; ++i) t.fa.Send("10.0.0.2:7946", std::to_string(i));
  t.net.Poke(t.a);
  t.net.RunFor(100);
  ASSERT_EQ(t.fb.packets.size(), 200u);
  int inversions = 0;
  for (size_t i = 0; i < t.fb.packets.size(); ++i) {
    EXPECT_GE(t.fb.packets[i].at, 2);
    EXPECT_LE(t.fb.packets[i].at, 42);
    if (i > 0 && std::stoi(t.fb.packets[i].data) < std::stoi(t.fb.packets[i - 1].data)) ++inversions;
  }
  EXPECT_GT(inversions, 20);
}

TEST(SimNetwork, LossDropsAboutThatShare) {
  Two t(LinkOptions{.loss = 0.3});
  for (int i = 0; i < 10000; ++i) t.fa.Send("10.0.0.2:7946", "x");
  t.net.Poke(t.a);
  t.net.RunFor(10);
  const auto& s = t.net.stats();
  EXPECT_EQ(s.delivered + s.lost, 10000u);
  EXPECT_GT(s.lost, 2700u);
  EXPECT_LT(s.lost, 3300u);
  EXPECT_EQ(t.fb.packets.size(), s.delivered);
  EXPECT_EQ(t.net.counters(t.a).packets_out, 10000u);  // counted when sent, lost or not
}

TEST(SimNetwork, DuplicationDeliversSomeTwice) {
  Two t(LinkOptions{.jitter_ms = 5, .duplicate = 0.2});
  for (int i = 0; i < 5000; ++i) t.fa.Send("10.0.0.2:7946", std::to_string(i));
  t.net.Poke(t.a);
  t.net.RunFor(10);
  const auto& s = t.net.stats();
  EXPECT_EQ(s.delivered, 5000u + s.duplicated);
  EXPECT_GT(s.duplicated, 850u);
  EXPECT_LT(s.duplicated, 1150u);
  std::map<std::string, int> seen;
  for (auto& p : t.fb.packets) ++seen[p.data];
  EXPECT_EQ(seen.size(), 5000u);
  for (auto& [data, n] : seen) EXPECT_LE(n, 2) << data;
}

TEST(SimNetwork, StreamRoundTrip) {
  Two t(LinkOptions{.latency_ms = 1, .stream_latency_ms = 4});
  t.fa.Open(7, "10.0.0.2:7946", "state", 1000);
  t.net.Poke(t.a);
  t.net.RunFor(100);
  ASSERT_EQ(t.fb.streams.size(), 1u);
  EXPECT_EQ(t.fb.streams[0].at, 4);
  EXPECT_EQ(t.fb.streams[0].from, "10.0.0.1:7946");
  ASSERT_EQ(t.fa.replies.size(), 1u);
  EXPECT_EQ(t.fa.replies[0].at, 8);
  EXPECT_EQ(t.fa.replies[0].id, 7u);
  EXPECT_EQ(t.fa.replies[0].data, "re:state");
  EXPECT_EQ(t.net.counters(t.a).streams_out, 1u);
  EXPECT_EQ(t.net.counters(t.b).streams_in, 1u);
  EXPECT_EQ(t.net.counters(t.a).stream_bytes_out, 5u);
  EXPECT_EQ(t.net.counters(t.a).stream_bytes_in, 8u);
}

TEST(SimNetwork, StreamsIgnoreLoss) {
  Two t(LinkOptions{.loss = 1.0});
  for (uint64_t i = 0; i < 20; ++i) t.fa.Open(i, "10.0.0.2:7946", "s", 1000);
  t.net.Poke(t.a);
  t.net.RunFor(100);
  ASSERT_EQ(t.fa.replies.size(), 20u);
  for (auto& r : t.fa.replies) EXPECT_TRUE(r.data.has_value());
}

TEST(SimNetwork, StreamFailureFailsSomeStreamsAtTheirTimeout) {
  Two t(LinkOptions{.stream_failure = 0.25});
  for (uint64_t i = 0; i < 2000; ++i) t.fa.Open(i, "10.0.0.2:7946", "s", 100);
  t.net.Poke(t.a);
  t.net.RunFor(1000);
  ASSERT_EQ(t.fa.replies.size(), 2000u);
  size_t failed = 0;
  for (auto& r : t.fa.replies) {
    if (r.data) continue;
    ++failed;
    EXPECT_EQ(r.at, 100);
  }
  EXPECT_GT(failed, 400u);
  EXPECT_LT(failed, 600u);
  EXPECT_EQ(t.fb.streams.size(), 2000u - failed);
}

TEST(SimNetwork, StreamToUnknownAddressFailsAtItsTimeout) {
  Two t;
  t.fa.Open(3, "10.9.9.9:7946", "s", 250);
  t.net.Poke(t.a);
  t.net.RunFor(1000);
  ASSERT_EQ(t.fa.replies.size(), 1u);
  EXPECT_EQ(t.fa.replies[0].at, 250);
  EXPECT_FALSE(t.fa.replies[0].data.has_value());
  EXPECT_EQ(t.net.counters(t.a).streams_failed, 1u);
}

TEST(SimNetwork, StreamSlowerThanItsTimeoutFails) {
  Two t(LinkOptions{.stream_latency_ms = 30});
  t.fa.Open(1, "10.0.0.2:7946", "s", 50);
  t.net.Poke(t.a);
  t.net.RunFor(1000);
  ASSERT_EQ(t.fa.replies.size(), 1u);
  EXPECT_EQ(t.fa.replies[0].at, 50);
  EXPECT_FALSE(t.fa.replies[0].data.has_value());
}

TEST(SimNetwork, PartitionBlocksBothWaysAndHeals) {
  Fake fc;
  Two t(LinkOptions{.latency_ms = 2});
  const int c = t.net.Attach("10.0.0.3:7946", &fc);
  t.net.Partition({{t.a}});  // b and c, not listed, stay together
  EXPECT_FALSE(t.net.CanReach(t.a, t.b));
  EXPECT_FALSE(t.net.CanReach(t.b, t.a));
  EXPECT_TRUE(t.net.CanReach(t.b, c));
  t.fa.Send("10.0.0.2:7946", "a->b");
  t.fb.Send("10.0.0.1:7946", "b->a");
  t.fb.Send("10.0.0.3:7946", "b->c");
  t.fa.Open(1, "10.0.0.2:7946", "s", 500);
  t.net.Poke(t.a);
  t.net.Poke(t.b);
  t.net.RunFor(1000);
  EXPECT_TRUE(t.fa.packets.empty());
  EXPECT_TRUE(t.fb.packets.empty());
  EXPECT_TRUE(t.fb.streams.empty());
  ASSERT_EQ(fc.packets.size(), 1u);
  ASSERT_EQ(t.fa.replies.size(), 1u);
  EXPECT_EQ(t.fa.replies[0].at, 500);
  EXPECT_FALSE(t.fa.replies[0].data.has_value());
  EXPECT_EQ(t.net.stats().blocked, 2u);

  t.net.Heal();
  t.fa.Send("10.0.0.2:7946", "after");
  t.net.Poke(t.a);
  t.net.RunFor(10);
  ASSERT_EQ(t.fb.packets.size(), 1u);
  EXPECT_EQ(t.fb.packets[0].data, "after");
}

TEST(SimNetwork, DatagramsInFlightWhenAPartitionStartsAreLost) {
  Two t(LinkOptions{.latency_ms = 10});
  t.fa.Send("10.0.0.2:7946", "x");
  t.net.Poke(t.a);
  t.net.RunFor(5);
  t.net.Partition({{t.a}, {t.b}});
  t.net.RunFor(100);
  EXPECT_TRUE(t.fb.packets.empty());
  EXPECT_EQ(t.net.stats().blocked, 1u);
}

TEST(SimNetwork, ADownEndpointNeitherReceivesNorIsTicked) {
  Two t(LinkOptions{.latency_ms = 2});
  t.fb.deadlines = {50};
  t.net.Poke(t.b);
  t.fa.Send("10.0.0.2:7946", "x");
  t.fa.Open(9, "10.0.0.2:7946", "s", 300);
  t.net.Poke(t.a);
  t.net.Down(t.b);
  t.net.RunFor(1000);
  EXPECT_TRUE(t.fb.packets.empty());
  EXPECT_TRUE(t.fb.streams.empty());
  EXPECT_TRUE(t.fb.ticks.empty());
  ASSERT_EQ(t.fa.replies.size(), 1u);
  EXPECT_FALSE(t.fa.replies[0].data.has_value());
  EXPECT_EQ(t.fa.replies[0].at, 300);
  EXPECT_EQ(t.net.stats().unreachable, 1u);
}

TEST(SimNetwork, WhatACrashedEndpointSentStillArrives) {
  Two t(LinkOptions{.latency_ms = 5});
  t.fa.Send("10.0.0.2:7946", "last words");
  t.net.Poke(t.a);
  t.net.Down(t.a);
  t.net.RunFor(10);
  ASSERT_EQ(t.fb.packets.size(), 1u);
}

TEST(SimNetwork, RestartedEndpointGetsNewTrafficButNotOldReplies) {
  Two t(LinkOptions{.latency_ms = 2, .stream_latency_ms = 5});
  t.fa.Open(1, "10.0.0.2:7946", "s", 1000);
  t.net.Poke(t.a);
  t.net.RunFor(6);  // the request was served; the reply is on its way back
  ASSERT_EQ(t.fb.streams.size(), 1u);
  t.net.Down(t.a);
  Fake fresh;
  t.net.Up(t.a, &fresh);
  t.net.RunFor(2000);
  EXPECT_TRUE(fresh.replies.empty());
  EXPECT_TRUE(t.fa.replies.empty());
  t.fb.Send("10.0.0.1:7946", "hi");
  t.net.Poke(t.b);
  t.net.RunFor(10);
  ASSERT_EQ(fresh.packets.size(), 1u);
  EXPECT_TRUE(t.fa.packets.empty());
}

TEST(SimNetwork, TicksAtEachDeadline) {
  Two t;
  t.fa.deadlines = {10, 25, 25, 40};
  t.net.Poke(t.a);
  t.net.RunFor(100);
  EXPECT_EQ(t.fa.ticks, (std::vector<int64_t>{10, 25, 40}));
  EXPECT_EQ(t.net.stats().stuck_deadlines, 0u);
}

TEST(SimNetwork, ADeadlineMovedEarlierByInputIsHonoured) {
  Two t(LinkOptions{.latency_ms = 3});
  t.fb.deadlines = {100};
  t.net.Poke(t.b);
  t.net.RunFor(1);
  t.fb.deadlines.push_front(20);  // as if input made work due sooner
  t.fa.Send("10.0.0.2:7946", "x");
  t.net.Poke(t.a);
  t.net.RunFor(200);
  EXPECT_EQ(t.fb.ticks, (std::vector<int64_t>{20, 100}));
}

TEST(SimNetwork, AStuckDeadlineAdvancesTimeInsteadOfSpinning) {
  Two t;
  t.fa.stuck = true;
  t.net.Poke(t.a);
  t.net.RunFor(10);
  EXPECT_EQ(t.fa.ticks.size(), 11u);  // once per millisecond, 0..10
  EXPECT_GT(t.net.stats().stuck_deadlines, 0u);
}

TEST(SimNetwork, AddressesAreUnique) {
  Two t;
  Fake f;
  EXPECT_THROW(t.net.Attach("10.0.0.1:7946", &f), std::invalid_argument);
  EXPECT_EQ(t.net.Find("10.0.0.2:7946"), t.b);
  EXPECT_EQ(t.net.Find("nowhere"), -1);
}

uint64_t RunChatter(uint64_t seed, std::vector<std::string>* order) {
  LinkOptions link{.latency_ms = 1, .jitter_ms = 20, .loss = 0.1, .duplicate = 0.05};
  Network net(NetworkOptions{seed, link});
  std::vector<Fake> fakes(5);
  for (int i = 0; i < 5; ++i) net.Attach("10.0.0." + std::to_string(i + 1) + ":1", &fakes[i]);
  for (auto& f : fakes) f.echo = true;
  for (int round = 0; round < 20; ++round) {
    for (int i = 0; i < 5; ++i) {
      fakes[i].Send("10.0.0." + std::to_string(1 + (i + round) % 5) + ":1", "r" + std::to_string(round));
      net.Poke(i);
    }
    net.RunFor(7);
  }
  net.RunFor(100);
  for (auto& f : fakes)
    for (auto& p : f.packets) order->push_back(std::to_string(p.at) + p.from + p.data);
  return net.trace_hash();
}

TEST(SimNetwork, SameSeedSameRunOtherSeedOtherRun) {
  std::vector<std::string> o1, o2, o3;
  const uint64_t h1 = RunChatter(42, &o1);
  const uint64_t h2 = RunChatter(42, &o2);
  const uint64_t h3 = RunChatter(43, &o3);
  EXPECT_EQ(h1, h2);
  EXPECT_EQ(o1, o2);
  EXPECT_NE(h1, h3);
  EXPECT_NE(o1, o3);
}

}  // namespace
}  // namespace hub::cluster::sim
