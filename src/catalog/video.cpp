#include "catalog/video.h"

#include <algorithm>
#include <cassert>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <stdexcept>
#include <tuple>
#include <utility>

#include "catalog/detail/stored_json.h"
#include "core/ids.h"

namespace hub::catalog {
namespace {

using nlohmann::json;

class CategoryImpl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "catalog"; }
  std::string message(int ev) const override {
    switch (static_cast<errc>(ev)) {
      case errc::not_found:
        return "not found";
      case errc::already_exists:
        return "already exists";
      case errc::invalid_argument:
        return "invalid argument";
      case errc::corrupt:
        return "corrupt";
    }
    return "unknown catalog error";
  }
};

// Bound of every record read (creation record, overlay). Update refuses to
// write an overlay larger than this, so that what is written can be read back.
constexpr size_t kMaxRecordBytes = 256 * 1024;
constexpr size_t kMaxTombstoneBytes = 4096;
constexpr size_t kMaxOriginalNameBytes = 1024;
constexpr size_t kMaxContentTypeBytes = 255;
// `error` comes from the system (e.g. ffmpeg's stderr): sanitised, not refused.
constexpr size_t kMaxErrorBytes = 2000;
// Top-level names of UPLOAD_DIR that are not videos.
constexpr std::string_view kReservedIds[] = {"streams"};

constexpr std::string_view kCreationRecord = "video.json";
constexpr std::string_view kTombstone = "deleted";
constexpr std::string_view kOriginal = "original";
constexpr std::string_view kStateDir = "state";

// The mutable fields, merged last-writer-wins one by one.
enum Field : size_t { kTitle, kDescription, kStatus, kError, kSize, kMedia, kFieldCount };
constexpr std::string_view kFieldNames[kFieldCount] = {"title", "description", "status",
                                                       "error", "size",        "media"};

std::string Path(const std::string& id, std::string_view name) {
  std::string p = id;
  p += '/';
  p += name;
  return p;
}

std::string OverlayPath(const std::string& id, const std::string& node) {
  return Path(id, kStateDir) + "/" + node + ".json";
}

Error Invalid(std::string message) { return MakeError(errc::invalid_argument, std::move(message)); }

// Keeps the storage error code (no_space, io_error... so that callers can
// answer 507 or 503) and says what we were doing.
Error StorageError(const Error& e, const std::string& doing) {
  return MakeError(e.code, doing + ": " + e.message);
}

bool IsStorage(const Error& e, storage::errc code) {
  return e.code == storage::make_error_code(code);
}

// A name that can be a video's directory: a valid id, and not one of the
// top-level names used for something else.
bool IsVideoId(std::string_view id) {
  return IsValidId(id) &&
         std::find(std::begin(kReservedIds), std::end(kReservedIds), id) == std::end(kReservedIds);
}

bool IsMissing(const Error& e) {
  return IsStorage(e, storage::errc::not_found) || IsStorage(e, storage::errc::not_a_directory);
}

Error NotFound(const std::string& id) {
  if (!IsVideoId(id)) {
    return MakeError(errc::not_found,
                     "no such video: video ids are 1..64 characters of [0-9A-Za-z_-]");
  }
  return MakeError(errc::not_found, "no video with id \"" + id + "\"");
}

bool IsValidNodeId(std::string_view node) {
  if (node.empty() || node.size() > 64 || node.front() == '.') return false;
  return std::all_of(node.begin(), node.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           c == '-' || c == '.';
  });
}

// ---- text -------------------------------------------------------------------

