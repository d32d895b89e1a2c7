#include "config/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "config/detail/dotenv.h"
#include "config/detail/values.h"

namespace hub::config {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kKey32[] = "hwDBi3sYM9m+ItWegXA71WSxWglwhpOjs62yMO/837k=";
constexpr char kKey31[] = "+MjPuOqZmt7qVqF+EcaqwyqwqpslAU5xuF2abmvJ0w==";
constexpr char kKey33[] = "yQNBk24En8BnopJ/2Y5zd946la1aKI6F+juzvuAVvLD9";

// Every test gets its own directory under /tmp for the TOML file and the
// .env, and an empty fake environment (never the process's).
class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/config_test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    options_.use_process_env = false;
    options_.dotenv_path = dir_ + "/.env";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string WriteFile(const std::string& name, const std::string& content) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::binary) << content;
    return path;
  }
  std::string WriteToml(const std::string& content) {
    options_.config_file = WriteFile("hub.toml", content);
    return *options_.config_file;
  }
  void WriteDotEnv(const std::string& content) { WriteFile(".env", content); }

  Loaded MustLoad() {
    Result<Loaded> r = Load(options_);
    EXPECT_TRUE(r.ok()) << r.error().message;
    return r.ok() ? *r : Loaded{};
  }
  Error MustFail() {
    Result<Loaded> r = Load(options_);
    EXPECT_FALSE(r.ok()) << "loaded, but expected an error";
    return r.ok() ? Error{} : r.error();
  }
  // The error for one environment variable on its own.
  std::string EnvError(const std::string& key, const std::string& value) {
    options_.env = {{key, value}};
    const Error e = MustFail();
    EXPECT_EQ(e.code, errc::invalid_value) << key << "=" << value;
    return e.message;
  }
  bool EnvAccepted(const std::string& key, const std::string& value) {
    options_.env = {{key, value}};
    return Load(options_).ok();
  }

  std::string dir_;
  LoadOptions options_;
};

std::string HostNameForTest() {
  char buf[256] = {};
  EXPECT_EQ(gethostname(buf, sizeof buf - 1), 0);
  return buf;
}

// ---------------------------------------------------------------------------
// Defaults and derived values.

TEST_F(ConfigTest, DefaultsAreThoseDocumentedInTheHeader) {
  const Loaded l = MustLoad();
  const Config& c = l.config;
  EXPECT_EQ(c.http_bind, "0.0.0.0");
  EXPECT_EQ(c.http_port, 8501);
  EXPECT_EQ(c.data_dir, "./data");
  EXPECT_EQ(c.upload_dir, "./data/videos");
  EXPECT_EQ(c.streams_dir, "./data/videos/streams");
  EXPECT_EQ(c.notepad_storage_path, "./data/notes");
  EXPECT_EQ(c.analytics_dir, "./data/analytics");
  EXPECT_EQ(c.storage_backend, "local");
  EXPECT_EQ(c.state_dir, "./var/state");
  EXPECT_EQ(c.logs_dir, "./var/logs");
  EXPECT_EQ(c.temp_dir, "./var/tmp");
  EXPECT_EQ(c.log_level, "info");
  EXPECT_EQ(c.max_upload_size_mb, 20480u);
  EXPECT_EQ(c.upload_expiry_hours, 24u);
  EXPECT_EQ(c.delete_grace_minutes, 60u);
  EXPECT_EQ(c.rescan_interval_s, 10u);
  EXPECT_EQ(c.admin_token, "");
  EXPECT_FALSE(c.p2p_enabled);
  EXPECT_EQ(c.p2p_port, 6881);
  EXPECT_EQ(c.p2p_node_name, HostNameForTest());
  EXPECT_EQ(c.p2p_heartbeat_interval, 5u);
  EXPECT_EQ(c.p2p_bind, "0.0.0.0");
  EXPECT_EQ(c.p2p_discovery, "avahi,mdns");
  EXPECT_EQ(c.p2p_seeds, "");
  EXPECT_EQ(c.p2p_cluster_key, "");
  EXPECT_EQ(c.p2p_keyring_file, "");
  EXPECT_TRUE(c.community_notepad_enabled);
  EXPECT_TRUE(c.notepad_auto_sync);
  EXPECT_EQ(c.notepad_max_size_mb, 100u);

  const std::set<std::string> derived = {"UPLOAD_DIR", "STREAMS_DIR", "NOTEPAD_STORAGE_PATH",
                                         "ANALYTICS_DIR"};
  for (const std::string& key : KeyNames()) {
    ASSERT_TRUE(l.origins.count(key)) << key;
    EXPECT_EQ(l.origins.at(key).source, derived.count(key) ? "derived" : "default") << key;
  }
}

TEST_F(ConfigTest, KeyNamesListEveryKeyOnceInDisplayOrder) {
  const std::vector<std::string>& names = KeyNames();
  ASSERT_EQ(names.size(), 40u);
  EXPECT_EQ(names.front(), "HTTP_BIND");
  EXPECT_EQ(names[1], "HTTP_PORT");
  EXPECT_EQ(names.back(), "MEDIA_JOB_TIMEOUT_S");
  EXPECT_EQ(std::set<std::string>(names.begin(), names.end()).size(), names.size());
  const Loaded l = MustLoad();
  EXPECT_EQ(l.origins.size(), names.size());
}

