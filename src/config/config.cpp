#include "config/config.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <iterator>
#include <limits>
#include <optional>
#include <span>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "config/detail/dotenv.h"
#include "config/detail/values.h"

namespace hub::config {
namespace {

using detail::AsciiLower;
using detail::IsGraphAscii;

// Both files are read whole; anything bigger is not a config file.
constexpr size_t kMaxFileBytes = 1 << 20;
constexpr size_t kMinTokenChars = 16;
constexpr size_t kClusterKeyBytes = 32;
constexpr size_t kMaxNodeNameChars = 64;
constexpr std::string_view kFallbackNodeName = "stream-hub";

// ---------------------------------------------------------------------------
// The key table. Adding a key = a field in Config + one line here (+ the
// README row). TableIsConsistent() checks each line at compile time.

enum class Kind {
  kBool,          // true/false, 1/0, yes/no, on/off, any case
  kUint,          // decimal, min..max
  kPath,          // non-empty
  kOptionalPath,  // may be empty
  kAddress,       // IPv4 or IPv6 literal
  kChoice,        // one of `choices`, any case, stored lower case
  kChoiceList,    // comma list of `choices`, at least one
  kToken,         // empty or >= kMinTokenChars printable non-space ASCII
  kClusterKey,    // empty or base64 of kClusterKeyBytes bytes
  kSeeds,         // empty or comma list of host:port
  kNodeName,      // 1..kMaxNodeNameChars printable non-space ASCII
  kLabel,         // empty or a node name
};

using Field = std::variant<std::string Config::*, bool Config::*, uint16_t Config::*,
                           uint32_t Config::*, uint64_t Config::*>;
using ComputeFn = std::string (*)(const Config&);

struct Key {
  std::string_view name;
  Kind kind;
  Field field;
  uint64_t min = 0;                                // kUint
  uint64_t max = 0;                                // kUint
  std::span<const std::string_view> choices = {};  // kChoice, kChoiceList
  // Default computed from the effective values of other keys when no source
  // sets this one; origin "derived". Derived keys are filled in table order,
  // so one may read another only if it is listed below it.
  ComputeFn derive = nullptr;
  // Default computed at load time (not from other keys); origin "default".
  ComputeFn compute_default = nullptr;
  bool secret = false;  // never printed: Describe and error messages hide it
};

std::string JoinPath(std::string_view dir, std::string_view leaf) {
  while (dir.size() > 1 && dir.back() == '/') dir.remove_suffix(1);
  std::string out(dir);
  if (out != "/") out += '/';
  out += leaf;
  return out;
}

std::string UploadDirFrom(const Config& c) { return JoinPath(c.data_dir, "videos"); }
std::string StreamsDirFrom(const Config& c) { return JoinPath(c.upload_dir, "streams"); }
std::string NotesDirFrom(const Config& c) { return JoinPath(c.data_dir, "notes"); }
std::string AnalyticsDirFrom(const Config& c) { return JoinPath(c.data_dir, "analytics"); }
std::string HostName(const Config&);

constexpr std::string_view kLogLevels[] = {"trace", "debug", "info", "warn", "error"};
constexpr std::string_view kBackends[] = {"local"};
constexpr std::string_view kDiscoveries[] = {"avahi", "mdns", "static"};
constexpr std::string_view kProfiles[] = {"lan", "wan", "local"};
constexpr std::string_view kRungs[] = {"1080", "720", "480", "360", "240"};

// Display order (that of Config). One line per key.
// clang-format off
constexpr Key kKeys[] = {
    {.name = "HTTP_BIND", .kind = Kind::kAddress, .field = &Config::http_bind},
    {.name = "HTTP_PORT", .kind = Kind::kUint, .field = &Config::http_port, .min = 1, .max = 65535},
    {.name = "DATA_DIR", .kind = Kind::kPath, .field = &Config::data_dir},
    {.name = "UPLOAD_DIR", .kind = Kind::kPath, .field = &Config::upload_dir, .derive = UploadDirFrom},
    {.name = "STREAMS_DIR", .kind = Kind::kPath, .field = &Config::streams_dir, .derive = StreamsDirFrom},
    {.name = "NOTEPAD_STORAGE_PATH", .kind = Kind::kPath, .field = &Config::notepad_storage_path, .derive = NotesDirFrom},
    {.name = "ANALYTICS_DIR", .kind = Kind::kPath, .field = &Config::analytics_dir, .derive = AnalyticsDirFrom},
    {.name = "STORAGE_BACKEND", .kind = Kind::kChoice, .field = &Config::storage_backend, .choices = kBackends},
    {.name = "STATE_DIR", .kind = Kind::kPath, .field = &Config::state_dir},
    {.name = "LOGS_DIR", .kind = Kind::kPath, .field = &Config::logs_dir},
    {.name = "TEMP_DIR", .kind = Kind::kPath, .field = &Config::temp_dir},
    {.name = "LOG_LEVEL", .kind = Kind::kChoice, .field = &Config::log_level, .choices = kLogLevels},
    {.name = "MAX_UPLOAD_SIZE_MB", .kind = Kind::kUint, .field = &Config::max_upload_size_mb, .min = 1, .max = 16777216},
    {.name = "UPLOAD_EXPIRY_HOURS", .kind = Kind::kUint, .field = &Config::upload_expiry_hours, .min = 1, .max = 8760},
    {.name = "DELETE_GRACE_MINUTES", .kind = Kind::kUint, .field = &Config::delete_grace_minutes, .min = 0, .max = 10080},
    {.name = "RESCAN_INTERVAL_S", .kind = Kind::kUint, .field = &Config::rescan_interval_s, .min = 1, .max = 3600},
    {.name = "HTTP_HEADER_TIMEOUT_S", .kind = Kind::kUint, .field = &Config::http_header_timeout_s, .min = 1, .max = 300},
    {.name = "HTTP_IDLE_TIMEOUT_S", .kind = Kind::kUint, .field = &Config::http_idle_timeout_s, .min = 1, .max = 3600},
    {.name = "ADMIN_TOKEN", .kind = Kind::kToken, .field = &Config::admin_token, .secret = true},
    {.name = "P2P_ENABLED", .kind = Kind::kBool, .field = &Config::p2p_enabled},
    {.name = "P2P_PORT", .kind = Kind::kUint, .field = &Config::p2p_port, .min = 1, .max = 65535},
    {.name = "P2P_NODE_NAME", .kind = Kind::kNodeName, .field = &Config::p2p_node_name, .compute_default = HostName},
    {.name = "P2P_HEARTBEAT_INTERVAL", .kind = Kind::kUint, .field = &Config::p2p_heartbeat_interval, .min = 1, .max = 300},
    {.name = "P2P_BIND", .kind = Kind::kAddress, .field = &Config::p2p_bind},
    {.name = "P2P_DISCOVERY", .kind = Kind::kChoiceList, .field = &Config::p2p_discovery, .choices = kDiscoveries},
    {.name = "P2P_SEEDS", .kind = Kind::kSeeds, .field = &Config::p2p_seeds},
    {.name = "P2P_CLUSTER_KEY", .kind = Kind::kClusterKey, .field = &Config::p2p_cluster_key, .secret = true},
    {.name = "P2P_KEYRING_FILE", .kind = Kind::kOptionalPath, .field = &Config::p2p_keyring_file},
    {.name = "P2P_LABEL", .kind = Kind::kLabel, .field = &Config::p2p_label},
    {.name = "P2P_PROFILE", .kind = Kind::kChoice, .field = &Config::p2p_profile, .choices = kProfiles},
    {.name = "P2P_ADVERTISE_ADDR", .kind = Kind::kLabel, .field = &Config::p2p_advertise_addr},
    {.name = "COMMUNITY_NOTEPAD_ENABLED", .kind = Kind::kBool, .field = &Config::community_notepad_enabled},
    {.name = "NOTEPAD_AUTO_SYNC", .kind = Kind::kBool, .field = &Config::notepad_auto_sync},
    {.name = "NOTEPAD_MAX_SIZE_MB", .kind = Kind::kUint, .field = &Config::notepad_max_size_mb, .min = 1, .max = 1024},
    {.name = "NOTEPAD_RESTORE_DAYS", .kind = Kind::kUint, .field = &Config::notepad_restore_days, .min = 1, .max = 3650},
    {.name = "MEDIA_WORKERS", .kind = Kind::kUint, .field = &Config::media_workers, .min = 0, .max = 256},
    {.name = "MEDIA_MAX_HEIGHT", .kind = Kind::kUint, .field = &Config::media_max_height, .min = 144, .max = 8640},
    {.name = "MEDIA_MAX_DURATION_S", .kind = Kind::kUint, .field = &Config::media_max_duration_s, .min = 1, .max = 604800},
    {.name = "MEDIA_LADDER", .kind = Kind::kChoiceList, .field = &Config::media_ladder, .choices = kRungs},
    {.name = "MEDIA_JOB_TIMEOUT_S", .kind = Kind::kUint, .field = &Config::media_job_timeout_s, .min = 10, .max = 604800},
};
// clang-format on

template <class T>
constexpr uint64_t MaxOf(const Field& field) {
  return std::holds_alternative<T Config::*>(field) ? std::numeric_limits<T>::max() : 0;
}

// A line that does not fit its field (a range wider than the type, a kind on
// the wrong type, a duplicate name or field) fails the build.
consteval bool TableIsConsistent() {
  for (size_t i = 0; i < std::size(kKeys); ++i) {
    const Key& k = kKeys[i];
    const bool is_string = std::holds_alternative<std::string Config::*>(k.field);
    switch (k.kind) {
      case Kind::kBool:
        if (!std::holds_alternative<bool Config::*>(k.field)) return false;
        break;
      case Kind::kUint: {
        const uint64_t type_max = std::max(
            {MaxOf<uint16_t>(k.field), MaxOf<uint32_t>(k.field), MaxOf<uint64_t>(k.field)});
        if (type_max == 0 || k.min > k.max || k.max > type_max) return false;
        break;
      }
      case Kind::kChoice:
      case Kind::kChoiceList:
        if (!is_string || k.choices.empty()) return false;
        break;
      default:
        if (!is_string) return false;
    }
    if ((k.derive != nullptr || k.compute_default != nullptr || k.secret) && !is_string) {
      return false;
    }
    if (k.name.empty()) return false;
    for (char c : k.name) {
      if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')) return false;
    }
    for (size_t j = 0; j < i; ++j) {
      if (kKeys[j].name == k.name || kKeys[j].field == k.field) return false;
    }
  }
  return true;
}
// GCC does not treat function-pointer comparisons as constant expressions
// under -fsanitize=address; the regular build enforces this check.
#if !defined(__SANITIZE_ADDRESS__)
static_assert(TableIsConsistent(), "kKeys: a line does not match its Config field");
#endif

const Key* FindKey(std::string_view name) {
  for (const Key& key : kKeys) {
    if (key.name == name) return &key;
  }
  return nullptr;
}

// ---------------------------------------------------------------------------
// Field access through the table.

std::string& StringField(const Key& key, Config& config) {
  return config.*std::get<std::string Config::*>(key.field);
}
const std::string& StringField(const Key& key, const Config& config) {
  return config.*std::get<std::string Config::*>(key.field);
}

void SetUint(const Key& key, Config& config, uint64_t value) {
  std::visit(
      [&](auto member) {
        using T = std::remove_reference_t<decltype(config.*member)>;
        if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
          config.*member = static_cast<T>(value);  // in range: checked against key.max
        }
      },
      key.field);
}

// ---------------------------------------------------------------------------
// Value checks (the syntax ones are in detail/values.h).

std::optional<std::string_view> MatchChoice(std::span<const std::string_view> choices,
                                            std::string_view text) {
  const std::string lower = AsciiLower(text);
  for (std::string_view choice : choices) {
    if (choice == lower) return choice;
  }
  return std::nullopt;
}

std::string ChoicesText(std::span<const std::string_view> choices) {
  std::string out;
  for (std::string_view c : choices) {
    if (!out.empty()) out += '|';
    out += c;
  }
  return out;
}

bool IsNodeName(std::string_view name) {
  return !name.empty() && name.size() <= kMaxNodeNameChars &&
         std::all_of(name.begin(), name.end(), IsGraphAscii);
}

std::string HostName(const Config&) {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0 || !IsNodeName(buf)) {
    return std::string(kFallbackNodeName);
  }
  return buf;
}