// Decodes the code point at s[i]. Returns its length in bytes, or 0 when the
// bytes there are not valid UTF-8 (truncated, overlong, surrogate, > U+10FFFF).
size_t DecodeUtf8(std::string_view s, size_t i, char32_t& cp) {
  auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = byte(i);
  if (c < 0x80) {
    cp = c;
    return 1;
  }
  size_t len;
  char32_t min;
  if ((c & 0xE0) == 0xC0) {
    len = 2, cp = c & 0x1F, min = 0x80;
  } else if ((c & 0xF0) == 0xE0) {
    len = 3, cp = c & 0x0F, min = 0x800;
  } else if ((c & 0xF8) == 0xF0) {
    len = 4, cp = c & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  for (size_t k = 1; k < len; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (byte(i + k) & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

void AppendUtf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

bool IsControl(char32_t cp) { return cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp <= 0x9F); }

bool IsAsciiSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

std::string_view TrimAscii(std::string_view s) {
  while (!s.empty() && IsAsciiSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsAsciiSpace(s.back())) s.remove_suffix(1);
  return s;
}

// The longest prefix of valid UTF-8 `s` that fits in max_bytes without
// cutting a character.
std::string_view TruncateUtf8(std::string_view s, size_t max_bytes) {
  if (s.size() <= max_bytes) return s;
  size_t end = max_bytes;
  while (end > 0 && (static_cast<unsigned char>(s[end]) & 0xC0) == 0x80) --end;
  return s.substr(0, end);
}

std::string CodePointName(char32_t cp) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "U+%04X", static_cast<unsigned>(cp));
  return buf;
}

// Valid UTF-8, at most max_bytes, no control characters (but \n and \t when
// `multiline`). `what` names the field in the message.
Result<void> CheckText(std::string_view what, std::string_view s, size_t max_bytes,
                       bool multiline) {
  if (s.size() > max_bytes) {
    return Invalid(std::string(what) + " is " + std::to_string(s.size()) +
                   " bytes long; the limit is " + std::to_string(max_bytes) +
                   " bytes (UTF-8): shorten it");
  }
  for (size_t i = 0; i < s.size();) {
    char32_t cp;
    const size_t n = DecodeUtf8(s, i, cp);
    if (n == 0) {
      return Invalid(std::string(what) + " is not valid UTF-8 (at byte " + std::to_string(i) +
                     "): send text encoded as UTF-8");
    }
    if (IsControl(cp) && !(multiline && (cp == '\n' || cp == '\t'))) {
      return Invalid(std::string(what) + " must not contain control characters" +
                     (multiline ? " other than line breaks and tabs" : "") + " (found " +
                     CodePointName(cp) + " at byte " + std::to_string(i) + ")");
    }
    i += n;
  }
  return Ok();
}

Result<std::string> CleanTitle(std::string_view raw) {
  const std::string_view title = TrimAscii(raw);
  if (title.empty()) return Invalid("title must not be empty: give the video a name");
  HUB_TRY(CheckText("title", title, kMaxTitleBytes, /*multiline=*/false));
  return std::string(title);
}

Result<std::string> CleanDescription(std::string_view raw) {
  // HTML forms send line breaks as CRLF; store them as LF.
  std::string description;
  description.reserve(raw.size());
  for (size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] == '\r' && i + 1 < raw.size() && raw[i + 1] == '\n') continue;
    description += raw[i];
  }
  HUB_TRY(CheckText("description", description, kMaxDescriptionBytes, /*multiline=*/true));
  return description;
}

// Error text comes from the system (e.g. a tool's output), so it is made
// presentable instead of refused: invalid bytes become U+FFFD, control
// characters other than \n and \t are dropped, the length is capped.
std::string SanitizeMessage(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    char32_t cp;
    size_t n = DecodeUtf8(s, i, cp);
    std::string_view piece;
    if (n == 0) {
      n = 1;
      piece = "\xEF\xBF\xBD";
    } else if (IsControl(cp) && cp != '\n' && cp != '\t') {
      piece = "";
    } else {
      piece = s.substr(i, n);
    }
    if (out.size() + piece.size() > kMaxErrorBytes) break;
    out += piece;
    i += n;
  }
  return std::string(TrimAscii(out));
}

// A title for a video created without one: the file name without directory
// and extension, else a placeholder. `original_name` is already checked.
std::string DefaultTitle(std::string_view original_name) {
  std::string_view base = original_name;
  if (size_t slash = base.find_last_of("/\\"); slash != std::string_view::npos) {
    base = base.substr(slash + 1);
  }
  if (size_t dot = base.rfind('.'); dot != std::string_view::npos && dot > 0) {
    base = base.substr(0, dot);
  }
  base = TrimAscii(TruncateUtf8(TrimAscii(base), kMaxTitleBytes));
  return base.empty() ? std::string("Untitled video") : std::string(base);
}