TEST_F(ConfigTest, DerivedPathsFollowDataDirFromTheEnvironment) {
  options_.env = {{"DATA_DIR", "/srv/hub"}};
  const Loaded l = MustLoad();
  EXPECT_EQ(l.config.upload_dir, "/srv/hub/videos");
  EXPECT_EQ(l.config.streams_dir, "/srv/hub/videos/streams");
  EXPECT_EQ(l.config.notepad_storage_path, "/srv/hub/notes");
  EXPECT_EQ(l.config.analytics_dir, "/srv/hub/analytics");
  EXPECT_EQ(l.origins.at("DATA_DIR").source, "environment");
  EXPECT_EQ(l.origins.at("UPLOAD_DIR").source, "derived");
  EXPECT_EQ(l.origins.at("STREAMS_DIR").source, "derived");
}

TEST_F(ConfigTest, DerivedPathsFollowDataDirFromTheFile) {
  const std::string path = WriteToml("data_dir = \"/mnt/nfs/hub\"\n");
  const Loaded l = MustLoad();
  EXPECT_EQ(l.config.upload_dir, "/mnt/nfs/hub/videos");
  EXPECT_EQ(l.config.analytics_dir, "/mnt/nfs/hub/analytics");
  EXPECT_EQ(l.origins.at("DATA_DIR").source, "file:" + path);
  EXPECT_EQ(l.origins.at("UPLOAD_DIR").source, "derived");
}

TEST_F(ConfigTest, StreamsDirFollowsAnExplicitUploadDir) {
  WriteDotEnv("UPLOAD_DIR=/mnt/videos\n");
  const Loaded l = MustLoad();
  EXPECT_EQ(l.config.upload_dir, "/mnt/videos");
  EXPECT_EQ(l.config.streams_dir, "/mnt/videos/streams");
  EXPECT_EQ(l.config.notepad_storage_path, "./data/notes");
  EXPECT_EQ(l.origins.at("UPLOAD_DIR").source, ".env");
  EXPECT_EQ(l.origins.at("STREAMS_DIR").source, "derived");
}

TEST_F(ConfigTest, AnExplicitValueBeatsTheDerivedOne) {
  options_.env = {{"DATA_DIR", "/srv"}, {"NOTEPAD_STORAGE_PATH", "/elsewhere/notes"}};
  const Loaded l = MustLoad();
  EXPECT_EQ(l.config.notepad_storage_path, "/elsewhere/notes");
  EXPECT_EQ(l.origins.at("NOTEPAD_STORAGE_PATH").source, "environment");
  EXPECT_EQ(l.config.analytics_dir, "/srv/analytics");
}

TEST_F(ConfigTest, DerivedPathsDoNotDoubleSlashes) {
  options_.env = {{"DATA_DIR", "/srv/hub//"}};
  EXPECT_EQ(MustLoad().config.upload_dir, "/srv/hub/videos");
  options_.env = {{"DATA_DIR", "/"}};
  EXPECT_EQ(MustLoad().config.upload_dir, "/videos");
}

TEST_F(ConfigTest, NodeNameSetExplicitlyReplacesTheHostName) {
  options_.env = {{"P2P_NODE_NAME", "living-room"}};
  const Loaded l = MustLoad();
  EXPECT_EQ(l.config.p2p_node_name, "living-room");
  EXPECT_EQ(l.origins.at("P2P_NODE_NAME").source, "environment");
}

// ---------------------------------------------------------------------------
// Sources and precedence.

TEST_F(ConfigTest, PrecedenceIsEnvironmentThenDotEnvThenFileThenDefault) {
  const std::string path = WriteToml(
      "HTTP_PORT = 1001\n"
      "LOG_LEVEL = \"debug\"\n"
      "STATE_DIR = \"/file/state\"\n");
  WriteDotEnv(
      "HTTP_PORT=1002\n"
      "LOG_LEVEL=warn\n");
  options_.env = {{"HTTP_PORT", "1003"}};
  const Loaded l = MustLoad();
  EXPECT_EQ(l.config.http_port, 1003);
  EXPECT_EQ(l.origins.at("HTTP_PORT").source, "environment");
  EXPECT_EQ(l.config.log_level, "warn");
  EXPECT_EQ(l.origins.at("LOG_LEVEL").source, ".env");
  EXPECT_EQ(l.config.state_dir, "/file/state");
  EXPECT_EQ(l.origins.at("STATE_DIR").source, "file:" + path);
  EXPECT_EQ(l.config.logs_dir, "./var/logs");
  EXPECT_EQ(l.origins.at("LOGS_DIR").source, "default");
}

