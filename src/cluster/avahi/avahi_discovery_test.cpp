#include "cluster/avahi/avahi_discovery.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

namespace hub::cluster {
namespace {

TEST(ServiceTxt, AddsVersionAndNodeName) {
  ServiceInfo self{"node-a", 7000, {{"extra", "x"}}};
  auto txt = ServiceTxt(self);
  EXPECT_EQ(txt.at("version"), "1.0");
  EXPECT_EQ(txt.at("node_name"), "node-a");
  EXPECT_EQ(txt.at("extra"), "x");
  EXPECT_EQ(txt.size(), 3u);
}

TEST(ServiceTxt, KeepsValuesTheCallerSet) {
  ServiceInfo self{"node-a", 7000, {{"version", "2.0"}, {"node_name", "other"}}};
  auto txt = ServiceTxt(self);
  EXPECT_EQ(txt.at("version"), "2.0");
  EXPECT_EQ(txt.at("node_name"), "other");
}

TEST(MakeAvahiCandidate, TakesNameAndVersionFromTxt) {
  auto c = MakeAvahiCandidate("node-b #2", "10.1.2.3", 6881, {{"node_name", "node-b"}, {"version", "1.0"}});
  EXPECT_EQ(c.address, "10.1.2.3:6881");
  EXPECT_EQ(c.node_name, "node-b");  // the TXT name, not the renamed instance
  EXPECT_EQ(c.version, "1.0");
  EXPECT_EQ(c.source, "avahi");
}

TEST(MakeAvahiCandidate, FallsBackToInstanceNameWithoutTxt) {
  auto c = MakeAvahiCandidate("node-c", "10.1.2.4", 7001, {{"node_name", ""}});
  EXPECT_EQ(c.node_name, "node-c");
  EXPECT_EQ(c.version, "");
  EXPECT_EQ(c.address, "10.1.2.4:7001");
}

// No daemon: the system bus address points at a socket that does not exist.
// Start must fail at once with daemon_unreachable and a message that names
// the bus and the fallback, leaving nothing behind (Stop is a no-op).
// deploy/avahi/stream-hub.service installed without substitution.
TEST(MakeAvahiCandidate, UnexpandedHostWildcardMeansInstanceName) {
  auto c = MakeAvahiCandidate("hub7", "10.1.2.7", 6881, {{"node_name", "%h"}, {"version", "1.0"}});
  EXPECT_EQ(c.node_name, "hub7");
}

TEST(AvahiDiscovery, StartFailsClearlyWithoutDaemon) {
  auto missing = std::filesystem::temp_directory_path() / "hub-avahi-test-no-such-dir" / "bus.sock";
  ASSERT_FALSE(std::filesystem::exists(missing));
  std::string address = "unix:path=" + missing.string();
  ASSERT_EQ(setenv("DBUS_SYSTEM_BUS_ADDRESS", address.c_str(), 1), 0);

  AvahiDiscovery d;
  EXPECT_EQ(d.name(), "avahi");
  int found = 0;
  auto r = d.Start({"node-a", 6881, {}}, [&](const Candidate&) { ++found; });
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), avahi_errc::daemon_unreachable);
  EXPECT_NE(r.error().message.find(missing.string()), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("P2P_DISCOVERY=mdns"), std::string::npos) << r.error().message;
  d.Stop();
  d.Stop();
  EXPECT_EQ(found, 0);
  // A failed Start leaves the object startable again (same answer here).
  EXPECT_EQ(d.Start({"node-a", 6881, {}}, nullptr).code(), avahi_errc::daemon_unreachable);
  unsetenv("DBUS_SYSTEM_BUS_ADDRESS");
}

TEST(AvahiErrc, HasReadableMessages) {
  std::error_code ec = avahi_errc::daemon_unreachable;
  EXPECT_EQ(ec.category().name(), std::string("hub.cluster.avahi"));
  EXPECT_NE(ec.message().find("D-Bus"), std::string::npos);
}

}  // namespace
}  // namespace hub::cluster