// ---- records ----------------------------------------------------------------

const json* Member(const json& j, std::string_view key) {
  if (!j.is_object()) return nullptr;
  auto it = j.find(key);
  return it == j.end() ? nullptr : &*it;
}

std::optional<int64_t> AsInt64(const json* j) {
  if (j == nullptr) return std::nullopt;
  if (j->is_number_unsigned()) {
    const auto u = j->get<uint64_t>();
    if (u > static_cast<uint64_t>(INT64_MAX)) return std::nullopt;
    return static_cast<int64_t>(u);
  }
  if (j->is_number_integer()) return j->get<int64_t>();
  return std::nullopt;
}

std::optional<uint64_t> AsUint64(const json* j) {
  if (j == nullptr || !j->is_number_unsigned()) return std::nullopt;
  return j->get<uint64_t>();
}

// Reads an optional string member into `out`; false if present but not a string.
bool ReadString(const json& j, std::string_view key, std::string& out) {
  const json* m = Member(j, key);
  if (m == nullptr) return true;
  if (!m->is_string()) return false;
  out = m->get<std::string>();
  return true;
}

// Sets one field of `v` from a JSON value; false (v unchanged) if the value
// has the wrong type.
bool ApplyField(Video& v, Field f, const json& value) {
  switch (f) {
    case kTitle:
    case kDescription:
    case kError:
      if (!value.is_string()) return false;
      if (f == kTitle) {
        v.title = value.get<std::string>();
      } else if (f == kDescription) {
        v.description = value.get<std::string>();
      } else {
        v.error = value.get<std::string>();
      }
      return true;
    case kStatus: {
      if (!value.is_string()) return false;
      auto s = ParseStatus(value.get_ref<const std::string&>());
      if (!s) return false;
      v.status = *s;
      return true;
    }
    case kSize: {
      auto size = AsUint64(&value);
      if (!size) return false;
      v.size = *size;
      return true;
    }
    case kMedia:
      if (!value.is_object()) return false;
      v.media = value;
      return true;
    case kFieldCount:
      break;
  }
  return false;
}

json CreationRecord(const Video& v) {
  return json{{"id", v.id},
              {"created_at_ms", v.created_at_ms},
              {"original_name", v.original_name},
              {"content_type", v.content_type},
              {"title", v.title},
              {"description", v.description},
              {"size", v.size},
              {"status", ToString(v.status)}};
}

std::optional<Video> ParseCreationRecord(const json& j, const std::string& id) {
  const json* rid = Member(j, "id");
  auto created = AsInt64(Member(j, "created_at_ms"));
  if (rid == nullptr || !rid->is_string() || *rid != id || !created) return std::nullopt;
  Video v;
  v.id = id;
  v.created_at_ms = *created;
  v.updated_at_ms = *created;
  if (!ReadString(j, "original_name", v.original_name) ||
      !ReadString(j, "content_type", v.content_type) || !ReadString(j, "title", v.title) ||
      !ReadString(j, "description", v.description)) {
    return std::nullopt;
  }
  if (const json* size = Member(j, "size"); size != nullptr && !ApplyField(v, kSize, *size)) {
    return std::nullopt;
  }
  if (const json* s = Member(j, "status"); s != nullptr && !ApplyField(v, kStatus, *s)) {
    return std::nullopt;
  }
  return v;
}

// Last-writer-wins order of a field value: (timestamp, node). The creation
// record has node "" so that any overlay with the same timestamp beats it.
struct Stamp {
  int64_t t = 0;
  std::string node;
};

bool Newer(const Stamp& a, const Stamp& b) { return std::tie(a.t, a.node) > std::tie(b.t, b.node); }

// A video merged from its files, with what Update needs besides.
struct Loaded {
  Video video;
  Stamp stamp[kFieldCount];   // of each field's winning value = the newest seen
  json own = json::object();  // this node's overlay, to be extended by Update
};

}  // namespace

