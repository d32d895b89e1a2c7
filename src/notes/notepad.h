#pragma once
// The community notepad on shared storage: notes as per-node append-only logs
// of checksummed records (one writer per file), merged by every reader through
// the CRDT (doc.h), with snapshots that keep loading fast. See
// src/notes/README.md ("Storage") for the layout and the record format.
//
// Thread-safe: every method may be called from any thread. Methods that write
// block on storage (fsync): call them off the network threads.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/result.h"
#include "notes/doc.h"
#include "storage/store.h"

namespace hub::notes {

// Errors of the notepad beyond those of doc.h and storage.
enum class notepad_errc {
  not_found = 1,  // no such note (or it is deleted and the caller asked for live notes)
  bad_title,      // empty after trimming, longer than kMaxTitleBytes, or not UTF-8
  stale,          // require_current was set and the note moved on since `base`
  deleted,        // the note is deleted (edits refused until it is restored)
  gone,           // deleted longer ago than the retention: cannot be restored
  bad_uid,        // an idempotency key that is not 1..64 printable ASCII characters
};
const std::error_category& notepad_category();
inline std::error_code make_error_code(notepad_errc e) {
  return {static_cast<int>(e), notepad_category()};
}

inline constexpr size_t kMaxTitleBytes = 200;

struct NoteInfo {
  std::string id;
  std::string title;
  uint64_t size = 0;         // UTF-8 bytes of the current text
  uint64_t length = 0;       // code points
  std::string version;       // Version::Encode() of the current state
  int64_t created_ms = 0;    // unix ms
  int64_t updated_ms = 0;    // last edit, rename, delete or restore
  std::string updated_by;    // author of that change
  bool deleted = false;
  int64_t deleted_ms = 0;    // when deleted (0 when live)
};

// One entry of a note's history: an accepted edit request (any node).
struct Revision {
  int64_t at_ms = 0;
  std::string author;        // the display name given with the edit
  std::string node;          // the node that wrote it
  uint64_t size = 0;         // bytes of the text right after it, on its writer
  std::string version;       // token of the state right after it (TextAt works on it)
};

// What changed in a note, as seen by this node: `edits` turn the text at
// `from` into the text at `to` (code points, splice semantics as Doc::Apply).
struct NoteChange {
  std::string id;
  Version from, to;
  std::vector<Edit> edits;
  uint64_t size = 0;         // bytes after
  std::string origin;        // the origin passed to ApplyEdits ("local" for own metadata changes); "" for other nodes' changes
  bool metadata = false;     // title / deleted changed (edits then empty)
};

struct EditOutcome {
  Version version;           // the state after the edits (includes base)
  uint64_t size = 0, length = 0;
  bool duplicate = false;    // the uid was applied before: nothing done, its outcome returned
};

struct NotepadOptions {
  std::string node;          // this node's id: its log's name and the CRDT agent
  uint64_t max_size_bytes = 100ull << 20;  // NOTEPAD_MAX_SIZE_MB
  int64_t restore_window_ms = 30ll * 24 * 3600 * 1000;  // deleted notes restorable this long
  uint64_t snapshot_after_bytes = 4ull << 20;  // write a snapshot after this much new log
  size_t max_history = 10'000;  // revisions kept listable per note (oldest dropped from the list)
  size_t max_uids = 10'000;     // idempotency keys remembered per note (oldest forgotten)
};

class Notepad {
 public:
  // `store` is rooted at NOTEPAD_STORAGE_PATH; `clock` stamps records. Both
  // must outlive the notepad. Loads nothing yet: call Open().
  Notepad(storage::Store& store, const Clock& clock, NotepadOptions options);
  ~Notepad();

  // Loads every note (snapshot + logs), cuts a torn tail of this node's own
  // logs. Notes that fail to load are logged and skipped (not fatal).
  Result<void> Open();

  Result<NoteInfo> Create(std::string_view title, std::string_view text, std::string_view author);
  // Live notes (and deleted ones when include_deleted), sorted by updated_ms
  // descending; `query` (case-insensitive, ASCII folding) must occur in the
  // title or the text when non-empty.
  std::vector<NoteInfo> List(std::string_view query, bool include_deleted) const;
  // A live note and its current text. not_found also for deleted notes
  // unless include_deleted.
  Result<NoteInfo> Get(std::string_view id, std::string* text, bool include_deleted = false) const;
  Result<NoteInfo> Rename(std::string_view id, std::string_view title, std::string_view author);
  Result<void> Delete(std::string_view id, std::string_view author);
  Result<NoteInfo> Restore(std::string_view id, std::string_view author);

  // Applies edits relative to `base` (Doc::Apply), writes them to this node's
  // log (checksummed, fsynced) and only then answers. On any error the note
  // is unchanged, in memory and on storage. With require_current, refuses
  // with `stale` unless base is the current version. `agent` ("" = the node)
  // is the CRDT writer id; `origin` is passed through to the listener.
  // `uid` ("" = none) is an idempotency key (1..64 printable ASCII, no
  // space): when an ops record of any log read so far (this node's, or
  // another's once polled) carries it — among the last max_uids per note —
  // nothing is applied, the listener is not called, and the outcome recorded
  // then is returned with `duplicate` set (before the stale check).
  Result<EditOutcome> ApplyEdits(std::string_view id, const Version& base,
                                 std::span<const Edit> edits, std::string_view author,
                                 bool require_current = false, std::string_view agent = {},
                                 std::string_view origin = {}, std::string_view uid = {});

  // The text at an earlier state (a Revision's version).
  Result<std::string> TextAt(std::string_view id, const Version& version) const;
  // Newest first.
  Result<std::vector<Revision>> History(std::string_view id) const;
  // Makes the text equal to that at `version` with a new edit on top (history
  // is never rewritten).
  Result<EditOutcome> RestoreRevision(std::string_view id, const Version& version,
                                      std::string_view author);
  // Edits turning the text at `since` into the current text (catch-up).
  Result<std::vector<Edit>> ChangesSince(std::string_view id, const Version& since,
                                         Version* current) const;

  // Reads what other nodes appended (and notes they created) since the last
  // poll; a stat per log, reads only what grew. Returns the number of notes
  // that changed. Safe to call often (the app does, every second).
  size_t Poll();
  // Same for one note (after a cluster notification).
  void PollNote(std::string_view id);

  // Called after every change of a note, local or remote, in the order the
  // changes were applied, while the note is locked: must be quick and must
  // not call back into the notepad for the same note.
  using Listener = std::function<void(const NoteChange&)>;
  // Replaces every listener with this one.
  void SetListener(Listener listener);
  // Adds one more (the cluster's hint and the notepad's sessions both listen).
  void AddListener(Listener listener);

  // Removes notes deleted longer ago than the restore window (their
  // directories). Returns how many.
  size_t Sweep();

  struct Stats {
    size_t notes = 0;
    uint64_t log_bytes_written = 0, records_written = 0, torn_tails_cut = 0, snapshots_written = 0;
    uint64_t records_read = 0, bad_records = 0;
  };
  Stats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace hub::notes

template <>
struct std::is_error_code_enum<hub::notes::notepad_errc> : std::true_type {};
