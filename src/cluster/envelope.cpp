#include "cluster/envelope.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace hub::cluster {
namespace {

constexpr uint8_t kMagic0 = 'S', kMagic1 = 'H';
constexpr size_t kNonceSize = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
constexpr size_t kTagSize = crypto_aead_xchacha20poly1305_ietf_ABYTES;
constexpr size_t kMaxKeyringFile = 64 << 10;
constexpr size_t kMaxLabel = 255;

static_assert(kNonceSize == 24 && kTagSize == 16, "the layout in envelope.h");
static_assert(sizeof(Key) == crypto_aead_xchacha20poly1305_ietf_KEYBYTES);

void EnsureSodium() {
  // sodium_init is thread-safe and idempotent; the static makes it run once.
  // Without it randombytes may not be seeded: a broken invariant, not an error.
  static const bool ok = sodium_init() >= 0;
  if (!ok) std::abort();
}

class Category : public std::error_category {
 public:
  const char* name() const noexcept override { return "keyring"; }
  std::string message(int c) const override {
    switch (static_cast<keyring_errc>(c)) {
      case keyring_errc::bad_key: return "bad cluster key";
      case keyring_errc::bad_file: return "bad keyring file";
      case keyring_errc::not_installed: return "the key is not in the keyring";
      case keyring_errc::is_primary: return "the key is the primary key";
      case keyring_errc::empty: return "the keyring holds no key";
    }
    return "unknown";
  }
};

constexpr char kKeygenHint[] = "create one with `stream-hub keygen`";

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f'; }

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsSpace(s.back())) s.remove_suffix(1);
  return s;
}

// `what` names the key in the message ("P2P_CLUSTER_KEY", "the key on line 3
// of /etc/..."). The input is a secret: it is never echoed.
Result<Key> ParseKeyAs(std::string_view what, std::string_view text) {
  const std::string_view b64 = Trim(text);
  const auto fail = [&](const std::string& why) {
    return MakeError(keyring_errc::bad_key,
                     std::string(what) + " must be base64 of 32 bytes; " + why + "; " + kKeygenHint);
  };
  if (b64.empty()) return fail("it is empty");
  // Decoded data is never longer than its base64; the buffer lets us report
  // the decoded length of a well-formed key of the wrong size.
  std::vector<unsigned char> bin(b64.size());
  size_t len = 0;
  const char* end = nullptr;
  const auto decode = [&](int variant) {
    return sodium_base642bin(bin.data(), bin.size(), b64.data(), b64.size(), nullptr, &len, &end,
                             variant) == 0 &&
           end == b64.data() + b64.size();
  };
  bool ok = decode(sodium_base64_VARIANT_ORIGINAL);
  const char* first_end = end;
  if (!ok && b64.find('=') == std::string_view::npos) {
    ok = decode(sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
  }
  if (!ok) {
    // Where sodium stopped: at a character outside the alphabet, or where the
    // length or padding stops adding up.
    const size_t pos =
        (first_end != nullptr && first_end >= b64.data() && first_end <= b64.data() + b64.size())
            ? static_cast<size_t>(first_end - b64.data())
            : b64.size();
    if (pos < b64.size() && b64[pos] != '=') {
      return fail("it is not base64 (character " + std::to_string(pos + 1) + " of " +
                  std::to_string(b64.size()) + " is not in the base64 alphabet)");
    }
    return fail("it is not base64 (" + std::to_string(b64.size()) +
                " characters whose length or '=' padding is wrong)");
  }
  if (len != sizeof(Key)) return fail("got " + std::to_string(len) + " bytes");
  Key k;
  std::memcpy(k.data(), bin.data(), k.size());
  sodium_memzero(bin.data(), bin.size());
  return k;
}

template <class Keys>
auto FindKey(Keys& keys, const Key& k) {
  return std::find_if(keys.begin(), keys.end(), [&](const Key& x) {
    return sodium_memcmp(x.data(), k.data(), k.size()) == 0;
  });
}

Error FileError(keyring_errc code, const std::string& path, const std::string& what, int err) {
  return MakeError(code, "keyring file " + path + ": " + what + ": " + std::strerror(err));
}

std::string_view LabelOf(const EnvelopeOptions& opt) {
  return std::string_view(opt.label).substr(0, kMaxLabel);
}

void PutBigEndian64(uint8_t* p, uint64_t v) {
  for (int i = 7; i >= 0; --i) {
    p[i] = static_cast<uint8_t>(v);
    v >>= 8;
  }
}

uint64_t GetBigEndian64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | p[i];
  return v;
}

