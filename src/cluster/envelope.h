#pragma once
// The cluster's packet envelope and keyring: every gossip datagram and every
// stream message is sealed with an AEAD (libsodium
// crypto_aead_xchacha20poly1305_ietf) under the keyring's primary key and
// opened with any key of the ring, so keys rotate without downtime:
// install the new key everywhere, make it primary, remove the old one.
//
// Layout (see src/cluster/README.md): magic "SH", protocol version (1 byte),
// label length (1 byte) + label, unix-ms timestamp (8 bytes, big-endian,
// two's complement), nonce (24 random bytes), ciphertext + 16-byte tag.
// Magic, version, label length, label and timestamp are the associated data:
// a packet from another cluster (label), another protocol version, an
// unknown key, altered, or further than the replay window from now is
// refused with a reason the caller counts and logs. Pure functions;
// thread-safe.
//
// Open checks in this order, so the reason is the most useful one: size
// (kTooLarge), header present (kTruncated), magic (kNotOurs), version
// (kVersion, before anything else is parsed: another version may lay out the
// rest differently), label (kLabel), authentication with each key of the ring
// (kKey), then the timestamp (kStale: only authentic packets are called
// stale, so the count means replays or skewed clocks, not garbage). The
// window bounds replays; it does not remove them: a packet replayed within
// the window opens again, so what rides inside must be idempotent (SWIM
// messages are, by incarnation and sequence number).

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "core/result.h"

namespace hub::cluster {

// Errors of the keyring (ParseKey, Load, Save, Use, Remove). Messages never
// contain key material.
enum class keyring_errc {
  bad_key = 1,    // not base64 of 32 bytes
  bad_file,       // a keyring file that cannot be read, parsed, or written
  not_installed,  // Use/Remove of a key that is not in the ring
  is_primary,     // Remove of the primary key
  empty,          // a ring or file with no key
};
const std::error_category& keyring_category();
inline std::error_code make_error_code(keyring_errc e) {
  return {static_cast<int>(e), keyring_category()};
}

using Key = std::array<uint8_t, 32>;

// A set of keys; the primary seals, all open. Value type, not thread-safe.
class Keyring {
 public:
  // Parses a base64 32-byte key ("P2P_CLUSTER_KEY"; standard alphabet, with
  // or without '=' padding; surrounding whitespace ignored); a clear error
  // otherwise (keyring_errc::bad_key).
  static Result<Key> ParseKey(std::string_view base64);
  static std::string FormatKey(const Key& key);
  static Key GenerateKey();                         // random, for `stream-hub keygen`

  // One key per line, base64, the first is primary; '#' starts a comment
  // (anywhere on a line; base64 has no '#'); blank lines ignored; a repeated
  // key is kept once. At most 64 KiB. Errors name the file and line. The
  // file is written atomically (temp in the same directory + fsync + rename +
  // fsync of the directory) with mode 0600; an empty ring is not saved.
  static Result<Keyring> Load(const std::string& path);
  Result<void> Save(const std::string& path) const;

  Keyring() = default;
  explicit Keyring(Key primary);
  bool empty() const { return keys_.empty(); }
  const Key& primary() const { return keys_.front(); }   // precondition: !empty()
  const std::vector<Key>& keys() const { return keys_; }
  void Install(const Key& k);                        // added as secondary (no-op if present)
  Result<void> Use(const Key& k);                    // make primary; must be installed
  Result<void> Remove(const Key& k);                 // refuses the primary and unknown keys
  bool Contains(const Key& k) const;

 private:
  std::vector<Key> keys_;
};

enum class OpenFailure : uint8_t {
  kTruncated,   // shorter than a header
  kNotOurs,     // bad magic: not a stream-hub packet
  kVersion,     // incompatible protocol version
  kLabel,       // another cluster's label
  kKey,         // no key of the ring opens it (wrong key, or altered)
  kStale,       // timestamp outside the replay window
  kTooLarge,
};
std::string_view ToString(OpenFailure f);

struct EnvelopeOptions {
  uint8_t version = 1;             // protocol version written and accepted
  std::string label;               // P2P_LABEL, at most 255 bytes; "" = none
  int64_t replay_window_ms = 120'000;  // packets further than this from now are refused
  size_t max_size = 8 << 20;       // Open refuses a sealed packet larger than this (kTooLarge)
};

// A clear error for a label longer than 255 bytes or a negative window;
// config calls it at start-up.
Result<void> CheckOptions(const EnvelopeOptions& opt);

// Preconditions: !ring.empty(), CheckOptions(opt) ok (a longer label is cut
// to 255 bytes, as Open does). The result is kEnvelopeOverhead(label) + size
// bytes; keep it within opt.max_size or peers refuse it.
std::vector<uint8_t> Seal(const Keyring& ring, const EnvelopeOptions& opt, int64_t now_ms,
                          const uint8_t* plain, size_t size);

struct Opened {
  std::vector<uint8_t> plain;
  uint8_t version = 0;
};
struct OpenResult {
  std::optional<Opened> opened;
  OpenFailure failure = OpenFailure::kTruncated;   // when !opened
  uint8_t peer_version = 0;                        // set for kVersion
};
OpenResult Open(const Keyring& ring, const EnvelopeOptions& opt, int64_t now_ms,
                const uint8_t* data, size_t size);

// The checks of Open that need no key, on the first bytes of a packet or a
// stream frame: magic, version, label. nullopt when they pass or when `size`
// is too short to tell; lets a stream reader refuse a frame from another
// program, version or cluster before buffering its body.
std::optional<OpenFailure> PeekHeader(const EnvelopeOptions& opt, const uint8_t* data, size_t size);

constexpr size_t kEnvelopeOverhead(size_t label_size) {
  return 2 + 1 + 1 + label_size + 8 + 24 + 16;
}

}  // namespace hub::cluster

template <>
struct std::is_error_code_enum<hub::cluster::keyring_errc> : std::true_type {};