TEST_F(ConfigTest, TomlKeysMayBeUpperOrLowerCaseAndValuesStringsIntsOrBools) {
  WriteToml(
      "# comment\n"
      "http_port = \"8600\"\n"
      "P2P_PORT = 7000\n"
      "p2p_enabled = true\n"
      "NOTEPAD_AUTO_SYNC = \"off\"\n"
      "community_notepad_enabled = 0\n"
      "log_level = 'DEBUG'\n");
  const Config c = MustLoad().config;
  EXPECT_EQ(c.http_port, 8600);
  EXPECT_EQ(c.p2p_port, 7000);
  EXPECT_TRUE(c.p2p_enabled);
  EXPECT_FALSE(c.notepad_auto_sync);
  EXPECT_FALSE(c.community_notepad_enabled);
  EXPECT_EQ(c.log_level, "debug");
}

TEST_F(ConfigTest, DotEnvSyntax) {
  WriteDotEnv(
      "# a comment\n"
      "\n"
      "   \n"
      "export HTTP_PORT=8600\n"
      "DATA_DIR = /srv/my data   # trailing comment\n"
      "STATE_DIR=\"/quoted # not a comment\"  # a comment\n"
      "LOGS_DIR='/single \\n literal'\n"
      "TEMP_DIR=\"/a\\\\b\\\"c\\nd\"\r\n"
      "P2P_NODE_NAME=node#1\n"
      "P2P_SEEDS=\n"
      "SOMETHING_ELSE=whatever\n");
  const Config c = MustLoad().config;
  EXPECT_EQ(c.http_port, 8600);
  EXPECT_EQ(c.data_dir, "/srv/my data");
  EXPECT_EQ(c.state_dir, "/quoted # not a comment");
  EXPECT_EQ(c.logs_dir, "/single \\n literal");
  EXPECT_EQ(c.temp_dir, "/a\\b\"c\nd");
  EXPECT_EQ(c.p2p_node_name, "node#1");
  EXPECT_EQ(c.p2p_seeds, "");
}

TEST_F(ConfigTest, DotEnvLaterLineWins) {
  WriteDotEnv("HTTP_PORT=1\nHTTP_PORT=2\n");
  EXPECT_EQ(MustLoad().config.http_port, 2);
}

TEST_F(ConfigTest, MissingDotEnvIsIgnored) {
  options_.dotenv_path = dir_ + "/does-not-exist/.env";
  EXPECT_EQ(MustLoad().config.http_port, 8501);
}

TEST_F(ConfigTest, UnknownKeysInDotEnvAndEnvironmentAreIgnored) {
  WriteDotEnv("COMPOSE_PROJECT_NAME=hub\nhttp_port=1\n");
  options_.env = {{"PATH", "/usr/bin"}, {"HOME", "/root"}, {"HTTP_PORTX", "x"}};
  EXPECT_EQ(MustLoad().config.http_port, 8501);
}

TEST_F(ConfigTest, ListsAndChoicesAreNormalised) {
  options_.env = {{"P2P_DISCOVERY", " MDNS , avahi,mdns"},
                  {"P2P_SEEDS", " a.example:7946 , [::1]:7946,10.0.0.2:1"},
                  {"STORAGE_BACKEND", "Local"}};
  const Config c = MustLoad().config;
  EXPECT_EQ(c.p2p_discovery, "mdns,avahi");
  EXPECT_EQ(c.p2p_seeds, "a.example:7946,[::1]:7946,10.0.0.2:1");
  EXPECT_EQ(c.storage_backend, "local");
}

// ---------------------------------------------------------------------------
// Validation: every message names the key, the value, the source and the range.

TEST_F(ConfigTest, MessageHasTheDocumentedShape) {
  EXPECT_EQ(EnvError("HTTP_PORT", "99999"),
            "HTTP_PORT=99999 (environment): must be an integer 1..65535");
}

TEST_F(ConfigTest, PortsRejectAnythingButAnIntegerInRange) {
  for (const char* bad : {"0", "65536", "80x", "-1", "+80", "", " 80", "80 ", "0x50", "8.5",
                          "99999999999999999999999", "１"}) {
    EXPECT_THAT(EnvError("HTTP_PORT", bad),
                AllOf(HasSubstr("HTTP_PORT="), HasSubstr("(environment)"),
                      HasSubstr("must be an integer 1..65535")))
        << bad;
    EXPECT_THAT(EnvError("P2P_PORT", bad), HasSubstr("P2P_PORT=")) << bad;
  }
  EXPECT_TRUE(EnvAccepted("HTTP_PORT", "1"));
  EXPECT_TRUE(EnvAccepted("HTTP_PORT", "65535"));
  EXPECT_TRUE(EnvAccepted("HTTP_PORT", "08080"));
}

