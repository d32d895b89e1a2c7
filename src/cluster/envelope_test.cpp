#include "cluster/envelope.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>
#include <stdexcept>

#include <gtest/gtest.h>

namespace hub::cluster {
namespace {

constexpr int64_t kNow = 1'700'000'000'000;

std::vector<uint8_t> Bytes(std::string_view s) { return {s.begin(), s.end()}; }

std::vector<uint8_t> SealStr(const Keyring& ring, const EnvelopeOptions& opt, std::string_view s,
                             int64_t now = kNow) {
  return Seal(ring, opt, now, reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

OpenResult OpenVec(const Keyring& ring, const EnvelopeOptions& opt, const std::vector<uint8_t>& v,
                   int64_t now = kNow) {
  return Open(ring, opt, now, v.data(), v.size());
}

// Failure reason, or "opened" — so a test that expects a refusal prints what it got.
std::string Outcome(const OpenResult& r) {
  return r.opened ? "opened" : std::string(ToString(r.failure));
}

EnvelopeOptions WithLabel(std::string label) {
  EnvelopeOptions o;
  o.label = std::move(label);
  return o;
}

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/envelope_test.XXXXXX";
    if (mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    for (const auto& f : Files()) ::unlink((path_ + "/" + f).c_str());
    ::rmdir(path_.c_str());
  }
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }
  std::set<std::string> Files() const {
    std::set<std::string> out;
    DIR* d = ::opendir(path_.c_str());
    if (d == nullptr) return out;
    while (dirent* e = ::readdir(d)) {
      const std::string n = e->d_name;
      if (n != "." && n != "..") out.insert(n);
    }
    ::closedir(d);
    return out;
  }
  void Write(const std::string& name, const std::string& text) const {
    std::ofstream(File(name), std::ios::binary) << text;
  }

 private:
  std::string path_;
};

// --- Seal / Open ---------------------------------------------------------

TEST(Envelope, RoundTripsPayloadsOfManySizes) {
  const Keyring ring(Keyring::GenerateKey());
  for (const std::string& label : {std::string(), std::string("blue"), std::string(255, 'x')}) {
    const EnvelopeOptions opt = WithLabel(label);
    for (size_t n : {0u, 1u, 15u, 16u, 17u, 1400u, 70'000u}) {
      std::vector<uint8_t> plain(n);
      for (size_t i = 0; i < n; ++i) plain[i] = static_cast<uint8_t>(i * 7 + n);
      const auto sealed = Seal(ring, opt, kNow, plain.data(), plain.size());
      EXPECT_EQ(sealed.size(), kEnvelopeOverhead(label.size()) + n);
      const auto r = OpenVec(ring, opt, sealed);
      ASSERT_TRUE(r.opened) << "label " << label.size() << " size " << n << ": " << Outcome(r);
      EXPECT_EQ(r.opened->plain, plain);
      EXPECT_EQ(r.opened->version, 1);
    }
  }
}

TEST(Envelope, HeaderIsLaidOutAsDocumented) {
  const Keyring ring(Keyring::GenerateKey());
  EnvelopeOptions opt = WithLabel("blue");
  opt.version = 3;
  const int64_t ts = 0x0102030405060708;
  const auto s = SealStr(ring, opt, "hello", ts);
  ASSERT_EQ(s.size(), kEnvelopeOverhead(4) + 5);
  EXPECT_EQ(s[0], 'S');
  EXPECT_EQ(s[1], 'H');
  EXPECT_EQ(s[2], 3);
  EXPECT_EQ(s[3], 4);
  EXPECT_EQ(std::string(s.begin() + 4, s.begin() + 8), "blue");
  for (int i = 0; i < 8; ++i) EXPECT_EQ(s[8 + i], i + 1) << "timestamp byte " << i;
  // Not in the clear.
  const std::string all(s.begin(), s.end());
  EXPECT_EQ(all.find("hello"), std::string::npos);
}

TEST(Envelope, TwoSealsOfTheSamePlaintextDiffer) {
  const Keyring ring(Keyring::GenerateKey());
  const EnvelopeOptions opt;
  const auto a = SealStr(ring, opt, "same");
  const auto b = SealStr(ring, opt, "same");
  ASSERT_EQ(a.size(), b.size());
  EXPECT_NE(a, b);
  // The nonces differ, not just the ciphertext.
  const size_t nonce_at = 4 + 8;
  EXPECT_NE(std::vector<uint8_t>(a.begin() + nonce_at, a.begin() + nonce_at + 24),
            std::vector<uint8_t>(b.begin() + nonce_at, b.begin() + nonce_at + 24));
  EXPECT_TRUE(OpenVec(ring, opt, a).opened);
  EXPECT_TRUE(OpenVec(ring, opt, b).opened);
}

TEST(Envelope, EveryTruncationIsRefused) {
  const Keyring ring(Keyring::GenerateKey());
  const EnvelopeOptions opt = WithLabel("blue");
  const auto s = SealStr(ring, opt, "a payload of some length");
  const size_t header = kEnvelopeOverhead(4);
  for (size_t len = 0; len < s.size(); ++len) {
    const auto r = Open(ring, opt, kNow, s.data(), len);
    ASSERT_FALSE(r.opened) << "length " << len;
    // Shorter than a header: truncated. Longer: the tag no longer matches.
    EXPECT_EQ(r.failure, len < header ? OpenFailure::kTruncated : OpenFailure::kKey)
        << "length " << len << ": " << Outcome(r);
  }
  EXPECT_TRUE(OpenVec(ring, opt, s).opened);
}

TEST(Envelope, BadMagicIsNotOurs) {
  const Keyring ring(Keyring::GenerateKey());
  const EnvelopeOptions opt;
  auto s = SealStr(ring, opt, "x");
  s[0] = 'G';
  EXPECT_EQ(Outcome(OpenVec(ring, opt, s)), "not_ours");
  const auto http = Bytes("GET / HTTP/1.1\r\nHost: x\r\n\r\n" + std::string(100, 'a'));
  EXPECT_EQ(Outcome(OpenVec(ring, opt, http)), "not_ours");
  EXPECT_EQ(Outcome(OpenVec(ring, opt, Bytes("S"))), "truncated");
  EXPECT_EQ(Outcome(OpenVec(ring, opt, Bytes("X"))), "truncated");
  EXPECT_EQ(Outcome(OpenVec(ring, opt, Bytes("XY"))), "not_ours");
}

TEST(Envelope, OtherVersionIsRefusedAndReported) {
  const Keyring ring(Keyring::GenerateKey());
  EnvelopeOptions v2;
  v2.version = 2;
  const EnvelopeOptions v1;
  const auto s = SealStr(ring, v2, "from the future");
  const auto r = OpenVec(ring, v1, s);
  EXPECT_EQ(Outcome(r), "version");
  EXPECT_EQ(r.peer_version, 2);
  // Reported even when the rest is missing: another version may lay it out differently.
  const auto r3 = Open(ring, v1, kNow, s.data(), 3);
  EXPECT_EQ(Outcome(r3), "version");
  EXPECT_EQ(r3.peer_version, 2);
  const auto ok = OpenVec(ring, v2, s);
  ASSERT_TRUE(ok.opened);
  EXPECT_EQ(ok.opened->version, 2);
}

TEST(Envelope, OtherLabelIsRefused) {
  const Keyring ring(Keyring::GenerateKey());
  const auto blue = SealStr(ring, WithLabel("blue"), "x");
  const auto none = SealStr(ring, WithLabel(""), "x");
  EXPECT_EQ(Outcome(OpenVec(ring, WithLabel("red"), blue)), "label");
  EXPECT_EQ(Outcome(OpenVec(ring, WithLabel("blu"), blue)), "label");
  EXPECT_EQ(Outcome(OpenVec(ring, WithLabel(""), blue)), "label");
  EXPECT_EQ(Outcome(OpenVec(ring, WithLabel("blue"), none)), "label");
  EXPECT_TRUE(OpenVec(ring, WithLabel("blue"), blue).opened);
  EXPECT_TRUE(OpenVec(ring, WithLabel(""), none).opened);
}

TEST(Envelope, WrongKeyIsRefused) {
  const Keyring ours(Keyring::GenerateKey());
  const Keyring theirs(Keyring::GenerateKey());
  const EnvelopeOptions opt;
  const auto s = SealStr(theirs, opt, "secret");
  EXPECT_EQ(Outcome(OpenVec(ours, opt, s)), "key");
  EXPECT_EQ(Outcome(OpenVec(Keyring(), opt, s)), "key");  // an empty ring opens nothing
  EXPECT_TRUE(OpenVec(theirs, opt, s).opened);
}

TEST(Envelope, AFlippedBitAnywhereIsRefused) {
  const Keyring ring(Keyring::GenerateKey());
  const EnvelopeOptions opt = WithLabel("blue");
  const auto s = SealStr(ring, opt, "membership update");
  for (size_t i = 0; i < s.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      auto t = s;
      t[i] ^= static_cast<uint8_t>(1u << bit);
      const auto r = OpenVec(ring, opt, t);
      ASSERT_FALSE(r.opened) << "byte " << i << " bit " << bit;
      const std::string got = Outcome(r);
      if (i < 2) {
        EXPECT_EQ(got, "not_ours") << i;
      } else if (i == 2) {
        EXPECT_EQ(got, "version") << i;
      } else if (i == 3) {
        // Another label length: the label read no longer matches, or runs past the end.
        EXPECT_TRUE(got == "label" || got == "truncated") << got;
      } else if (i < 8) {
        EXPECT_EQ(got, "label") << i;
      } else {
        // Timestamp, nonce, ciphertext, tag: all authenticated.
        EXPECT_EQ(got, "key") << "byte " << i << " bit " << bit;
      }
    }
  }
}

TEST(Envelope, TimestampsOutsideTheWindowAreStale) {
  const Keyring ring(Keyring::GenerateKey());
  EnvelopeOptions opt;
  opt.replay_window_ms = 120'000;
  const auto at = [&](int64_t ts) { return OpenVec(ring, opt, SealStr(ring, opt, "x", ts), kNow); };
  EXPECT_TRUE(at(kNow).opened);
  EXPECT_TRUE(at(kNow - 120'000).opened);  // the window's edges are inside
  EXPECT_TRUE(at(kNow + 120'000).opened);
  EXPECT_EQ(Outcome(at(kNow - 120'001)), "stale");
  EXPECT_EQ(Outcome(at(kNow + 120'001)), "stale");
  EXPECT_EQ(Outcome(at(0)), "stale");
  EXPECT_EQ(Outcome(at(std::numeric_limits<int64_t>::min())), "stale");
  EXPECT_EQ(Outcome(at(std::numeric_limits<int64_t>::max())), "stale");
  // A packet that arrives late is stale for the receiver, not garbage.
  const auto old = SealStr(ring, opt, "x", kNow);
  EXPECT_TRUE(OpenVec(ring, opt, old, kNow + 60'000).opened);
  EXPECT_EQ(Outcome(OpenVec(ring, opt, old, kNow + 120'001)), "stale");
}

TEST(Envelope, StaleIsOnlySaidOfAuthenticPackets) {
  const Keyring ring(Keyring::GenerateKey());
  const EnvelopeOptions opt;
  const auto old = SealStr(Keyring(Keyring::GenerateKey()), opt, "x", 0);
  EXPECT_EQ(Outcome(OpenVec(ring, opt, old)), "key");
}

TEST(Envelope, LargerThanMaxSizeIsRefused) {
  const Keyring ring(Keyring::GenerateKey());
  EnvelopeOptions opt;
  opt.max_size = kEnvelopeOverhead(0) + 10;
  EXPECT_TRUE(OpenVec(ring, opt, SealStr(ring, opt, std::string(10, 'a'))).opened);
  EXPECT_EQ(Outcome(OpenVec(ring, opt, SealStr(ring, opt, std::string(11, 'a')))), "too_large");
  // Refused before anything is parsed.
  EXPECT_EQ(Outcome(OpenVec(ring, opt, std::vector<uint8_t>(1000, 0))), "too_large");
}

TEST(Envelope, CheckOptionsRefusesALongLabel) {
  EXPECT_TRUE(CheckOptions(WithLabel(std::string(255, 'a'))).ok());
  const auto r = CheckOptions(WithLabel(std::string(256, 'a')));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("256"), std::string::npos) << r.error().message;
  EnvelopeOptions neg;
  neg.replay_window_ms = -1;
  EXPECT_FALSE(CheckOptions(neg).ok());
}

TEST(Envelope, FailureNamesAreDistinct) {
  std::set<std::string_view> names;
  for (int f = 0; f <= static_cast<int>(OpenFailure::kTooLarge); ++f) {
    names.insert(ToString(static_cast<OpenFailure>(f)));
  }
  EXPECT_EQ(names.size(), 7u);
  EXPECT_EQ(names.count("unknown"), 0u);
}

// --- Rotation ------------------------------------------------------------

TEST(Keyring, RotationWithoutDowntime) {
  const Key old_key = Keyring::GenerateKey();
  const Key new_key = Keyring::GenerateKey();
  const EnvelopeOptions opt;
  Keyring a(old_key), b(old_key);
  const auto before = SealStr(a, opt, "sealed with the old primary");

  // Step 1: install the new key everywhere; the old one still seals.
  a.Install(new_key);
  b.Install(new_key);
  EXPECT_TRUE(OpenVec(b, opt, SealStr(a, opt, "x")).opened);
  // Step 2: one node switches first; the other still opens its packets, and vice versa.
  ASSERT_TRUE(a.Use(new_key).ok());
  EXPECT_EQ(a.primary(), new_key);
  EXPECT_TRUE(OpenVec(b, opt, SealStr(a, opt, "new from a")).opened);
  EXPECT_TRUE(OpenVec(a, opt, SealStr(b, opt, "old from b")).opened);
  EXPECT_TRUE(OpenVec(a, opt, before).opened);
  ASSERT_TRUE(b.Use(new_key).ok());
  // Step 3: remove the old key; what it sealed no longer opens.
  ASSERT_TRUE(a.Remove(old_key).ok());
  EXPECT_EQ(Outcome(OpenVec(a, opt, before)), "key");
  EXPECT_TRUE(OpenVec(a, opt, SealStr(b, opt, "y")).opened);
  EXPECT_EQ(a.keys().size(), 1u);
}

TEST(Keyring, RemovingThePrimaryIsRefused) {
  const Key k = Keyring::GenerateKey();
  Keyring ring(k);
  const auto r = ring.Remove(k);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), keyring_errc::is_primary);
  EXPECT_NE(r.error().message.find("primary"), std::string::npos);
  EXPECT_EQ(ring.keys().size(), 1u);
  const Key other = Keyring::GenerateKey();
  ring.Install(other);
  ASSERT_TRUE(ring.Use(other).ok());
  EXPECT_TRUE(ring.Remove(k).ok());  // no longer primary
}

TEST(Keyring, UseAndRemoveOfUnknownKeysAreRefused) {
  Keyring ring(Keyring::GenerateKey());
  const Key stranger = Keyring::GenerateKey();
  EXPECT_EQ(ring.Use(stranger).code(), keyring_errc::not_installed);
  EXPECT_EQ(ring.Remove(stranger).code(), keyring_errc::not_installed);
  EXPECT_FALSE(ring.Contains(stranger));
}

TEST(Keyring, InstallIsIdempotentAndUseKeepsTheOthersInOrder) {
  const Key k1 = Keyring::GenerateKey(), k2 = Keyring::GenerateKey(), k3 = Keyring::GenerateKey();
  Keyring ring(k1);
  ring.Install(k2);
  ring.Install(k3);
  ring.Install(k2);
  ring.Install(k1);
  EXPECT_EQ(ring.keys(), (std::vector<Key>{k1, k2, k3}));
  ASSERT_TRUE(ring.Use(k3).ok());
  EXPECT_EQ(ring.keys(), (std::vector<Key>{k3, k1, k2}));
  ASSERT_TRUE(ring.Use(k3).ok());
  EXPECT_EQ(ring.keys(), (std::vector<Key>{k3, k1, k2}));
}

// --- Keys ----------------------------------------------------------------

TEST(Keyring, FormatAndParseRoundTrip) {
  for (int i = 0; i < 20; ++i) {
    const Key k = Keyring::GenerateKey();
    const std::string text = Keyring::FormatKey(k);
    EXPECT_EQ(text.size(), 44u);
    auto p = Keyring::ParseKey(text);
    ASSERT_TRUE(p.ok()) << p.error().message;
    EXPECT_EQ(*p, k);
    auto spaced = Keyring::ParseKey("  " + text + "\n");
    ASSERT_TRUE(spaced.ok()) << spaced.error().message;
    EXPECT_EQ(*spaced, k);
    auto unpadded = Keyring::ParseKey(text.substr(0, 43));
    ASSERT_TRUE(unpadded.ok()) << unpadded.error().message;
    EXPECT_EQ(*unpadded, k);
  }
  EXPECT_NE(Keyring::GenerateKey(), Keyring::GenerateKey());
}

TEST(Keyring, ParseKeySaysWhatIsWrong) {
  // 12 bytes, well-formed base64.
  const std::string short_key = "AAECAwQFBgcICQoL";
  auto r = Keyring::ParseKey(short_key);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), keyring_errc::bad_key);
  EXPECT_EQ(r.error().message,
            "P2P_CLUSTER_KEY must be base64 of 32 bytes; got 12 bytes; create one with "
            "`stream-hub keygen`");

  auto empty = Keyring::ParseKey("  ");
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.error().message.find("empty"), std::string::npos) << empty.error().message;

  const std::string good = Keyring::FormatKey(Keyring::GenerateKey());
  std::string bad_char = good;
  bad_char[5] = '!';
  auto b = Keyring::ParseKey(bad_char);
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.error().message.find("character 6 of 44"), std::string::npos) << b.error().message;
  // A secret is never echoed back into logs.
  EXPECT_EQ(b.error().message.find(bad_char.substr(0, 5)), std::string::npos);

  auto padding = Keyring::ParseKey(good + "=");
  ASSERT_FALSE(padding.ok());
  EXPECT_NE(padding.error().message.find("padding"), std::string::npos) << padding.error().message;

  auto longer = Keyring::ParseKey(Keyring::FormatKey(Keyring::GenerateKey()) + "AAAA");
  EXPECT_FALSE(longer.ok());
  auto url_safe = Keyring::ParseKey("-_" + good.substr(2));
  EXPECT_FALSE(url_safe.ok());
}

// --- Files ---------------------------------------------------------------

TEST(KeyringFile, SaveAndLoadRoundTrip) {
  TempDir dir;
  const Key k1 = Keyring::GenerateKey(), k2 = Keyring::GenerateKey(), k3 = Keyring::GenerateKey();
  Keyring ring(k1);
  ring.Install(k2);
  ring.Install(k3);
  ASSERT_TRUE(ring.Use(k2).ok());
  const std::string path = dir.File("keyring");
  auto saved = ring.Save(path);
  ASSERT_TRUE(saved.ok()) << saved.error().message;
  auto loaded = Keyring::Load(path);
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  EXPECT_EQ(loaded->keys(), ring.keys());
  EXPECT_EQ(loaded->primary(), k2);

  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(dir.Files(), std::set<std::string>{"keyring"});  // no temp file left
}

TEST(KeyringFile, SaveReplacesALooserFileWithMode0600) {
  TempDir dir;
  const std::string path = dir.File("keyring");
  dir.Write("keyring", "old content\n");
  ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
  const Keyring ring(Keyring::GenerateKey());
  ASSERT_TRUE(ring.Save(path).ok());
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  auto loaded = Keyring::Load(path);
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  EXPECT_EQ(loaded->primary(), ring.primary());
}

TEST(KeyringFile, LoadAcceptsCommentsBlankLinesAndCRLF) {
  TempDir dir;
  const Key k1 = Keyring::GenerateKey(), k2 = Keyring::GenerateKey();
  dir.Write("keyring", "# the cluster's keys\n\n  " + Keyring::FormatKey(k1) +
                           "  # primary\r\n\t\n" + Keyring::FormatKey(k2) + "\r\n" +
                           Keyring::FormatKey(k1) + "\n# end");
  auto loaded = Keyring::Load(dir.File("keyring"));
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  EXPECT_EQ(loaded->keys(), (std::vector<Key>{k1, k2}));
}

TEST(KeyringFile, MalformedFilesGiveClearErrors) {
  TempDir dir;
  const std::string good = Keyring::FormatKey(Keyring::GenerateKey());
  struct Case {
    std::string text;
    keyring_errc code;
    std::vector<std::string> says;
  };
  const Case cases[] = {
      {"", keyring_errc::empty, {"holds no key", "stream-hub keygen"}},
      {"# only a comment\n\n", keyring_errc::empty, {"holds no key"}},
      {good + "\nnot*base64\n", keyring_errc::bad_key, {"line 2 of keyring file", "base64"}},
      {"# c\n" + good + "\n\nAAECAwQFBgcICQoL\n", keyring_errc::bad_key,
       {"line 4 of keyring file", "got 12 bytes"}},
      {good.substr(0, 40) + "\n", keyring_errc::bad_key, {"line 1", "got 30 bytes"}},
  };
  int n = 0;
  for (const Case& c : cases) {
    const std::string name = "k" + std::to_string(n++);
    dir.Write(name, c.text);
    auto r = Keyring::Load(dir.File(name));
    ASSERT_FALSE(r.ok()) << name;
    EXPECT_EQ(r.code(), c.code) << name << ": " << r.error().message;
    EXPECT_NE(r.error().message.find(dir.File(name)), std::string::npos) << r.error().message;
    for (const std::string& s : c.says) {
      EXPECT_NE(r.error().message.find(s), std::string::npos)
          << name << ": \"" << r.error().message << "\" lacks \"" << s << "\"";
    }
  }
}

TEST(KeyringFile, MissingAndOversizedFilesAreRefused) {
  TempDir dir;
  auto missing = Keyring::Load(dir.File("nope"));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.code(), keyring_errc::bad_file);
  EXPECT_NE(missing.error().message.find("No such file"), std::string::npos)
      << missing.error().message;

  dir.Write("huge", std::string(70'000, '#'));
  auto huge = Keyring::Load(dir.File("huge"));
  ASSERT_FALSE(huge.ok());
  EXPECT_EQ(huge.code(), keyring_errc::bad_file);
}

TEST(KeyringFile, SaveRefusesAnEmptyRingAndReportsAMissingDirectory) {
  TempDir dir;
  EXPECT_EQ(Keyring().Save(dir.File("k")).code(), keyring_errc::empty);
  const Keyring ring(Keyring::GenerateKey());
  auto r = ring.Save(dir.File("no/such/dir/k"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), keyring_errc::bad_file);
  EXPECT_TRUE(dir.Files().empty());
}

TEST(EnvelopeTest, PeekHeaderRefusesOtherProgramsVersionsAndClustersEarly) {
  Keyring ring(Keyring::GenerateKey());
  EnvelopeOptions opt;
  opt.label = "blue";
  const uint8_t msg[] = {1, 2, 3};
  auto sealed = Seal(ring, opt, 1000, msg, sizeof msg);
  for (size_t n = 0; n <= sealed.size(); ++n) {
    EXPECT_EQ(PeekHeader(opt, sealed.data(), n), std::nullopt) << n;  // ours at every length
  }
  EnvelopeOptions red = opt;
  red.label = "red";
  EXPECT_EQ(PeekHeader(red, sealed.data(), sealed.size()), OpenFailure::kLabel);
  EXPECT_EQ(PeekHeader(red, sealed.data(), 5), OpenFailure::kLabel);  // the length already differs
  EnvelopeOptions v2 = opt;
  v2.version = 2;
  EXPECT_EQ(PeekHeader(v2, sealed.data(), 3), OpenFailure::kVersion);
  const uint8_t http[] = {'G', 'E', 'T', ' '};
  EXPECT_EQ(PeekHeader(opt, http, sizeof http), OpenFailure::kNotOurs);
}

}  // namespace
}  // namespace hub::cluster