// What `key` accepts, as the tail of "KEY=value (source): must be ...".
std::string Accepts(const Key& key) {
  switch (key.kind) {
    case Kind::kBool:
      return "must be a boolean: true/false, yes/no, on/off or 1/0";
    case Kind::kUint:
      return "must be an integer " + std::to_string(key.min) + ".." + std::to_string(key.max);
    case Kind::kPath:
      return "must be a non-empty path";
    case Kind::kOptionalPath:
      return "must be a path or empty";
    case Kind::kAddress:
      return "must be an IPv4 or IPv6 address literal, e.g. 0.0.0.0 or ::";
    case Kind::kChoice:
      if (key.choices.size() == 1) {
        return "must be " + std::string(key.choices[0]) + " (the only accepted value for now)";
      }
      return "must be one of " + ChoicesText(key.choices);
    case Kind::kChoiceList:
      return "must be a comma list of " + ChoicesText(key.choices) + " with at least one entry";
    case Kind::kToken:
      return "must be empty (a token is then generated) or at least " +
             std::to_string(kMinTokenChars) + " printable ASCII characters without spaces";
    case Kind::kClusterKey:
      return "must be empty or the base64 encoding of exactly " + std::to_string(kClusterKeyBytes) +
             " bytes (e.g. from `openssl rand -base64 32`)";
    case Kind::kSeeds:
      return "must be empty or a comma list of host:port (port 1..65535, IPv6 as [addr]:port)";
    case Kind::kNodeName:
      return "must be 1.." + std::to_string(kMaxNodeNameChars) +
             " printable ASCII characters without spaces";
    case Kind::kLabel:
      return "must be empty or 1.." + std::to_string(kMaxNodeNameChars) +
             " printable ASCII characters without spaces";
  }
  return {};
}

