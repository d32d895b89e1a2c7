#include "cluster/discovery/static_seeds.h"

#include <map>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>

namespace hub::cluster {
namespace {

std::vector<std::string> Texts(const std::vector<Seed>& seeds) {
  std::vector<std::string> out;
  for (const Seed& s : seeds) out.push_back(s.text());
  return out;
}

// --- ParseSeeds ----------------------------------------------------------

TEST(ParseSeeds, ParsesNamesAddressesAndBracketedIPv6) {
  auto r = ParseSeeds(" 10.0.0.1:6881, hub-2.lan:7000 ,[fe80::1]:6881,[::1]:1,a_b.local:65535");
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->size(), 5u);
  EXPECT_EQ((*r)[0].host, "10.0.0.1");
  EXPECT_EQ((*r)[0].port, 6881);
  EXPECT_FALSE((*r)[0].ipv6);
  EXPECT_EQ((*r)[1].host, "hub-2.lan");
  EXPECT_EQ((*r)[1].port, 7000);
  EXPECT_EQ((*r)[2].host, "fe80::1");
  EXPECT_TRUE((*r)[2].ipv6);
  EXPECT_EQ((*r)[3].port, 1);
  EXPECT_EQ((*r)[4].port, 65535);
  EXPECT_EQ(Texts(*r), (std::vector<std::string>{"10.0.0.1:6881", "hub-2.lan:7000",
                                                 "[fe80::1]:6881", "[::1]:1", "a_b.local:65535"}));
}

TEST(ParseSeeds, EmptyTextIsAnEmptyList) {
  for (const char* t : {"", "  ", "\n"}) {
    auto r = ParseSeeds(t);
    ASSERT_TRUE(r.ok()) << t;
    EXPECT_TRUE(r->empty());
  }
}

TEST(ParseSeeds, ErrorsNameTheEntryAndWhatIsWrong) {
  const std::pair<const char*, std::vector<const char*>> cases[] = {
      {"a:1,,b:2", {"entry 2 is empty"}},
      {"a:1,", {"entry 2 is empty"}},
      {",a:1", {"entry 1 is empty"}},
      {"a:1, ,b:2", {"entry 2 is empty"}},
      {"hub", {"entry 1 (\"hub\")", "no port"}},
      {"hub:", {"port \"\""}},
      {"a:1,hub:0", {"entry 2 (\"hub:0\")", "port \"0\"", "1 to 65535"}},
      {"hub:65536", {"port \"65536\""}},
      {"hub:123456", {"port \"123456\""}},
      {"hub:-1", {"port \"-1\""}},
      {"hub:+1", {"port \"+1\""}},
      {"hub:12ab", {"port \"12ab\""}},
      {":6881", {"no host"}},
      {"fe80::1:6881", {"brackets", "[fe80::1]:6881"}},
      {"[fe80::1", {"closing ']'"}},
      {"[fe80::1]", {"no :port"}},
      {"[fe80::1]6881", {"no :port"}},
      {"[]:6881", {"not an IPv6 address"}},
      {"[10.0.0.1]:6881", {"not an IPv6 address"}},
      {"[fe80::zz]:6881", {"not an IPv6 address"}},
      {"udp://hub:6881", {"URL"}},
      {"hub name:6881", {"characters"}},
      {"hub/x:6881", {"characters"}},
  };
  for (const auto& [text, says] : cases) {
    auto r = ParseSeeds(text);
    ASSERT_FALSE(r.ok()) << "\"" << text << "\" parsed";
    EXPECT_EQ(r.code(), seeds_errc::bad_seeds);
    const std::string& m = r.error().message;
    EXPECT_NE(m.find("P2P_SEEDS"), std::string::npos) << m;
    EXPECT_NE(m.find("host:port"), std::string::npos) << m;  // what to write instead
    for (const char* s : says) {
      EXPECT_NE(m.find(s), std::string::npos) << "\"" << text << "\": \"" << m << "\" lacks \"" << s
                                              << "\"";
    }
  }
}

// --- StaticSeeds with an in-memory resolver -------------------------------

struct FakeDns {
  std::map<std::string, std::vector<std::string>> names;
  mutable std::mutex mu;
  mutable std::vector<std::string> asked;
  Resolver resolver() const {
    return [this](const std::string& host) -> Result<std::vector<std::string>> {
      std::lock_guard lock(mu);
      asked.push_back(host);
      auto it = names.find(host);
      if (it == names.end()) {
        return MakeError(seeds_errc::unresolvable, "cannot resolve \"" + host + "\": not known");
      }
      return it->second;
    };
  }
};

struct Collector {
  std::mutex mu;
  std::vector<Candidate> found;
  Discovery::Found fn() {
    return [this](const Candidate& c) {
      std::lock_guard lock(mu);
      found.push_back(c);
    };
  }
  std::vector<std::string> addresses() {
    std::lock_guard lock(mu);
    std::vector<std::string> out;
    for (const auto& c : found) out.push_back(c.address);
    return out;
  }
};

StaticSeedsOptions Options(const char* seeds, const FakeDns& dns) {
  auto parsed = ParseSeeds(seeds);
  EXPECT_TRUE(parsed.ok());
  return StaticSeedsOptions{.seeds = parsed.ok() ? *parsed : std::vector<Seed>{},
                            .resolve = dns.resolver()};
}

TEST(StaticSeeds, ReportsEveryAddressOfEverySeedAsStatic) {
  FakeDns dns;
  dns.names["a.lan"] = {"10.0.0.1"};
  dns.names["many.lan"] = {"10.0.0.2", "10.0.0.3"};
  dns.names["10.0.0.9"] = {"10.0.0.9"};
  StaticSeeds seeds(Options("a.lan:6881,many.lan:7000,10.0.0.9:6881", dns));
  EXPECT_EQ(seeds.name(), "static");
  Collector c;
  auto r = seeds.Start(ServiceInfo{.node_name = "me", .port = 6881}, c.fn());
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(c.addresses(), (std::vector<std::string>{"10.0.0.1:6881", "10.0.0.2:7000",
                                                     "10.0.0.3:7000", "10.0.0.9:6881"}));
  for (const auto& cand : c.found) {
    EXPECT_EQ(cand.source, "static");
    EXPECT_EQ(cand.node_name, "");  // unknown until gossip says
  }
  EXPECT_TRUE(seeds.problems().empty());
  seeds.Stop();
}

TEST(StaticSeeds, TheSameAddressIsReportedOnce) {
  FakeDns dns;
  dns.names["a"] = {"10.0.0.1"};
  dns.names["b"] = {"10.0.0.1", "10.0.0.2"};
  StaticSeeds seeds(Options("a:1,b:1,a:2", dns));
  Collector c;
  ASSERT_TRUE(seeds.Start({}, c.fn()).ok());
  EXPECT_EQ(c.addresses(), (std::vector<std::string>{"10.0.0.1:1", "10.0.0.2:1", "10.0.0.1:2"}));
}

TEST(StaticSeeds, SomeUnresolvableSeedsAreProblemsNotErrors) {
  FakeDns dns;
  dns.names["up"] = {"10.0.0.1"};
  StaticSeeds seeds(Options("down:6881,up:6881,[fe80::1]:6881", dns));
  Collector c;
  auto r = seeds.Start({}, c.fn());
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(c.addresses(), std::vector<std::string>{"10.0.0.1:6881"});
  const auto problems = seeds.problems();
  ASSERT_EQ(problems.size(), 2u);
  EXPECT_NE(problems[0].find("down:6881"), std::string::npos) << problems[0];
  EXPECT_NE(problems[0].find("not known"), std::string::npos) << problems[0];
  EXPECT_NE(problems[1].find("[fe80::1]:6881"), std::string::npos) << problems[1];
  EXPECT_NE(problems[1].find("IPv4"), std::string::npos) << problems[1];
}

TEST(StaticSeeds, NoResolvableSeedIsAnErrorNamingEach) {
  FakeDns dns;
  StaticSeeds seeds(Options("down:6881,gone:7000", dns));
  Collector c;
  auto r = seeds.Start({}, c.fn());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), seeds_errc::unresolvable);
  EXPECT_NE(r.error().message.find("down:6881"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("gone:7000"), std::string::npos) << r.error().message;
  EXPECT_TRUE(c.addresses().empty());

  // Still started: a later Refresh finds what DNS learned since.
  dns.names["gone"] = {"10.0.0.7"};
  ASSERT_TRUE(seeds.Refresh().ok());
  EXPECT_EQ(c.addresses(), std::vector<std::string>{"10.0.0.7:7000"});
  EXPECT_EQ(seeds.problems().size(), 1u);
}