TEST_F(ConfigTest, EveryIntegerKeyAcceptsItsRangeAndNothingOutside) {
  struct Range {
    const char* key;
    uint64_t min, max;
  };
  for (const Range& r :
       {Range{"HTTP_PORT", 1, 65535}, Range{"P2P_PORT", 1, 65535},
        Range{"MAX_UPLOAD_SIZE_MB", 1, 16777216}, Range{"UPLOAD_EXPIRY_HOURS", 1, 8760},
        Range{"DELETE_GRACE_MINUTES", 0, 10080}, Range{"RESCAN_INTERVAL_S", 1, 3600},
        Range{"P2P_HEARTBEAT_INTERVAL", 1, 300}, Range{"NOTEPAD_MAX_SIZE_MB", 1, 1024}, Range{"NOTEPAD_RESTORE_DAYS", 1, 3650},
        Range{"MEDIA_MAX_HEIGHT", 144, 8640}, Range{"MEDIA_JOB_TIMEOUT_S", 10, 604800}}) {
    const std::string range = std::to_string(r.min) + ".." + std::to_string(r.max);
    EXPECT_TRUE(EnvAccepted(r.key, std::to_string(r.min))) << r.key;
    EXPECT_TRUE(EnvAccepted(r.key, std::to_string(r.max))) << r.key;
    EXPECT_EQ(EnvError(r.key, std::to_string(r.max + 1)),
              std::string(r.key) + "=" + std::to_string(r.max + 1) +
                  " (environment): must be an integer " + range);
    if (r.min > 0) {
      EXPECT_THAT(EnvError(r.key, std::to_string(r.min - 1)), HasSubstr(range)) << r.key;
    }
    EXPECT_THAT(EnvError(r.key, "-1"), HasSubstr(range)) << r.key;
  }
}

TEST_F(ConfigTest, IntegersAreStoredInTheirFields) {
  options_.env = {{"MAX_UPLOAD_SIZE_MB", "16777216"},
                  {"P2P_HEARTBEAT_INTERVAL", "300"},
                  {"DELETE_GRACE_MINUTES", "0"}};
  const Config c = MustLoad().config;
  EXPECT_EQ(c.max_upload_size_mb, 16777216u);
  EXPECT_EQ(c.p2p_heartbeat_interval, 300u);
  EXPECT_EQ(c.delete_grace_minutes, 0u);
}

TEST_F(ConfigTest, BooleansAcceptSixSpellingsInAnyCase) {
  for (const char* yes : {"true", "TRUE", "1", "yes", "Yes", "on", "ON"}) {
    options_.env = {{"P2P_ENABLED", yes}};
    EXPECT_TRUE(MustLoad().config.p2p_enabled) << yes;
  }
  for (const char* no : {"false", "False", "0", "no", "NO", "off", "Off"}) {
    options_.env = {{"NOTEPAD_AUTO_SYNC", no}};
    EXPECT_FALSE(MustLoad().config.notepad_auto_sync) << no;
  }
  for (const char* bad : {"maybe", "", "2", "y", "t", "true ", "enabled"}) {
    EXPECT_THAT(EnvError("P2P_ENABLED", bad),
                AllOf(HasSubstr("P2P_ENABLED="), HasSubstr("(environment)"),
                      HasSubstr("must be a boolean: true/false, yes/no, on/off or 1/0")))
        << bad;
  }
  EXPECT_EQ(EnvError("COMMUNITY_NOTEPAD_ENABLED", "maybe"),
            "COMMUNITY_NOTEPAD_ENABLED=maybe (environment): must be a boolean: true/false, "
            "yes/no, on/off or 1/0");
}

TEST_F(ConfigTest, ClusterKeyMustBeBase64OfExactly32Bytes) {
  EXPECT_TRUE(EnvAccepted("P2P_CLUSTER_KEY", kKey32));
  EXPECT_TRUE(EnvAccepted("P2P_CLUSTER_KEY", ""));
  EXPECT_THAT(
      EnvError("P2P_CLUSTER_KEY", kKey31),
      AllOf(HasSubstr("P2P_CLUSTER_KEY="), HasSubstr("(environment)"),
            HasSubstr("base64 encoding of exactly 32 bytes"), HasSubstr("it decodes to 31 bytes")));
  EXPECT_THAT(EnvError("P2P_CLUSTER_KEY", kKey33), HasSubstr("it decodes to 33 bytes"));
  std::string non_canonical = kKey32;
  non_canonical[42] = 'l';  // 'k' -> 'l' sets an unused trailing bit
  std::string url_safe = kKey32;
  url_safe[12] = '-';
  for (const std::string& bad :
       {std::string("not base64 at all!"), std::string(kKey32).substr(0, 43),
        std::string(kKey32) + "=", std::string(" ") + kKey32, non_canonical, url_safe,
        std::string("====")}) {
    EXPECT_THAT(EnvError("P2P_CLUSTER_KEY", bad),
                AllOf(HasSubstr("P2P_CLUSTER_KEY="), HasSubstr("not valid base64")))
        << bad;
  }
}

TEST_F(ConfigTest, SecretsAreNotEchoedInErrors) {
  const std::string message = EnvError("P2P_CLUSTER_KEY", kKey31);
  EXPECT_THAT(message, Not(HasSubstr(kKey31)));
  EXPECT_THAT(message, HasSubstr("P2P_CLUSTER_KEY=(hidden, 44 characters) (environment)"));
  EXPECT_THAT(EnvError("ADMIN_TOKEN", "hunter2hunter2"), Not(HasSubstr("hunter2")));
}