const std::error_category& category() {
  static const CategoryImpl instance;
  return instance;
}

std::string_view ToString(VideoStatus s) {
  switch (s) {
    case VideoStatus::kUploading:
      return "uploading";
    case VideoStatus::kProcessing:
      return "processing";
    case VideoStatus::kReady:
      return "ready";
    case VideoStatus::kFailed:
      return "failed";
  }
  return "unknown";
}

std::optional<VideoStatus> ParseStatus(std::string_view s) {
  for (auto status : {VideoStatus::kUploading, VideoStatus::kProcessing, VideoStatus::kReady,
                      VideoStatus::kFailed}) {
    if (ToString(status) == s) return status;
  }
  return std::nullopt;
}

// ---- VideoRepository --------------------------------------------------------

namespace {

// When the video was deleted, or nullopt if it is not. Opens the tombstone
// rather than stat()ing it: attribute caches on NFS lag behind other nodes.
Result<std::optional<int64_t>> ReadTombstone(storage::Store& store, const std::string& id) {
  auto data = store.ReadAll(Path(id, kTombstone), kMaxTombstoneBytes);
  if (!data.ok()) {
    if (IsMissing(data.error())) return std::optional<int64_t>();
    if (!IsStorage(data.error(), storage::errc::too_large)) {
      return StorageError(data.error(), "checking whether video " + id + " is deleted");
    }
  }
  if (data.ok()) {
    // Written by MarkDeleted; empty while its exclusive create is in flight.
    if (auto at = AsInt64(Member(json::parse(*data, nullptr, false), "at"))) {
      return std::optional<int64_t>(*at);
    }
  }
  auto info = store.Stat(Path(id, kTombstone));
  if (!info.ok()) {
    if (IsMissing(info.error())) return std::optional<int64_t>();
    return StorageError(info.error(), "checking whether video " + id + " is deleted");
  }
  return std::optional<int64_t>(info->mtime_unix_nanos / 1'000'000);
}

// The body of Get/GetIncludingDeleted/Update: reads every file of a video and
// merges them. Corrupt overlays are skipped; errors other than "not there"
// and "corrupt" are returned, so that a flaky mount never passes for a
// smaller truth.
Result<Loaded> Load(storage::Store& store, const std::string& node_id, const std::string& id) {
  if (!IsVideoId(id)) return NotFound(id);
  auto raw = store.ReadAll(Path(id, kCreationRecord), kMaxRecordBytes);
  if (!raw.ok()) {
    if (IsMissing(raw.error())) return NotFound(id);
    if (IsStorage(raw.error(), storage::errc::too_large)) {
      return MakeError(errc::corrupt, "video " + id + ": video.json is larger than " +
                                          std::to_string(kMaxRecordBytes) + " bytes");
    }
    return StorageError(raw.error(), "reading video " + id);
  }
  // An exclusive create is not atomic for readers: a creation record being
  // written right now may look empty or cut; it reads as corrupt until done.
  auto created = ParseCreationRecord(json::parse(*raw, nullptr, false), id);
  if (!created) {
    return MakeError(errc::corrupt, "video " + id +
                                        ": video.json is unreadable (being "
                                        "created right now, or damaged)");
  }

  Loaded l;
  l.video = std::move(*created);
  for (auto& s : l.stamp) s = Stamp{l.video.created_at_ms, ""};

  auto names = store.List(Path(id, kStateDir));
  if (!names.ok() && !IsStorage(names.error(), storage::errc::not_found)) {
    return StorageError(names.error(), "listing the state of video " + id);
  }
  const std::string own_name = node_id + ".json";
  for (const std::string& name : names.ok() ? *names : std::vector<std::string>{}) {
    constexpr std::string_view kSuffix = ".json";
    if (name.size() <= kSuffix.size() || name.front() == '.' ||
        name.compare(name.size() - kSuffix.size(), kSuffix.size(), kSuffix) != 0) {
      continue;
    }
    auto data = store.ReadAll(Path(id, kStateDir) + "/" + name, kMaxRecordBytes);
    if (!data.ok()) {
      if (IsStorage(data.error(), storage::errc::not_found) ||
          IsStorage(data.error(), storage::errc::too_large)) {
        continue;
      }
      return StorageError(data.error(), "reading the state of video " + id);
    }
    json overlay = json::parse(*data, nullptr, false);
    if (!overlay.is_object()) continue;  // corrupt: skipped, the video stays readable
    if (name == own_name) l.own = overlay;
    const std::string file_node = name.substr(0, name.size() - kSuffix.size());
    for (size_t f = 0; f < kFieldCount; ++f) {
      const json* entry = Member(overlay, kFieldNames[f]);
      if (entry == nullptr) continue;
      auto t = AsInt64(Member(*entry, "t"));
      const json* value = Member(*entry, "v");
      if (!t || value == nullptr) continue;
      Stamp stamp{*t, file_node};
      if (const json* n = Member(*entry, "n"); n != nullptr && n->is_string()) {
        stamp.node = n->get<std::string>();
      }
      if (!Newer(stamp, l.stamp[f])) continue;
      if (!ApplyField(l.video, static_cast<Field>(f), *value)) continue;
      l.stamp[f] = std::move(stamp);
    }
  }
  for (const Stamp& s : l.stamp) l.video.updated_at_ms = std::max(l.video.updated_at_ms, s.t);

  auto deleted_at = ReadTombstone(store, id);
  if (!deleted_at.ok()) return deleted_at.error();
  if (*deleted_at) {
    l.video.deleted = true;
    l.video.deleted_at_ms = **deleted_at;
  }
  return l;
}

}  // namespace