OpenResult Fail(OpenFailure f, uint8_t peer_version = 0) {
  OpenResult r;
  r.failure = f;
  r.peer_version = peer_version;
  return r;
}

}  // namespace

const std::error_category& keyring_category() {
  static Category c;
  return c;
}

// --- Keyring -------------------------------------------------------------

Result<Key> Keyring::ParseKey(std::string_view base64) {
  EnsureSodium();
  return ParseKeyAs("P2P_CLUSTER_KEY", base64);
}

std::string Keyring::FormatKey(const Key& key) {
  EnsureSodium();
  std::string out(sodium_base64_ENCODED_LEN(key.size(), sodium_base64_VARIANT_ORIGINAL), '\0');
  sodium_bin2base64(out.data(), out.size(), key.data(), key.size(), sodium_base64_VARIANT_ORIGINAL);
  out.resize(std::strlen(out.c_str()));
  return out;
}

Key Keyring::GenerateKey() {
  EnsureSodium();
  Key k;
  randombytes_buf(k.data(), k.size());
  return k;
}

Keyring::Keyring(Key primary) { keys_.push_back(primary); }

bool Keyring::Contains(const Key& k) const { return FindKey(keys_, k) != keys_.end(); }

void Keyring::Install(const Key& k) {
  if (!Contains(k)) keys_.push_back(k);
}

Result<void> Keyring::Use(const Key& k) {
  auto it = FindKey(keys_, k);
  if (it == keys_.end()) {
    return MakeError(keyring_errc::not_installed,
                     "cannot make a key primary that is not installed; install it first");
  }
  // The others keep their order: the old primary becomes the first secondary.
  std::rotate(keys_.begin(), it, it + 1);
  return Ok();
}

Result<void> Keyring::Remove(const Key& k) {
  auto it = FindKey(keys_, k);
  if (it == keys_.end()) {
    return MakeError(keyring_errc::not_installed, "cannot remove a key that is not installed");
  }
  if (it == keys_.begin()) {
    return MakeError(keyring_errc::is_primary,
                     "cannot remove the primary key; make another key primary first");
  }
  keys_.erase(it);
  return Ok();
}

Result<Keyring> Keyring::Load(const std::string& path) {
  EnsureSodium();
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return FileError(keyring_errc::bad_file, path, "cannot open", errno);
  std::string text;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      return FileError(keyring_errc::bad_file, path, "cannot read", err);
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
    if (text.size() > kMaxKeyringFile) {
      ::close(fd);
      sodium_memzero(text.data(), text.size());
      return MakeError(keyring_errc::bad_file, "keyring file " + path + " is larger than " +
                                                   std::to_string(kMaxKeyringFile) +
                                                   " bytes; it should hold a few lines of keys");
    }
  }
  ::close(fd);
  sodium_memzero(buf, sizeof buf);

  Keyring ring;
  size_t line_no = 0;
  std::string_view rest = text;
  Result<void> status = Ok();
  while (!rest.empty() && status.ok()) {
    ++line_no;
    const size_t nl = rest.find('\n');
    std::string_view line = rest.substr(0, nl);
    rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
    if (const size_t hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
    if (Trim(line).empty()) continue;
    auto key = ParseKeyAs("line " + std::to_string(line_no) + " of keyring file " + path, line);
    if (!key.ok()) {
      status = key.error();
    } else {
      ring.Install(*key);
      sodium_memzero(key->data(), key->size());
    }
  }
  sodium_memzero(text.data(), text.size());
  if (!status.ok()) return status.error();
  if (ring.empty()) {
    return MakeError(keyring_errc::empty, "keyring file " + path +
                                              " holds no key; put one base64 key per line, "
                                              "the primary first; " + kKeygenHint);
  }
  return ring;
}