TEST_F(ConfigTest, AdminTokenIsEmptyOrSixteenPrintableNonSpaceCharacters) {
  EXPECT_TRUE(EnvAccepted("ADMIN_TOKEN", ""));
  EXPECT_TRUE(EnvAccepted("ADMIN_TOKEN", "0123456789abcdef"));
  EXPECT_TRUE(EnvAccepted("ADMIN_TOKEN", "~!@#$%^&*()_+{}|:<>?"));
  EXPECT_THAT(EnvError("ADMIN_TOKEN", "0123456789abcde"),
              AllOf(HasSubstr("ADMIN_TOKEN="), HasSubstr("at least 16"),
                    HasSubstr("it has 15 characters")));
  EXPECT_THAT(EnvError("ADMIN_TOKEN", "0123456789 abcdef"), HasSubstr("contains a space"));
  EXPECT_THAT(EnvError("ADMIN_TOKEN", "0123456789abcdef\t"), HasSubstr("contains a space"));
  EXPECT_THAT(EnvError("ADMIN_TOKEN", "0123456789abcdéf"), HasSubstr("not printable ASCII"));
}

TEST_F(ConfigTest, DiscoveryIsANonEmptyListOfKnownMechanisms) {
  EXPECT_TRUE(EnvAccepted("P2P_DISCOVERY", "static"));
  EXPECT_TRUE(EnvAccepted("P2P_DISCOVERY", "avahi,mdns,static"));
  const std::string range = "must be a comma list of avahi|mdns|static with at least one entry";
  EXPECT_EQ(EnvError("P2P_DISCOVERY", ""),
            "P2P_DISCOVERY=\"\" (environment): " + range + "; it has an empty entry");
  EXPECT_THAT(EnvError("P2P_DISCOVERY", "avahi,,mdns"), HasSubstr("it has an empty entry"));
  EXPECT_THAT(EnvError("P2P_DISCOVERY", "avahi,bonjour"),
              AllOf(HasSubstr(range), HasSubstr("\"bonjour\" is not one")));
}

TEST_F(ConfigTest, SeedsAreEmptyOrHostPortPairs) {
  EXPECT_TRUE(EnvAccepted("P2P_SEEDS", ""));
  EXPECT_TRUE(EnvAccepted("P2P_SEEDS", "node-2.lan:6881"));
  EXPECT_TRUE(EnvAccepted("P2P_SEEDS", "[fe80::1]:6881,192.168.1.20:6881"));
  struct Case {
    const char* value;
    const char* why;
  };
  for (const Case& c : {Case{"node-2", "has no port"}, Case{"node-2:0", "port 1..65535"},
                        Case{"node-2:65536", "port 1..65535"}, Case{"node-2:68x", "port 1..65535"},
                        Case{"node-2:", "port 1..65535"}, Case{"::1:6881", "[addr]:port"},
                        Case{"[::1]", "has no port"}, Case{"[::1]6881", "has no port"},
                        Case{"[::1:6881", "no closing ]"}, Case{"[zz]:6881", "IPv6 address"},
                        Case{"a..b:6881", "host name"}, Case{"-bad:6881", "host name"},
                        Case{":6881", "host name"}, Case{"a b:6881", "host name"},
                        Case{"a:1,,b:2", "empty entry"}, Case{"a:1,", "empty entry"}}) {
    EXPECT_THAT(EnvError("P2P_SEEDS", c.value),
                AllOf(HasSubstr("P2P_SEEDS="), HasSubstr("(environment)"),
                      HasSubstr("comma list of host:port (port 1..65535, IPv6 as [addr]:port)"),
                      HasSubstr(c.why)))
        << c.value;
  }
}

TEST_F(ConfigTest, BindAddressesAreIpLiterals) {
  for (const char* ok : {"0.0.0.0", "127.0.0.1", "::", "::1", "fe80::1"}) {
    EXPECT_TRUE(EnvAccepted("HTTP_BIND", ok)) << ok;
    EXPECT_TRUE(EnvAccepted("P2P_BIND", ok)) << ok;
  }
  for (const char* bad : {"localhost", "1.2.3", "[::]", "0.0.0.0 ", "", "256.0.0.1"}) {
    EXPECT_THAT(EnvError("HTTP_BIND", bad),
                AllOf(HasSubstr("HTTP_BIND="), HasSubstr("IPv4 or IPv6 address literal")))
        << bad;
  }
}

TEST_F(ConfigTest, LogLevelAndStorageBackendNameWhatTheyAccept) {
  options_.env = {{"LOG_LEVEL", "WARN"}};
  EXPECT_EQ(MustLoad().config.log_level, "warn");
  EXPECT_EQ(EnvError("LOG_LEVEL", "verbose"),
            "LOG_LEVEL=verbose (environment): must be one of trace|debug|info|warn|error");
  EXPECT_EQ(EnvError("STORAGE_BACKEND", "s3"),
            "STORAGE_BACKEND=s3 (environment): must be local (the only accepted value for now)");
}