// Checks `text` against what `key` accepts and stores it (normalised) in
// `config`. On failure returns false and may say what exactly is wrong in
// *why; `config` is then unchanged.
bool Apply(const Key& key, std::string_view text, Config& config, std::string* why) {
  if (text.find('\0') != std::string_view::npos) {
    *why = "it contains a NUL byte";
    return false;
  }
  switch (key.kind) {
    case Kind::kBool: {
      const std::optional<bool> b = detail::ParseBool(text);
      if (!b) return false;
      config.*std::get<bool Config::*>(key.field) = *b;
      return true;
    }
    case Kind::kUint: {
      const std::optional<uint64_t> n = detail::ParseUint(text);
      if (!n || *n < key.min || *n > key.max) return false;
      SetUint(key, config, *n);
      return true;
    }
    case Kind::kPath:
      if (text.empty()) return false;
      StringField(key, config) = text;
      return true;
    case Kind::kOptionalPath:
      StringField(key, config) = text;
      return true;
    case Kind::kAddress:
      if (!detail::IsIpLiteral(text)) return false;
      StringField(key, config) = text;
      return true;
    case Kind::kChoice: {
      const std::optional<std::string_view> choice = MatchChoice(key.choices, text);
      if (!choice) return false;
      StringField(key, config) = *choice;
      return true;
    }
    case Kind::kChoiceList: {
      std::vector<std::string_view> picked;
      for (std::string_view item : detail::SplitCommaList(text)) {
        const std::optional<std::string_view> choice = MatchChoice(key.choices, item);
        if (!choice) {
          *why =
              item.empty() ? "it has an empty entry" : "\"" + std::string(item) + "\" is not one";
          return false;
        }
        if (std::find(picked.begin(), picked.end(), *choice) == picked.end()) {
          picked.push_back(*choice);
        }
      }
      std::string joined;
      for (std::string_view p : picked) joined += (joined.empty() ? "" : ",") + std::string(p);
      StringField(key, config) = joined;
      return true;
    }
    case Kind::kToken:
      if (!text.empty()) {
        if (!std::all_of(text.begin(), text.end(), IsGraphAscii)) {
          *why = "it contains a space or a character that is not printable ASCII";
          return false;
        }
        if (text.size() < kMinTokenChars) {
          *why = "it has " + std::to_string(text.size()) + " characters";
          return false;
        }
      }
      StringField(key, config) = text;
      return true;
    case Kind::kClusterKey:
      if (!text.empty()) {
        const std::optional<std::string> bytes = detail::DecodeBase64(text);
        if (!bytes) {
          *why = "it is not valid base64";
          return false;
        }
        if (bytes->size() != kClusterKeyBytes) {
          *why = "it decodes to " + std::to_string(bytes->size()) + " bytes";
          return false;
        }
      }
      StringField(key, config) = text;
      return true;
    case Kind::kSeeds: {
      std::string joined;
      if (!detail::TrimBlanks(text).empty()) {
        for (std::string_view item : detail::SplitCommaList(text)) {
          if (item.empty()) {
            *why = "it has an empty entry";
            return false;
          }
          if (!detail::IsHostPort(item, why)) return false;
          if (!joined.empty()) joined += ',';
          joined += item;
        }
      }
      StringField(key, config) = joined;
      return true;
    }
    case Kind::kNodeName:
      if (!IsNodeName(text)) return false;
      StringField(key, config) = text;
      return true;
    case Kind::kLabel:
      if (!text.empty() && !IsNodeName(text)) return false;
      StringField(key, config) = text;
      return true;
  }
  return false;
}