TEST(StaticSeeds, AnEmptyListCannotStart) {
  FakeDns dns;
  StaticSeeds seeds(StaticSeedsOptions{.resolve = dns.resolver()});
  auto r = seeds.Start({}, [](const Candidate&) {});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("P2P_SEEDS"), std::string::npos);
}

TEST(StaticSeeds, StartsOnce) {
  FakeDns dns;
  dns.names["a"] = {"10.0.0.1"};
  StaticSeeds seeds(Options("a:1", dns));
  ASSERT_TRUE(seeds.Start({}, [](const Candidate&) {}).ok());
  EXPECT_EQ(seeds.Start({}, [](const Candidate&) {}).code(), seeds_errc::already_started);
}

TEST(StaticSeeds, RefreshReportsAgainAndNothingAfterStop) {
  FakeDns dns;
  dns.names["a"] = {"10.0.0.1"};
  StaticSeeds seeds(Options("a:1", dns));
  Collector c;
  ASSERT_TRUE(seeds.Refresh().ok());  // before Start: nothing
  EXPECT_TRUE(dns.asked.empty());
  ASSERT_TRUE(seeds.Start({}, c.fn()).ok());
  ASSERT_TRUE(seeds.Refresh().ok());
  EXPECT_EQ(c.addresses().size(), 2u);
  seeds.Stop();
  seeds.Stop();  // idempotent
  ASSERT_TRUE(seeds.Refresh().ok());
  EXPECT_EQ(c.addresses().size(), 2u);
  EXPECT_EQ(dns.asked.size(), 2u);
}