TEST_F(ConfigTest, PathsAreNonEmptyWithoutNul) {
  EXPECT_EQ(EnvError("DATA_DIR", ""), "DATA_DIR=\"\" (environment): must be a non-empty path");
  EXPECT_THAT(EnvError("UPLOAD_DIR", ""), HasSubstr("UPLOAD_DIR=\"\""));
  EXPECT_TRUE(EnvAccepted("P2P_KEYRING_FILE", ""));
  EXPECT_TRUE(EnvAccepted("P2P_KEYRING_FILE", "/etc/hub/keyring"));
  WriteToml("state_dir = \"/var/\\u0000x\"\n");
  const Error e = MustFail();
  EXPECT_EQ(e.code, errc::invalid_value);
  EXPECT_THAT(e.message,
              AllOf(HasSubstr("STATE_DIR=\"/var/\\x00x\""), HasSubstr("it contains a NUL byte")));
}

TEST_F(ConfigTest, NodeNameIsShortPrintableAscii) {
  EXPECT_TRUE(EnvAccepted("P2P_NODE_NAME", std::string(64, 'n')));
  for (const std::string& bad : {std::string(""), std::string(65, 'n'), std::string("my node")}) {
    EXPECT_THAT(EnvError("P2P_NODE_NAME", bad),
                HasSubstr("must be 1..64 printable ASCII characters without spaces"))
        << bad;
  }
}

TEST_F(ConfigTest, LongAndOddValuesAreShownBoundedAndEscaped) {
  const std::string message = EnvError("LOG_LEVEL", std::string(200, 'x'));
  EXPECT_THAT(message, HasSubstr("LOG_LEVEL=" + std::string(80, 'x') + "... (environment)"));
  EXPECT_THAT(EnvError("LOG_LEVEL", "a\nb"), HasSubstr("LOG_LEVEL=\"a\\x0ab\""));
}

TEST_F(ConfigTest, EveryProblemIsReportedOneLineEach) {
  options_.env = {{"HTTP_PORT", "0"}, {"LOG_LEVEL", "loud"}, {"P2P_ENABLED", "maybe"}};
  const Error e = MustFail();
  EXPECT_EQ(e.code, errc::invalid_value);
  EXPECT_EQ(e.message,
            "HTTP_PORT=0 (environment): must be an integer 1..65535\n"
            "LOG_LEVEL=loud (environment): must be one of trace|debug|info|warn|error\n"
            "P2P_ENABLED=maybe (environment): must be a boolean: true/false, yes/no, on/off or "
            "1/0");
}

TEST_F(ConfigTest, AnOverriddenFileValueIsStillChecked) {
  const std::string path = WriteToml("\nhttp_port = 99999\n");
  options_.env = {{"HTTP_PORT", "8080"}};
  EXPECT_EQ(MustFail().message,
            "HTTP_PORT=99999 (file:" + path + " line 2): must be an integer 1..65535");
}

TEST_F(ConfigTest, DotEnvValueErrorsNameTheLine) {
  WriteDotEnv("# ports\n\nHTTP_PORT=80x\n");
  EXPECT_EQ(MustFail().message,
            "HTTP_PORT=80x (" + dir_ + "/.env line 3): must be an integer 1..65535");
}

// ---------------------------------------------------------------------------
// The TOML file.

TEST_F(ConfigTest, UnknownTomlKeyIsAnErrorWithItsLine) {
  const std::string path = WriteToml("http_port = 8600\nHTTP_PROT = 8600\n");
  const Error e = MustFail();
  EXPECT_EQ(e.code, errc::unknown_key);
  EXPECT_EQ(e.message,
            "unknown key \"HTTP_PROT\" (file:" + path + " line 2) (did you mean HTTP_PORT?)");
}

TEST_F(ConfigTest, MixedCaseTomlKeyIsUnknownWithAHint) {
  WriteToml("Http_Port = 8600\n");
  EXPECT_THAT(MustFail().message, AllOf(HasSubstr("unknown key \"Http_Port\""),
                                        HasSubstr("(write it HTTP_PORT or http_port)")));
}

TEST_F(ConfigTest, FarFromAnyKeyGetsNoSuggestion) {
  WriteToml("frobnicate = 1\n");
  EXPECT_THAT(MustFail().message,
              AllOf(HasSubstr("unknown key \"frobnicate\""), Not(HasSubstr("did you mean"))));
}

TEST_F(ConfigTest, NestedTomlTablesAreRejected) {
  for (const char* toml : {"[http]\nport = 8501\n", "http = { port = 8501 }\n",
                           "http.port = 8501\n", "[[seeds]]\nhost = \"a\"\n"}) {
    WriteToml(toml);
    const Error e = MustFail();
    EXPECT_EQ(e.code, errc::syntax_error) << toml;
    EXPECT_THAT(e.message, AllOf(HasSubstr("nested tables are not supported"),
                                 HasSubstr("write every key at the top level")))
        << toml;
  }
}

TEST_F(ConfigTest, TomlValuesOfOtherTypesAreRejectedNamingTheKey) {
  const std::string path = WriteToml("http_port = 8501.0\np2p_seeds = [\"a:1\"]\n");
  EXPECT_EQ(MustFail().message,
            "HTTP_PORT (file:" + path +
                " line 1): a floating-point number is not accepted; must be an integer "
                "1..65535\n"
                "P2P_SEEDS (file:" +
                path +
                " line 2): an array is not accepted; must be empty or a comma list of host:port "
                "(port 1..65535, IPv6 as [addr]:port)");
}