// ---------------------------------------------------------------------------
// Messages.

// A value as shown in an error message: bounded, and quoted with escapes when
// it is empty or has spaces, quotes or control characters.
std::string ShowValue(std::string_view text) {
  constexpr size_t kMaxShown = 80;
  const bool truncated = text.size() > kMaxShown;
  if (truncated) text = text.substr(0, kMaxShown);
  bool quote = text.empty();
  std::string body;
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      body += '\\';
      body += c;
      quote = true;
    } else if (u < 0x20 || u == 0x7f) {
      constexpr char kHex[] = "0123456789abcdef";
      body += "\\x";
      body += kHex[u >> 4];
      body += kHex[u & 0xf];
      quote = true;
    } else {
      if (c == ' ' || c == '#') quote = true;
      body += c;
    }
  }
  if (truncated) body += "...";
  return quote ? "\"" + body + "\"" : body;
}

// A TOML basic string, so that Describe() output reads back as a config file.
std::string TomlQuote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (u < 0x20 || u == 0x7f) {
          constexpr char kHex[] = "0123456789ABCDEF";
          out += "\\u00";
          out += kHex[u >> 4];
          out += kHex[u & 0xf];
        } else {
          out += c;
        }
    }
  }
  out += '"';
  return out;
}

class ConfigCategory : public std::error_category {
 public:
  const char* name() const noexcept override { return "config"; }
  std::string message(int code) const override {
    switch (static_cast<errc>(code)) {
      case errc::invalid_value:
        return "invalid configuration value";
      case errc::unknown_key:
        return "unknown configuration key";
      case errc::unreadable_file:
        return "configuration file cannot be read";
      case errc::syntax_error:
        return "configuration file syntax error";
    }
    return "unknown config error";
  }
};