Result<void> Keyring::Save(const std::string& path) const {
  if (keys_.empty()) {
    return MakeError(keyring_errc::empty, "refusing to save an empty keyring to " + path);
  }
  std::string text =
      "# stream-hub cluster keyring: one base64 key per line, the first is primary.\n";
  for (const Key& k : keys_) text += FormatKey(k) + "\n";

  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  uint8_t rnd[8];
  randombytes_buf(rnd, sizeof rnd);
  std::string temp = path + ".tmp-";
  for (uint8_t b : rnd) {
    temp += "0123456789abcdef"[b >> 4];
    temp += "0123456789abcdef"[b & 15];
  }

  const auto wipe = [&] { sodium_memzero(text.data(), text.size()); };
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    wipe();
    return FileError(keyring_errc::bad_file, path, "cannot create " + temp, errno);
  }
  const auto abandon = [&](const std::string& what) {
    const int err = errno;
    ::close(fd);
    ::unlink(temp.c_str());
    wipe();
    return FileError(keyring_errc::bad_file, path, what, err);
  };
  // The umask can only remove bits; fchmod makes the mode exactly 0600 (an
  // existing file's looser mode is not inherited: the rename replaces it).
  if (::fchmod(fd, 0600) != 0) return abandon("cannot set mode 0600 on " + temp);
  for (size_t off = 0; off < text.size();) {
    const ssize_t n = ::write(fd, text.data() + off, text.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return abandon("cannot write " + temp);
    }
    off += static_cast<size_t>(n);
  }
  wipe();
  if (::fsync(fd) != 0) return abandon("cannot sync " + temp);
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(temp.c_str());
    return FileError(keyring_errc::bad_file, path, "cannot close " + temp, err);
  }
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(temp.c_str());
    return FileError(keyring_errc::bad_file, path, "cannot rename " + temp + " over it", err);
  }
  // The rename is durable once the directory is synced.
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return FileError(keyring_errc::bad_file, path, "cannot open its directory", errno);
  const int rc = ::fsync(dfd);
  const int err = errno;
  ::close(dfd);
  if (rc != 0) return FileError(keyring_errc::bad_file, path, "cannot sync its directory", err);
  return Ok();
}

// --- Envelope ------------------------------------------------------------

std::string_view ToString(OpenFailure f) {
  switch (f) {
    case OpenFailure::kTruncated: return "truncated";
    case OpenFailure::kNotOurs: return "not_ours";
    case OpenFailure::kVersion: return "version";
    case OpenFailure::kLabel: return "label";
    case OpenFailure::kKey: return "key";
    case OpenFailure::kStale: return "stale";
    case OpenFailure::kTooLarge: return "too_large";
  }
  return "unknown";
}

Result<void> CheckOptions(const EnvelopeOptions& opt) {
  if (opt.label.size() > kMaxLabel) {
    return MakeError(std::make_error_code(std::errc::invalid_argument),
                     "P2P_LABEL is " + std::to_string(opt.label.size()) +
                         " bytes; it must be at most 255");
  }
  if (opt.replay_window_ms < 0) {
    return MakeError(std::make_error_code(std::errc::invalid_argument),
                     "the replay window must not be negative");
  }
  return Ok();
}