TEST_F(ConfigTest, NegativeTomlIntegerIsOutOfRange) {
  WriteToml("http_port = -80\n");
  EXPECT_THAT(MustFail().message, HasSubstr("HTTP_PORT=-80 (file:"));
}

TEST_F(ConfigTest, TomlKeyGivenInBothCasesIsAnError) {
  WriteToml("http_port = 1\nHTTP_PORT = 2\n");
  EXPECT_THAT(MustFail().message, HasSubstr("HTTP_PORT is set twice"));
}

TEST_F(ConfigTest, UnparsableTomlNamesPathLineAndColumn) {
  const std::string path = WriteToml("http_port = 8501\nlog_level = \"info\n");
  const Error e = MustFail();
  EXPECT_EQ(e.code, errc::syntax_error);
  EXPECT_THAT(e.message,
              AllOf(HasSubstr("cannot parse config file " + path), HasSubstr("(line 2, column ")));
}

TEST_F(ConfigTest, MissingConfigFileIsAnError) {
  options_.config_file = dir_ + "/nope.toml";
  const Error e = MustFail();
  EXPECT_EQ(e.code, errc::unreadable_file);
  EXPECT_EQ(e.message, "cannot read config file " + dir_ + "/nope.toml: No such file or directory");
}

TEST_F(ConfigTest, ConfigFileThatIsADirectoryIsAnError) {
  options_.config_file = dir_;
  EXPECT_THAT(MustFail().message, HasSubstr("it is a directory"));
}

TEST_F(ConfigTest, OversizedConfigFileIsAnError) {
  WriteToml("# " + std::string(2 << 20, 'x') + "\n");
  EXPECT_THAT(MustFail().message, HasSubstr("larger than 1 MiB"));
}

TEST_F(ConfigTest, EmptyConfigFileIsFine) {
  WriteToml("");
  EXPECT_EQ(MustLoad().config.http_port, 8501);
}

// ---------------------------------------------------------------------------
// The .env file.

TEST_F(ConfigTest, MalformedDotEnvLinesNameTheirLineNumber) {
  struct Case {
    const char* line;
    const char* why;
  };
  for (const Case& c :
       {Case{"JUST_A_WORD", "expected = after JUST_A_WORD"}, Case{"1KEY=x", "expected KEY=value"},
        Case{"=x", "expected KEY=value"}, Case{"MY-KEY=x", "expected = after MY"},
        Case{"ADMIN_TOKEN=\"unterminated", "unterminated double quote"},
        Case{"ADMIN_TOKEN='unterminated", "unterminated single quote"},
        Case{"DATA_DIR=\"C:\\data\"", "unknown escape \\d"},
        Case{"DATA_DIR=\"/a\" junk", "unexpected text after the closing quote"}}) {
    WriteDotEnv(std::string("# header\n\nexport HTTP_PORT=8600\n") + c.line + "\nLOG_LEVEL=info\n");
    const Error e = MustFail();
    EXPECT_EQ(e.code, errc::syntax_error) << c.line;
    EXPECT_THAT(e.message, HasSubstr(dir_ + "/.env line 4: ")) << c.line;
    EXPECT_THAT(e.message, HasSubstr(c.why)) << c.line;
  }
}

TEST_F(ConfigTest, MalformedDotEnvLineIsNotEchoed) {
  WriteDotEnv("ADMIN_TOKEN=\"s3cr3t-value-0123456789\n");
  EXPECT_THAT(MustFail().message, Not(HasSubstr("s3cr3t")));
}

TEST_F(ConfigTest, DotEnvThatIsADirectoryIsAnError) {
  std::filesystem::create_directory(dir_ + "/.env");
  const Error e = MustFail();
  EXPECT_EQ(e.code, errc::unreadable_file);
  EXPECT_THAT(e.message, HasSubstr("cannot read " + dir_ + "/.env: it is a directory"));
}

// ---------------------------------------------------------------------------
// Describe.

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

TEST_F(ConfigTest, DescribeAlignsOneLinePerKeyWithItsOrigin) {
  options_.env = {{"HTTP_PORT", "8600"}};
  const std::vector<std::string> lines = Lines(Describe(MustLoad()));
  ASSERT_EQ(lines.size(), KeyNames().size());
  const size_t equals = lines[0].find(" = ");
  const size_t hash = lines[0].find("  # ");
  for (size_t i = 0; i < lines.size(); ++i) {
    EXPECT_EQ(lines[i].rfind(KeyNames()[i] + " ", 0), 0u) << lines[i];
    EXPECT_EQ(lines[i].find(" = "), equals) << lines[i];
    EXPECT_EQ(lines[i].find("  # "), hash) << lines[i];
  }
  EXPECT_THAT(lines[1],
              AllOf(HasSubstr("HTTP_PORT "), HasSubstr("= 8600 "), HasSubstr("# environment")));
  EXPECT_THAT(lines[3], AllOf(HasSubstr("\"./data/videos\""), HasSubstr("# derived")));
}