// Every problem found while loading, so one failed start-up lists them all.
class Problems {
 public:
  void Add(errc code, std::string message) {
    if (messages_.empty()) code_ = code;
    messages_.push_back(std::move(message));
  }
  bool empty() const { return messages_.empty(); }
  Error ToError() const {
    std::string joined;
    for (const std::string& m : messages_) joined += (joined.empty() ? "" : "\n") + m;
    return MakeError(code_, std::move(joined));
  }

 private:
  errc code_ = errc::invalid_value;
  std::vector<std::string> messages_;
};

// ---------------------------------------------------------------------------
// Sources.

struct RawValue {
  std::string text;
  std::string where;  // for messages: "environment", ".env line 3", "file:/x line 4"
};

struct Layer {
  std::string origin;                                   // Origin::source of the values it sets
  std::map<std::string, RawValue, std::less<>> values;  // known keys only
};

// The whole content of a regular file of at most kMaxFileBytes. Errors carry
// the errno as a generic_category code.
Result<std::string> ReadSmallFile(const std::string& path) {
  auto fail = [](int err, std::string message) {
    return MakeError(std::error_code(err, std::generic_category()), std::move(message));
  };
  // O_NONBLOCK: a FIFO given by mistake must not hang start-up.
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    const int err = errno;
    return fail(err, std::generic_category().message(err));
  }
  struct Closer {
    int fd;
    ~Closer() { close(fd); }
  } closer{fd};
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    const int err = errno;
    return fail(err, std::generic_category().message(err));
  }
  if (!S_ISREG(st.st_mode)) {
    return fail(S_ISDIR(st.st_mode) ? EISDIR : EINVAL,
                S_ISDIR(st.st_mode) ? "it is a directory" : "it is not a regular file");
  }
  std::string content;
  char buf[65536];
  for (;;) {
    const ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      return fail(err, std::generic_category().message(err));
    }
    if (n == 0) break;
    content.append(buf, static_cast<size_t>(n));
    if (content.size() > kMaxFileBytes) {
      return fail(EFBIG, "it is larger than " + std::to_string(kMaxFileBytes >> 20) + " MiB");
    }
  }
  return content;
}