VideoRepository::VideoRepository(storage::Store& store, std::string node_id, const Clock& clock)
    : store_(store), node_id_(std::move(node_id)), clock_(clock) {
  if (!IsValidNodeId(node_id_)) {
    throw std::invalid_argument("node id \"" + node_id_ +
                                "\" cannot name a file: use 1..64 characters of "
                                "[0-9A-Za-z._-], not starting with '.'");
  }
}

std::string VideoRepository::OriginalPath(const std::string& id) { return Path(id, kOriginal); }

Result<Video> VideoRepository::Create(const NewVideo& nv) {
  if (!IsValidId(nv.id)) {
    return Invalid("the video id is invalid: use 1..64 characters of [0-9A-Za-z_-]");
  }
  if (!IsVideoId(nv.id)) return Invalid("\"" + nv.id + "\" is reserved and cannot be a video id");
  HUB_TRY(CheckText("original file name", nv.original_name, kMaxOriginalNameBytes, false));
  HUB_TRY(CheckText("content type", nv.content_type, kMaxContentTypeBytes, false));
  Video v;
  v.id = nv.id;
  if (TrimAscii(nv.title).empty()) {
    v.title = DefaultTitle(nv.original_name);
  } else {
    auto title = CleanTitle(nv.title);
    if (!title.ok()) return title.error();
    v.title = std::move(*title);
  }
  auto description = CleanDescription(nv.description);
  if (!description.ok()) return description.error();
  v.description = std::move(*description);
  v.original_name = nv.original_name;
  v.content_type = nv.content_type;
  v.size = nv.size;
  v.status = nv.status;
  v.created_at_ms = clock_.NowUnixMillis();
  v.updated_at_ms = v.created_at_ms;

  auto r = store_.CreateExclusive(Path(v.id, kCreationRecord), detail::Dump(CreationRecord(v)));
  if (!r.ok()) {
    if (IsStorage(r.error(), storage::errc::already_exists)) {
      return MakeError(errc::already_exists, "a video with id \"" + v.id + "\" already exists");
    }
    return StorageError(r.error(), "creating video " + v.id);
  }
  return v;
}

Result<Video> VideoRepository::Get(const std::string& id) {
  auto v = GetIncludingDeleted(id);
  if (v.ok() && v->deleted) return MakeError(errc::not_found, "video " + id + " was deleted");
  return v;
}

Result<Video> VideoRepository::GetIncludingDeleted(const std::string& id) {
  auto l = Load(store_, node_id_, id);
  if (!l.ok()) return l.error();
  return std::move(l->video);
}

