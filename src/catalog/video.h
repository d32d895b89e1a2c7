#pragma once
// Videos on the shared storage (the truth) — see docs/storage.md.
//
//   <UPLOAD_DIR>/<id>/video.json         creation record, immutable (CreateExclusive)
//   <UPLOAD_DIR>/<id>/state/<node>.json  this node's overlay of mutable fields;
//                                        one writer per file (WriteAtomic)
//   <UPLOAD_DIR>/<id>/original           the uploaded bytes, once complete
//   <UPLOAD_DIR>/<id>/deleted            tombstone (CreateExclusive), data
//                                        reclaimed after the grace period
//
// Mutable fields (title, description, status, error, size, media) merge
// last-writer-wins per field over all nodes' overlays, ordered by
// (timestamp ms, node id) — so concurrent edits on two nodes never corrupt
// anything and every reader computes the same result.

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/clock.h"
#include "core/result.h"
#include "storage/store.h"

namespace hub::catalog {

enum class errc { not_found = 1, already_exists, invalid_argument, corrupt };
const std::error_category& category();
inline std::error_code make_error_code(errc e) { return {static_cast<int>(e), category()}; }

enum class VideoStatus { kUploading, kProcessing, kReady, kFailed };
std::string_view ToString(VideoStatus s);  // "uploading", ...
std::optional<VideoStatus> ParseStatus(std::string_view s);

struct Video {
  std::string id;
  std::string title;
  std::string description;
  std::string original_name;   // file name the uploader had, may be empty
  std::string content_type;    // of the original, e.g. "video/mp4"
  uint64_t size = 0;           // bytes of the original (declared length while uploading)
  VideoStatus status = VideoStatus::kUploading;
  std::string error;           // a sentence a person understands, when failed
  int64_t created_at_ms = 0;
  int64_t updated_at_ms = 0;   // newest overlay field timestamp
  nlohmann::json media = nlohmann::json::object();  // probe results etc. (later issues)
  bool deleted = false;        // a tombstone exists
  int64_t deleted_at_ms = 0;
};

// Fields to change; unset = unchanged.
struct VideoPatch {
  std::optional<std::string> title, description, error;
  std::optional<VideoStatus> status;
  std::optional<uint64_t> size;
  std::optional<nlohmann::json> media;
};

struct NewVideo {
  std::string id;  // must pass IsValidId
  std::string title, description, original_name, content_type;
  uint64_t size = 0;
  VideoStatus status = VideoStatus::kUploading;
};

// Limits on user-provided text, enforced by Create/Update (invalid_argument).
inline constexpr size_t kMaxTitleBytes = 300;
inline constexpr size_t kMaxDescriptionBytes = 10'000;

// Reads and writes video records on the shared store. Thread-safe.
class VideoRepository {
 public:
  // `store` is rooted at UPLOAD_DIR; `node_id` names this node's overlay file
  // (1..64 chars of [0-9A-Za-z._-], not starting with '.'; throws
  // std::invalid_argument otherwise). Not owned: store and clock must outlive
  // it. At most one repository per node id may write a store.
  VideoRepository(storage::Store& store, std::string node_id, const Clock& clock);

  // already_exists if the id is taken. A blank title becomes the original's
  // file name without extension (else "Untitled video"); Update refuses one.
  Result<Video> Create(const NewVideo& v);
  // not_found if missing or deleted; corrupt if video.json is unreadable
  // (damaged, or being created at this very moment by another node).
  Result<Video> Get(const std::string& id);
  Result<Video> GetIncludingDeleted(const std::string& id);
  Result<Video> Update(const std::string& id, const VideoPatch& patch);  // not_found if deleted
  Result<void> MarkDeleted(const std::string& id);  // tombstone; not_found if missing
  // Ids of every directory holding a video.json (deleted ones included).
  Result<std::vector<std::string>> ListIds();
  // Removes a deleted video's files once its tombstone is older than grace.
  // Returns true when reclaimed.
  Result<bool> ReclaimIfExpired(const std::string& id, int64_t grace_ms);
  // Cheap fingerprint of a video's files (names, sizes, mtimes) so that an
  // index can tell whether it must re-read the video.
  Result<std::string> Fingerprint(const std::string& id);

  // Path of the original inside the store: "<id>/original".
  static std::string OriginalPath(const std::string& id);

 private:
  storage::Store& store_;
  std::string node_id_;
  const Clock& clock_;
  // Serialise this node's read-modify-write of an overlay, striped by id.
  std::array<std::mutex, 16> update_mu_;
};

// The video as the API shows it (URLs included, relative to the host).
nlohmann::json ToJson(const Video& v);

struct Query {
  std::string q;                 // substring search over title and description (case-insensitive)
  std::string sort = "newest";   // newest | oldest | title
  size_t limit = 24;             // 1..100
  std::string cursor;            // opaque, from a previous Page
};

struct Page {
  std::vector<Video> items;
  std::string next_cursor;       // empty at the end
  uint64_t total = 0;            // matches of the query
};

// The local index: SQLite in STATE_DIR, a cache rebuilt from the repository
// when missing, corrupt or stale. Thread-safe.
class Index {
 public:
  virtual ~Index() = default;
  virtual Result<void> Put(const Video& v) = 0;   // insert or replace (deleted -> removed)
  virtual Result<void> Remove(const std::string& id) = 0;
  virtual Result<Page> Find(const Query& q) = 0;  // invalid_argument for a bad cursor/sort/limit
  // Re-reads every video whose fingerprint changed since the last sync, drops
  // those gone from storage. Returns the number of videos re-read.
  // `changed`, when set, is called after the sync with the id of every video
  // added, changed or dropped (so live pages hear of other nodes' writes).
  virtual Result<size_t> SyncFrom(VideoRepository& repo,
                                  const std::function<void(const std::string&)>& changed = {}) = 0;
  virtual size_t size() = 0;
};

// Opens (creating or rebuilding if unreadable) the index at `sqlite_path`.
Result<std::unique_ptr<Index>> OpenIndex(const std::string& sqlite_path);

}  // namespace hub::catalog

template <>
struct std::is_error_code_enum<hub::catalog::errc> : std::true_type {};