TEST_F(ConfigTest, DescribeHidesSecrets) {
  options_.env = {{"ADMIN_TOKEN", "s3cr3t-t0ken-0123456789"}};
  const std::string text = Describe(MustLoad());
  EXPECT_THAT(text, Not(HasSubstr("s3cr3t")));
  EXPECT_THAT(text, HasSubstr("= (set)"));
  EXPECT_THAT(text, HasSubstr("= (not set)"));
  options_.env = {{"P2P_CLUSTER_KEY", kKey32}};
  EXPECT_THAT(Describe(MustLoad()), Not(HasSubstr(std::string(kKey32).substr(0, 10))));
}

// Describe's output (secrets aside) is itself a valid config file that loads
// back to the same values: this also proves every default passes validation.
TEST_F(ConfigTest, DescribeReadsBackAsAConfigFile) {
  options_.env = {{"DATA_DIR", "/srv/with \"quotes\" and \\ backslash"},
                  {"P2P_SEEDS", "[::1]:1,a:2"},
                  {"P2P_ENABLED", "yes"}};
  const Loaded first = MustLoad();
  std::string toml;
  std::string expected;
  for (const std::string& line : Lines(Describe(first))) {
    const std::string kv = line.substr(0, line.find("  # "));
    expected += kv + "\n";
    if (line.find("(set)") == std::string::npos && line.find("(not set)") == std::string::npos) {
      toml += line + "\n";
    }
  }
  options_.env.clear();
  WriteToml(toml);
  const Loaded second = MustLoad();
  std::string actual;
  for (const std::string& line : Lines(Describe(second))) {
    actual += line.substr(0, line.find("  # ")) + "\n";
  }
  EXPECT_EQ(actual, expected);
  EXPECT_EQ(second.config.data_dir, "/srv/with \"quotes\" and \\ backslash");
  EXPECT_EQ(second.origins.at("UPLOAD_DIR").source, "file:" + *options_.config_file);
}

// ---------------------------------------------------------------------------
// detail: the syntax helpers on their own.

TEST(DecodeBase64, Rfc4648TestVectors) {
  const std::pair<const char*, const char*> vectors[] = {{"", ""},
                                                         {"Zg==", "f"},
                                                         {"Zm8=", "fo"},
                                                         {"Zm9v", "foo"},
                                                         {"Zm9vYg==", "foob"},
                                                         {"Zm9vYmE=", "fooba"},
                                                         {"Zm9vYmFy", "foobar"}};
  for (const auto& [encoded, decoded] : vectors) {
    const std::optional<std::string> out = detail::DecodeBase64(encoded);
    ASSERT_TRUE(out.has_value()) << encoded;
    EXPECT_EQ(*out, decoded) << encoded;
  }
  EXPECT_EQ(*detail::DecodeBase64("+/+/"), "\xfb\xff\xbf");
}

TEST(DecodeBase64, RejectsAnythingNotCanonical) {
  for (const char* bad : {"Zg", "Zg=", "Zg===", "Z===", "====", "Zm9v\n", "Zm 9",
                          "Zh==", "Zm9=", "Zg==Zg==", "Zm=v", "-_-_", "Zm9v Zm9v"}) {
    EXPECT_FALSE(detail::DecodeBase64(bad).has_value()) << bad;
  }
}

TEST(ParseUint, StrictDecimal) {
  EXPECT_EQ(detail::ParseUint("0"), 0u);
  EXPECT_EQ(detail::ParseUint("18446744073709551615"), UINT64_MAX);
  for (const char* bad : {"", "18446744073709551616", "-0", "+1", " 1", "1 ", "1x", "0x1", "1e3"}) {
    EXPECT_FALSE(detail::ParseUint(bad).has_value()) << bad;
  }
}

TEST(ParseDotEnv, EntriesAndErrorsCarryLineNumbers) {
  const detail::DotEnv env = detail::ParseDotEnv(
      "A=1\n"
      "# comment\n"
      "B\n"
      "  export C = \"x y\" # c\n"
      "D=#not-a-comment\n"
      "E= # only a comment\n"
      "F='it''s'\n"
      "G=last");
  ASSERT_EQ(env.errors.size(), 2u);
  EXPECT_EQ(env.errors[0].line, 3u);
  EXPECT_EQ(env.errors[1].line, 7u);
  ASSERT_EQ(env.entries.size(), 5u);
  const std::vector<std::tuple<size_t, std::string, std::string>> want = {
      {1, "A", "1"}, {4, "C", "x y"}, {5, "D", "#not-a-comment"}, {6, "E", ""}, {8, "G", "last"}};
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(env.entries[i].line, std::get<0>(want[i]));
    EXPECT_EQ(env.entries[i].key, std::get<1>(want[i]));
    EXPECT_EQ(env.entries[i].value, std::get<2>(want[i]));
  }
}

TEST(ConfigErrc, IsAnErrorCodeOfTheConfigCategory) {
  const std::error_code ec = errc::unknown_key;
  EXPECT_STREQ(ec.category().name(), "config");
  EXPECT_EQ(ec.message(), "unknown configuration key");
}

}  // namespace
}  // namespace hub::config