Result<Video> VideoRepository::Update(const std::string& id, const VideoPatch& patch) {
  // Validate before touching storage.
  std::vector<std::pair<Field, json>> changes;
  if (patch.title) {
    auto title = CleanTitle(*patch.title);
    if (!title.ok()) return title.error();
    changes.emplace_back(kTitle, std::move(*title));
  }
  if (patch.description) {
    auto description = CleanDescription(*patch.description);
    if (!description.ok()) return description.error();
    changes.emplace_back(kDescription, std::move(*description));
  }
  if (patch.status) changes.emplace_back(kStatus, std::string(ToString(*patch.status)));
  if (patch.error) changes.emplace_back(kError, SanitizeMessage(*patch.error));
  if (patch.size) changes.emplace_back(kSize, *patch.size);
  if (patch.media) {
    if (!patch.media->is_object()) return Invalid("media must be a JSON object");
    changes.emplace_back(kMedia, *patch.media);
  }

  // The overlay file has one writer per node, but several threads of this
  // node may update the same video: serialise their read-modify-write.
  std::lock_guard lock(update_mu_[std::hash<std::string>{}(id) % update_mu_.size()]);
  auto l = Load(store_, node_id_, id);
  if (!l.ok()) return l.error();
  if (l->video.deleted) return MakeError(errc::not_found, "video " + id + " was deleted");
  if (changes.empty()) return std::move(l->video);

  // Hybrid logical clock: strictly after every value seen for the field, so
  // an edit made after reading wins even when this node's clock is behind.
  const int64_t now = clock_.NowUnixMillis();
  Video& v = l->video;
  for (auto& [field, value] : changes) {
    const int64_t t = std::max(now, l->stamp[field].t + 1);
    const bool applied = ApplyField(v, field, value);
    assert(applied);
    (void)applied;
    v.updated_at_ms = std::max(v.updated_at_ms, t);
    l->own[kFieldNames[field]] = json{{"v", std::move(value)}, {"t", t}, {"n", node_id_}};
  }
  const std::string data = detail::Dump(l->own);
  if (data.size() > kMaxRecordBytes) {
    return Invalid("the state of video " + id + " would be " + std::to_string(data.size()) +
                   " bytes; the limit is " + std::to_string(kMaxRecordBytes) +
                   " (is media too large?)");
  }
  auto r = store_.WriteAtomic(OverlayPath(id, node_id_), data);
  if (!r.ok()) return StorageError(r.error(), "saving changes to video " + id);
  return std::move(v);
}

Result<void> VideoRepository::MarkDeleted(const std::string& id) {
  if (!IsVideoId(id)) return NotFound(id);
  // Open the record rather than stat it: attribute caches on NFS may not yet
  // know a video another node just created.
  auto exists = store_.ReadAll(Path(id, kCreationRecord), kMaxRecordBytes);
  if (!exists.ok()) {
    if (IsMissing(exists.error())) {
      return NotFound(id);
    }
    if (!IsStorage(exists.error(), storage::errc::too_large)) {
      return StorageError(exists.error(), "deleting video " + id);
    }
  }
  const json tombstone{{"at", clock_.NowUnixMillis()}, {"by", node_id_}};
  auto r = store_.CreateExclusive(Path(id, kTombstone), detail::Dump(tombstone));
  if (!r.ok() && !IsStorage(r.error(), storage::errc::already_exists)) {
    return StorageError(r.error(), "deleting video " + id);
  }
  return Ok();
}

Result<std::vector<std::string>> VideoRepository::ListIds() {
  auto names = store_.List("");
  if (!names.ok()) {
    if (IsStorage(names.error(), storage::errc::not_found)) return std::vector<std::string>{};
    return StorageError(names.error(), "listing videos");
  }
  std::vector<std::string> ids;
  for (std::string& name : *names) {
    // Also rejects ".uploads" and every other dot-name.
    if (!IsVideoId(name)) continue;
    auto info = store_.Stat(Path(name, kCreationRecord));
    if (!info.ok()) {
      if (IsMissing(info.error())) {
        continue;
      }
      return StorageError(info.error(), "listing videos");
    }
    if (!info->is_directory) ids.push_back(std::move(name));
  }
  return ids;
}