// The table key a TOML key names: the env name exactly, or all lower case.
const Key* FindFileKey(std::string_view name) {
  if (const Key* key = FindKey(name)) return key;
  const bool lower =
      std::none_of(name.begin(), name.end(), [](char c) { return c >= 'A' && c <= 'Z'; });
  if (!lower) return nullptr;
  std::string upper(name);
  for (char& c : upper) c = (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
  return FindKey(upper);
}

size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// " (did you mean HTTP_PORT?)" for a near miss, else "".
std::string Suggestion(std::string_view name) {
  std::string upper(name);
  for (char& c : upper) c = (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
  const Key* best = nullptr;
  size_t best_distance = 3;  // more than two edits away is not a typo
  for (const Key& key : kKeys) {
    const size_t d = EditDistance(upper, key.name);
    if (d < best_distance) {
      best = &key;
      best_distance = d;
    }
  }
  if (best == nullptr) return "";
  if (best_distance == 0) {
    return " (write it " + std::string(best->name) + " or " + AsciiLower(best->name) + ")";
  }
  return " (did you mean " + std::string(best->name) + "?)";
}

std::string_view TomlTypeName(toml::node_type type) {
  switch (type) {
    case toml::node_type::floating_point:
      return "a floating-point number";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
    case toml::node_type::array:
      return "an array";
    default:
      return "this TOML type";
  }
}

Layer ReadTomlLayer(const std::string& path, Problems& problems) {
  Layer layer{.origin = "file:" + path, .values = {}};
  Result<std::string> content = ReadSmallFile(path);
  if (!content) {
    problems.Add(errc::unreadable_file,
                 "cannot read config file " + path + ": " + content.error().message);
    return layer;
  }
  toml::table table;
  try {
    table = toml::parse(*content, path);
  } catch (const toml::parse_error& e) {
    problems.Add(errc::syntax_error, "cannot parse config file " + path + " (line " +
                                         std::to_string(e.source().begin.line) + ", column " +
                                         std::to_string(e.source().begin.column) +
                                         "): " + std::string(e.description()));
    return layer;
  }
  // toml::table iterates in key order; report in file order.
  std::vector<std::pair<uint32_t, std::pair<errc, std::string>>> found;
  std::map<std::string_view, std::string_view> spelling;  // key name -> as written
  for (auto&& [toml_key, node] : table) {
    const std::string_view name = toml_key.str();
    const uint32_t line = toml_key.source().begin.line;
    const std::string where = layer.origin + " line " + std::to_string(line);
    auto report = [&](errc code, std::string message) {
      found.emplace_back(line, std::make_pair(code, std::move(message)));
    };
    if (node.is_table() || node.is_array_of_tables()) {
      report(errc::syntax_error,
             "table \"" + std::string(name) + "\" (" + where +
                 "): nested tables are not supported; write every key at the top level, "
                 "e.g. HTTP_PORT = 8501");
      continue;
    }
    const Key* key = FindFileKey(name);
    if (key == nullptr) {
      report(errc::unknown_key,
             "unknown key \"" + std::string(name) + "\" (" + where + ")" + Suggestion(name));
      continue;
    }
    if (auto [it, inserted] = spelling.emplace(key->name, name); !inserted) {
      report(errc::syntax_error, std::string(key->name) + " is set twice in " + path + " (as " +
                                     std::string(it->second) + " and " + std::string(name) + ")");
      continue;
    }
    std::string text;
    if (const auto* s = node.as_string()) {
      text = s->get();
    } else if (const auto* i = node.as_integer()) {
      text = std::to_string(i->get());
    } else if (const auto* b = node.as_boolean()) {
      text = b->get() ? "true" : "false";
    } else {
      report(errc::invalid_value, std::string(key->name) + " (" + where +
                                      "): " + std::string(TomlTypeName(node.type())) +
                                      " is not accepted; " + Accepts(*key));
      continue;
    }
    layer.values[std::string(key->name)] = RawValue{std::move(text), where};
  }
  std::stable_sort(found.begin(), found.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  for (auto& [line, problem] : found) problems.Add(problem.first, std::move(problem.second));
  return layer;
}

Layer ReadDotEnvLayer(const std::string& path, Problems& problems) {
  Layer layer{.origin = ".env", .values = {}};
  Result<std::string> content = ReadSmallFile(path);
  if (!content) {
    if (content.code() != std::errc::no_such_file_or_directory) {
      problems.Add(errc::unreadable_file, "cannot read " + path + ": " + content.error().message);
    }
    return layer;
  }
  const detail::DotEnv dotenv = detail::ParseDotEnv(*content);
  for (const detail::DotEnvError& e : dotenv.errors) {
    problems.Add(errc::syntax_error, path + " line " + std::to_string(e.line) + ": " + e.what);
  }
  for (const detail::DotEnvEntry& e : dotenv.entries) {
    if (FindKey(e.key) == nullptr) continue;  // unrelated variables live in .env files too
    layer.values[e.key] = RawValue{e.value, path + " line " + std::to_string(e.line)};
  }
  return layer;
}

Layer EnvironmentLayer(const LoadOptions& options) {
  Layer layer{.origin = "environment", .values = {}};
  for (const Key& key : kKeys) {
    const std::string name(key.name);
    if (options.use_process_env) {
      // getenv: Load runs at start-up, before any thread could setenv.
      if (const char* v = std::getenv(name.c_str())) {  // NOLINT(concurrency-mt-unsafe)
        layer.values[name] = RawValue{v, "environment"};
      }
    } else if (auto it = options.env.find(name); it != options.env.end()) {
      layer.values[name] = RawValue{it->second, "environment"};
    }
  }
  return layer;
}

std::string DescribeValue(const Key& key, const Config& config) {
  if (key.secret) return StringField(key, config).empty() ? "(not set)" : "(set)";
  return std::visit(
      [&](auto member) -> std::string {
        const auto& v = config.*member;
        using T = std::remove_cvref_t<decltype(v)>;
        if constexpr (std::is_same_v<T, std::string>) {
          return TomlQuote(v);
        } else if constexpr (std::is_same_v<T, bool>) {
          return v ? "true" : "false";
        } else {
          return std::to_string(v);
        }
      },
      key.field);
}

}  // namespace

const std::error_category& category() {
  static const ConfigCategory kCategory;
  return kCategory;
}

Result<Loaded> Load(const LoadOptions& options) {
  Problems problems;
  std::vector<Layer> layers;  // lowest precedence first
  if (options.config_file) layers.push_back(ReadTomlLayer(*options.config_file, problems));
  layers.push_back(ReadDotEnvLayer(options.dotenv_path, problems));
  layers.push_back(EnvironmentLayer(options));

  Loaded loaded;
  for (const Key& key : kKeys) {
    std::string origin = "default";
    // Every source's value is checked, not only the winner's: a broken file
    // stays an error even while the environment happens to override it.
    for (const Layer& layer : layers) {
      const auto it = layer.values.find(key.name);
      if (it == layer.values.end()) continue;
      std::string why;
      if (Apply(key, it->second.text, loaded.config, &why)) {
        origin = layer.origin;
        continue;
      }
      const std::string shown =
          key.secret ? "(hidden, " + std::to_string(it->second.text.size()) + " characters)"
                     : ShowValue(it->second.text);
      std::string message =
          std::string(key.name) + "=" + shown + " (" + it->second.where + "): " + Accepts(key);
      if (!why.empty()) message += "; " + why;
      problems.Add(errc::invalid_value, std::move(message));
    }
    loaded.origins[std::string(key.name)] = Origin{std::move(origin)};
  }
  // Defaults that depend on other keys, from their effective values.
  for (const Key& key : kKeys) {
    Origin& origin = loaded.origins[std::string(key.name)];
    if (origin.source != "default") continue;
    if (key.derive != nullptr) {
      StringField(key, loaded.config) = key.derive(loaded.config);
      origin.source = "derived";
    } else if (key.compute_default != nullptr) {
      StringField(key, loaded.config) = key.compute_default(loaded.config);
    }
  }
  if (!problems.empty()) return problems.ToError();
  return loaded;
}

std::string Describe(const Loaded& loaded) {
  constexpr size_t kMaxValueColumn = 40;  // longer values just push their comment out
  size_t name_width = 0;
  size_t value_width = 0;
  std::vector<std::string> values;
  for (const Key& key : kKeys) {
    values.push_back(DescribeValue(key, loaded.config));
    name_width = std::max(name_width, key.name.size());
    value_width = std::max(value_width, std::min(values.back().size(), kMaxValueColumn));
  }
  std::string out;
  for (size_t i = 0; i < std::size(kKeys); ++i) {
    const std::string name(kKeys[i].name);
    const auto it = loaded.origins.find(name);
    const std::string source = it == loaded.origins.end() ? "unknown" : it->second.source;
    out += name;
    out.append(name_width - name.size(), ' ');
    out += " = ";
    out += values[i];
    out.append(value_width - std::min(values[i].size(), value_width), ' ');
    out += "  # " + source + "\n";
  }
  return out;
}

const std::vector<std::string>& KeyNames() {
  static const std::vector<std::string> kNames = [] {
    std::vector<std::string> names;
    for (const Key& key : kKeys) names.emplace_back(key.name);
    return names;
  }();
  return kNames;
}

}  // namespace hub::config