std::vector<uint8_t> Seal(const Keyring& ring, const EnvelopeOptions& opt, int64_t now_ms,
                          const uint8_t* plain, size_t size) {
  EnsureSodium();
  if (ring.empty()) std::abort();  // precondition; sending in the clear is never an option
  const std::string_view label = LabelOf(opt);
  const size_t ad_size = 4 + label.size() + 8;
  std::vector<uint8_t> out(kEnvelopeOverhead(label.size()) + size);
  uint8_t* p = out.data();
  p[0] = kMagic0;
  p[1] = kMagic1;
  p[2] = opt.version;
  p[3] = static_cast<uint8_t>(label.size());
  std::memcpy(p + 4, label.data(), label.size());
  PutBigEndian64(p + 4 + label.size(), static_cast<uint64_t>(now_ms));
  uint8_t* nonce = p + ad_size;
  randombytes_buf(nonce, kNonceSize);
  unsigned long long clen = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(nonce + kNonceSize, &clen, plain, size, p, ad_size,
                                             nullptr, nonce, ring.primary().data());
  return out;
}

std::optional<OpenFailure> PeekHeader(const EnvelopeOptions& opt, const uint8_t* data, size_t size) {
  if (size >= 2 && (data[0] != kMagic0 || data[1] != kMagic1)) return OpenFailure::kNotOurs;
  if (size >= 3 && data[2] != opt.version) return OpenFailure::kVersion;
  if (size < 4) return std::nullopt;
  const size_t label_size = data[3];
  const std::string_view want = LabelOf(opt);
  if (label_size != want.size()) return OpenFailure::kLabel;
  const size_t have = std::min(size - 4, label_size);
  if (std::string_view(reinterpret_cast<const char*>(data + 4), have) != want.substr(0, have))
    return OpenFailure::kLabel;
  return std::nullopt;
}

OpenResult Open(const Keyring& ring, const EnvelopeOptions& opt, int64_t now_ms,
                const uint8_t* data, size_t size) {
  EnsureSodium();
  if (size > opt.max_size) return Fail(OpenFailure::kTooLarge);
  if (size < 2) return Fail(OpenFailure::kTruncated);
  if (data[0] != kMagic0 || data[1] != kMagic1) return Fail(OpenFailure::kNotOurs);
  if (size < 3) return Fail(OpenFailure::kTruncated);
  if (data[2] != opt.version) return Fail(OpenFailure::kVersion, data[2]);
  if (size < 4) return Fail(OpenFailure::kTruncated);
  const size_t label_size = data[3];
  if (size < kEnvelopeOverhead(label_size)) return Fail(OpenFailure::kTruncated);
  const std::string_view label(reinterpret_cast<const char*>(data + 4), label_size);
  if (label != LabelOf(opt)) return Fail(OpenFailure::kLabel);

  const size_t ad_size = 4 + label_size + 8;
  const uint8_t* nonce = data + ad_size;
  const uint8_t* cipher = nonce + kNonceSize;
  const size_t cipher_size = size - ad_size - kNonceSize;
  Opened opened;
  opened.version = data[2];
  opened.plain.resize(cipher_size - kTagSize);
  bool ok = false;
  for (const Key& k : ring.keys()) {
    unsigned long long mlen = 0;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(opened.plain.data(), &mlen, nullptr, cipher,
                                                   cipher_size, data, ad_size, nonce,
                                                   k.data()) == 0) {
      ok = true;
      break;
    }
  }
  if (!ok) return Fail(OpenFailure::kKey);

  // Authentic from here on. An overflowing difference is far outside any window.
  const auto ts = static_cast<int64_t>(GetBigEndian64(data + 4 + label_size));
  int64_t skew = 0;
  if (__builtin_sub_overflow(ts, now_ms, &skew) || opt.replay_window_ms < 0 ||
      skew > opt.replay_window_ms || skew < -opt.replay_window_ms) {
    return Fail(OpenFailure::kStale);
  }
  OpenResult r;
  r.opened = std::move(opened);
  return r;
}

}  // namespace hub::cluster