Result<bool> VideoRepository::ReclaimIfExpired(const std::string& id, int64_t grace_ms) {
  if (!IsVideoId(id)) return NotFound(id);
  auto deleted_at = ReadTombstone(store_, id);
  if (!deleted_at.ok()) return deleted_at.error();
  if (!*deleted_at) return false;
  if (clock_.NowUnixMillis() - **deleted_at < std::max<int64_t>(grace_ms, 0)) return false;

  // Order matters if this is interrupted: the bulk goes first, then the
  // creation record (the video is gone from then on), and only then the
  // tombstone — never a state where the video reappears undeleted.
  for (std::string_view name : {kOriginal, kCreationRecord}) {
    auto r = store_.Remove(Path(id, name));
    if (!r.ok() && !IsStorage(r.error(), storage::errc::not_found)) {
      return StorageError(r.error(), "reclaiming video " + id);
    }
  }
  auto r = store_.RemoveAll(id);
  if (!r.ok()) return StorageError(r.error(), "reclaiming video " + id);
  return true;
}

Result<std::string> VideoRepository::Fingerprint(const std::string& id) {
  if (!IsVideoId(id)) return NotFound(id);
  std::string fp;
  // Appends "name:size:mtime;" when the file exists; `required` turns its
  // absence into not_found.
  auto add = [&](const std::string& name, bool required) -> Result<void> {
    auto info = store_.Stat(Path(id, name));
    if (!info.ok()) {
      const bool missing = IsMissing(info.error());
      if (missing && !required) return Ok();
      if (missing) return NotFound(id);
      return StorageError(info.error(), "fingerprinting video " + id);
    }
    fp += name + ':' + std::to_string(info->size) + ':' + std::to_string(info->mtime_unix_nanos) +
          ';';
    return Ok();
  };
  HUB_TRY(add(std::string(kCreationRecord), true));
  auto names = store_.List(Path(id, kStateDir));
  if (!names.ok() && !IsStorage(names.error(), storage::errc::not_found)) {
    return StorageError(names.error(), "fingerprinting video " + id);
  }
  if (names.ok()) {
    for (const std::string& name : *names) HUB_TRY(add(std::string(kStateDir) + "/" + name, false));
  }
  HUB_TRY(add(std::string(kTombstone), false));
  HUB_TRY(add(std::string(kOriginal), false));
  return fp;
}

// ---- JSON -------------------------------------------------------------------

json ToJson(const Video& v) {
  const bool uploading = v.status == VideoStatus::kUploading;
  // The media pipeline's state lives in `media` (see docs/api.md); the
  // convenience fields below are derived from it.
  const json media = v.media.is_object() ? v.media : json::object();
  auto media_string = [&](const char* key) -> json {
    auto it = media.find(key);
    return it != media.end() && it->is_string() ? *it : json(nullptr);
  };
  auto media_flag = [&](const char* key) {
    auto it = media.find(key);
    return it != media.end() && it->is_boolean() && it->get<bool>();
  };
  json progress = nullptr;
  if (auto it = media.find("progress"); it != media.end() && it->is_number()) progress = *it;
  json error = v.error.empty() ? media_string("error") : json(v.error);
  const std::string base = "/media/" + v.id;
  const bool thumbs = media_flag("thumbs");
  return json{
      {"id", v.id},
      {"title", v.title},
      {"description", v.description},
      {"original_name", v.original_name},
      {"content_type", v.content_type},
      {"size", v.size},
      {"status", ToString(v.status)},
      {"error", error},
      {"media_status", media_string("status")},
      {"progress", progress},
      {"created_at", FormatRfc3339(v.created_at_ms * 1'000'000)},
      {"updated_at", FormatRfc3339(v.updated_at_ms * 1'000'000)},
      {"media", media},
      {"original_url", uploading ? json(nullptr) : json("/media/" + v.id + "/original")},
      {"upload_url", uploading ? json("/files/" + v.id) : json(nullptr)},
      {"hls_url", media_flag("hls") ? json(base + "/hls/master.m3u8") : json(nullptr)},
      {"thumbnail_url", thumbs ? json(base + "/thumbs/poster_large.jpg") : json(nullptr)},
      {"poster_urls", thumbs ? json{{"large", base + "/thumbs/poster_large.jpg"},
                                    {"small", base + "/thumbs/poster_small.jpg"}}
                             : json(nullptr)},
      {"sprite_vtt_url", thumbs ? json(base + "/thumbs/sprite.vtt") : json(nullptr)},
      {"watch_url", "/watch/" + v.id},
  };
}