TEST(StaticSeeds, ConcurrentRefreshesNeverReportConcurrently) {
  FakeDns dns;
  dns.names["a"] = {"10.0.0.1", "10.0.0.2", "10.0.0.3"};
  StaticSeeds seeds(Options("a:1", dns));
  std::mutex probe;
  int inside = 0, overlaps = 0, total = 0;
  ASSERT_TRUE(seeds
                  .Start({},
                         [&](const Candidate&) {
                           {
                             std::lock_guard l(probe);
                             if (++inside > 1) ++overlaps;
                             ++total;
                           }
                           std::this_thread::yield();
                           std::lock_guard l(probe);
                           --inside;
                         })
                  .ok());
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&] {
      for (int j = 0; j < 50; ++j) EXPECT_TRUE(seeds.Refresh().ok());
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(overlaps, 0);
  EXPECT_EQ(total, 3 * (1 + 4 * 50));
}

// --- The system resolver (no network: literals and /etc/hosts) -------------

TEST(ResolveIPv4, ResolvesLiteralsAndLocalhost) {
  auto lit = ResolveIPv4("127.0.0.1");
  ASSERT_TRUE(lit.ok()) << lit.error().message;
  EXPECT_EQ(*lit, std::vector<std::string>{"127.0.0.1"});
  auto local = ResolveIPv4("localhost");
  ASSERT_TRUE(local.ok()) << local.error().message;
  ASSERT_FALSE(local->empty());
  EXPECT_EQ(local->front().rfind("127.", 0), 0u) << local->front();
}

TEST(ResolveIPv4, AnIPv6LiteralHasNoIPv4Address) {
  auto r = ResolveIPv4("::1");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), seeds_errc::unresolvable);
  EXPECT_NE(r.error().message.find("::1"), std::string::npos);
}

TEST(StaticSeeds, DefaultResolverIsTheSystemOne) {
  auto parsed = ParseSeeds("127.0.0.1:17946,localhost:17947");
  ASSERT_TRUE(parsed.ok());
  StaticSeeds seeds(StaticSeedsOptions{.seeds = *parsed});
  Collector c;
  ASSERT_TRUE(seeds.Start({}, c.fn()).ok());
  const auto got = c.addresses();
  ASSERT_GE(got.size(), 2u);
  EXPECT_EQ(got[0], "127.0.0.1:17946");
  EXPECT_EQ(got[1].substr(got[1].size() - 6), ":17947");
}

}  // namespace
}  // namespace hub::cluster