namespace detail {

json ToStoredJson(const Video& v) {
  return json{{"id", v.id},
              {"title", v.title},
              {"description", v.description},
              {"original_name", v.original_name},
              {"content_type", v.content_type},
              {"size", v.size},
              {"status", ToString(v.status)},
              {"error", v.error},
              {"created_at_ms", v.created_at_ms},
              {"updated_at_ms", v.updated_at_ms},
              {"media", v.media},
              {"deleted", v.deleted},
              {"deleted_at_ms", v.deleted_at_ms}};
}

std::optional<Video> FromStoredJson(const json& j) {
  Video v;
  const json* id = Member(j, "id");
  const json* deleted = Member(j, "deleted");
  auto created = AsInt64(Member(j, "created_at_ms"));
  auto updated = AsInt64(Member(j, "updated_at_ms"));
  auto deleted_at = AsInt64(Member(j, "deleted_at_ms"));
  if (id == nullptr || !id->is_string() || deleted == nullptr || !deleted->is_boolean() ||
      !created || !updated || !deleted_at) {
    return std::nullopt;
  }
  v.id = id->get<std::string>();
  for (auto [key, out] : {std::pair<const char*, std::string*>{"original_name", &v.original_name},
                          {"content_type", &v.content_type}}) {
    const json* m = Member(j, key);
    if (m == nullptr || !m->is_string()) return std::nullopt;
    *out = m->get<std::string>();
  }
  for (size_t f = 0; f < kFieldCount; ++f) {
    const json* m = Member(j, kFieldNames[f]);
    if (m == nullptr || !ApplyField(v, static_cast<Field>(f), *m)) return std::nullopt;
  }
  v.created_at_ms = *created;
  v.updated_at_ms = *updated;
  v.deleted = deleted->get<bool>();
  v.deleted_at_ms = *deleted_at;
  return v;
}

std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string LowerForSearch(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      out += (c >= 'A' && c <= 'Z') ? static_cast<char>(c + ('a' - 'A')) : static_cast<char>(c);
      ++i;
      continue;
    }
    char32_t cp;
    const size_t n = DecodeUtf8(s, i, cp);
    if (n == 0) {
      out += s[i++];
      continue;
    }
    char32_t lower = cp;
    if ((cp >= 0xC0 && cp <= 0xDE && cp != 0xD7) ||     // Latin-1: À..Þ except ×
        (cp >= 0x391 && cp <= 0x3AB && cp != 0x3A2) ||  // Greek Α..Ϋ
        (cp >= 0x410 && cp <= 0x42F)) {                 // Cyrillic А..Я
      lower = cp + 0x20;
    } else if (cp >= 0x400 && cp <= 0x40F) {  // Cyrillic Ѐ..Џ
      lower = cp + 0x50;
    } else if (cp >= 0x100 && cp <= 0x17F) {  // Latin Extended-A: pairs
      if (cp == 0x178) {
        lower = 0xFF;  // Ÿ
      } else if ((cp >= 0x139 && cp <= 0x148) || (cp >= 0x179 && cp <= 0x17E)) {
        if (cp % 2 == 1) lower = cp + 1;
      } else if (cp != 0x130 && cp != 0x138 && cp != 0x149 && cp != 0x17F && cp % 2 == 0) {
        lower = cp + 1;
      }
    }
    AppendUtf8(out, lower);
    i += n;
  }
  return out;
}

}  // namespace detail
}  // namespace hub::catalog
