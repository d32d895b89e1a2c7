// The notepad on shared storage. Layout, record format and invariants:
// src/notes/README.md ("Storage"); codecs: log.h.
//
// Locking: Impl::mu_ guards the map of notes only; each Note has its own
// mutex guarding all of its state (document, metadata, cursors, writer).
// Storage I/O for a note happens under its mutex, never under Impl::mu_.

#include "notes/notepad.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <map>
#include <mutex>
#include <stdexcept>

#include "core/ids.h"
#include "notes/log.h"

namespace hub::notes {
namespace {

class Category : public std::error_category {
 public:
  const char* name() const noexcept override { return "notepad"; }
  std::string message(int c) const override {
    switch (static_cast<notepad_errc>(c)) {
      case notepad_errc::not_found: return "note not found";
      case notepad_errc::bad_title: return "bad note title";
      case notepad_errc::stale: return "the note changed since the given version";
      case notepad_errc::deleted: return "the note is deleted";
      case notepad_errc::gone: return "the note was deleted too long ago to be restored";
      case notepad_errc::bad_uid: return "bad edit uid";
    }
    return "unknown";
  }
};

Error Fail(notepad_errc e, std::string message) {
  return MakeError(make_error_code(e), std::move(message));
}

constexpr size_t kReadChunk = 1 << 20;
constexpr size_t kSnapshotPrefix = 64 << 10;
constexpr std::string_view kLogSuffix = ".log";
constexpr std::string_view kSnapSuffix = ".snap";

std::string LogsDir(std::string_view id) { return std::string(id) + "/logs"; }
std::string LogPath(std::string_view id, std::string_view node) {
  return LogsDir(id) + "/" + std::string(node) + std::string(kLogSuffix);
}
std::string SnapsDir(std::string_view id) { return std::string(id) + "/snapshots"; }
std::string SnapPath(std::string_view id, std::string_view node) {
  return SnapsDir(id) + "/" + std::string(node) + std::string(kSnapSuffix);
}

// ---- text helpers ----

// Length of the valid UTF-8 sequence at s[i] (its code point in *cp), 0 if invalid.
size_t Utf8At(std::string_view s, size_t i, char32_t* cp) {
  auto b = [&](size_t k) { return static_cast<uint8_t>(s[i + k]); };
  uint8_t c = b(0);
  if (c < 0x80) {
    *cp = c;
    return 1;
  }
  size_t n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
  if (n == 0 || c > 0xF4 || i + n > s.size()) return 0;
  char32_t v = c & (0x7F >> n);
  for (size_t k = 1; k < n; ++k) {
    if ((b(k) & 0xC0) != 0x80) return 0;
    v = (v << 6) | (b(k) & 0x3F);
  }
  if ((n == 3 && v < 0x800) || (n == 4 && (v < 0x10000 || v > 0x10FFFF)) ||
      (v >= 0xD800 && v <= 0xDFFF)) {
    return 0;
  }
  *cp = v;
  return n;
}

bool IsControl(char32_t c) { return c < 0x20 || (c >= 0x7F && c <= 0x9F); }

uint64_t CodePoints(std::string_view s) {
  uint64_t n = 0;
  for (char c : s) n += (static_cast<uint8_t>(c) & 0xC0) != 0x80;
  return n;
}

Result<std::string> CleanTitle(std::string_view title) {
  auto space = [](char c) { return c == ' ' || (c >= '\t' && c <= '\r'); };
  while (!title.empty() && space(title.front())) title.remove_prefix(1);
  while (!title.empty() && space(title.back())) title.remove_suffix(1);
  auto bad = [] {
    return Fail(notepad_errc::bad_title,
                "a title must be 1 to " + std::to_string(kMaxTitleBytes) +
                    " bytes of UTF-8 text without control characters");
  };
  if (title.empty() || title.size() > kMaxTitleBytes) return bad();
  for (size_t i = 0; i < title.size();) {
    char32_t cp = 0;
    size_t n = Utf8At(title, i, &cp);
    if (n == 0 || IsControl(cp)) return bad();
    i += n;
  }
  return std::string(title);
}

// At most kMaxAuthorBytes of UTF-8, cut on a code point boundary; invalid
// bytes become '?', control characters are dropped.
std::string CleanAuthor(std::string_view author) {
  std::string out;
  for (size_t i = 0; i < author.size();) {
    char32_t cp = 0;
    size_t n = Utf8At(author, i, &cp);
    std::string_view piece = n ? author.substr(i, n) : std::string_view("?");
    i += n ? n : 1;
    if (n && IsControl(cp)) continue;
    if (out.size() + piece.size() > kMaxAuthorBytes) break;
    out.append(piece);
  }
  return out;
}

std::string AsciiLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

bool IsValidNode(std::string_view node) {
  if (node.empty() || node.size() > kMaxAgentBytes || node == "." || node == ".." ||
      node.starts_with(".tmp-")) {
    return false;
  }
  return std::all_of(node.begin(), node.end(), [](char c) {
    auto u = static_cast<uint8_t>(c);
    return u > 0x20 && u < 0x7F && c != '/' && c != '\\';
  });
}

// The node of a log or snapshot file name ("" when it is not one).
std::string NodeOf(std::string_view name, std::string_view suffix) {
  if (!name.ends_with(suffix)) return {};
  std::string_view node = name.substr(0, name.size() - suffix.size());
  return IsValidNode(node) ? std::string(node) : std::string();
}

// The one edit turning `from` into `to`: common prefix and suffix kept.
Edit DiffEdit(std::string_view from, std::string_view to) {
  size_t p = 0, max = std::min(from.size(), to.size());
  while (p < max && from[p] == to[p]) ++p;
  auto cont = [](char c) { return (static_cast<uint8_t>(c) & 0xC0) == 0x80; };
  while (p > 0 && p < from.size() && cont(from[p])) --p;
  size_t s = 0;
  while (s < max - p && from[from.size() - 1 - s] == to[to.size() - 1 - s]) ++s;
  while (s > 0 && cont(from[from.size() - s])) --s;
  Edit e;
  e.position = static_cast<int64_t>(CodePoints(from.substr(0, p)));
  e.delete_count = static_cast<int64_t>(CodePoints(from.substr(p, from.size() - s - p)));
  e.insert = std::string(to.substr(p, to.size() - s - p));
  return e;
}

Result<void> ReadFully(storage::ReadableFile& f, uint64_t offset, char* dst, size_t n,
                       size_t* got) {
  *got = 0;
  while (*got < n) {
    auto r = f.ReadAt(offset + *got, std::span<char>(dst + *got, n - *got));
    if (!r) return r.error();
    if (*r == 0) break;
    *got += *r;
  }
  return Ok();
}

struct LogCursor {
  uint64_t offset = 0;  // bytes consumed: the header and the good records
  bool header = false;
  uint64_t reported_at = UINT64_MAX;  // offset of damage already reported
};

// Everything about a note that is rebuilt from storage.
struct NoteState {
  explicit NoteState(const DocOptions& o) : doc(o) {}
  Doc doc;
  NoteMeta meta;
  std::vector<Revision> revisions;
  std::map<std::string, LogCursor, std::less<>> logs;  // by node
  uint64_t since_snapshot = 0;  // log bytes read or written since a snapshot was loaded or written
  std::string own_damage;       // why this node must not append to its log ("" = fine)
  // Recent idempotency keys of ops records (all logs), oldest first in uid_order.
  std::map<std::string, UidOutcome, std::less<>> uids;
  std::deque<std::string> uid_order;
};

// What loading found about this node's own log.
struct OwnLog {
  bool torn = false;  // bytes past the last good record: cut them before appending
};

struct Note {
  Note(std::string i, const DocOptions& o) : id(std::move(i)), st(o) {}
  const std::string id;
  std::mutex mu;
  NoteState st;                                   // guarded by mu
  std::unique_ptr<storage::WritableFile> writer;  // this node's log; guarded by mu
  bool removed = false;                           // swept: not in the map any more
  // The in-memory state diverged from storage and reloading failed; what
  // listeners last saw, to tell them the difference once reloaded.
  bool broken = false;
  Version shown_version;
  uint64_t shown_length = 0;
  NoteMeta shown_meta;
  std::optional<std::string> lower_text;  // search cache
};

bool VisibleMetaDiffers(const NoteMeta& a, const NoteMeta& b) {
  return a.created != b.created || a.title != b.title || a.deleted != b.deleted;
}

// Edits turning the text at `from` (of `from_length` code points) into the
// document's text; the whole text when `from` is not in the document (a
// reload after a log was cut).
std::vector<Edit> EditsSince(const Doc& doc, const Version& from, uint64_t from_length) {
  if (doc.version().Includes(from)) {
    if (auto ch = doc.ChangesSince(from); ch) return std::move(*ch);
  }
  return {Edit{0, static_cast<int64_t>(from_length), doc.Text()}};
}

}  // namespace

const std::error_category& notepad_category() {
  static Category c;
  return c;
}

struct Notepad::Impl {
  Impl(storage::Store& s, const Clock& c, NotepadOptions o)
      : store(s),
        clock(c),
        opt(std::move(o)),
        doc_opt{.agent = opt.node, .max_size_bytes = opt.max_size_bytes},
        max_record(MaxRecordBytes(opt.max_size_bytes)),
        max_snapshot(opt.max_size_bytes * 8 + (64u << 20)) {}

  storage::Store& store;
  const Clock& clock;
  const NotepadOptions opt;
  const DocOptions doc_opt;
  const uint64_t max_record;
  const uint64_t max_snapshot;

  mutable std::mutex mu;
  std::map<std::string, std::shared_ptr<Note>, std::less<>> notes;  // guarded by mu

  std::mutex listener_mu;
  std::shared_ptr<const std::vector<Listener>> listeners;  // guarded by listener_mu; copy on write

  std::atomic<uint64_t> log_bytes_written{0}, records_written{0}, torn_tails_cut{0},
      snapshots_written{0}, records_read{0}, bad_records{0};

  // ---- lookup ----

  std::shared_ptr<Note> Find(std::string_view id) const {
    std::lock_guard lock(mu);
    auto it = notes.find(id);
    return it == notes.end() ? nullptr : it->second;
  }

  std::vector<std::shared_ptr<Note>> All() const {
    std::lock_guard lock(mu);
    std::vector<std::shared_ptr<Note>> out;
    out.reserve(notes.size());
    for (const auto& [id, n] : notes) out.push_back(n);
    return out;
  }

  static Error NotFound(std::string_view id) {
    return Fail(notepad_errc::not_found,
                "no note with id '" + std::string(id) + "'; list the notes to find it");
  }

  bool Gone(const NoteMeta& m) const {
    return m.deleted && clock.NowUnixMillis() - m.deleted_at.at_ms > opt.restore_window_ms;
  }

  Error GoneError(std::string_view id) const {
    int64_t w = opt.restore_window_ms;
    std::string window = w >= 86'400'000 ? std::to_string(w / 86'400'000) + " days"
                                         : std::to_string(w / 1000) + " s";
    return Fail(notepad_errc::gone, "note '" + std::string(id) +
                                        "' was deleted longer ago than the restore window (" +
                                        window + ") and cannot be restored");
  }

  // With n.mu held: the note exists (created, not swept), reloaded if it
  // was broken.
  Result<void> Ready(Note& n) {
    if (n.removed) return NotFound(n.id);
    if (n.broken) {
      Reload(n, n.shown_version, n.shown_length, n.shown_meta);
      if (n.broken) {
        return MakeError(make_error_code(storage::errc::io_error),
                         "note '" + n.id + "' could not be read back from the storage; retry later");
      }
    }
    if (!n.st.meta.created) return NotFound(n.id);
    return Ok();
  }

  NoteInfo Info(const Note& n) const {
    const NoteState& s = n.st;
    NoteInfo i;
    i.id = n.id;
    i.title = s.meta.title;
    i.size = s.doc.Size();
    i.length = s.doc.Length();
    i.version = s.doc.version().Encode();
    i.created_ms = s.meta.created_ms;
    i.updated_ms = s.meta.updated_at.at_ms;
    i.updated_by = s.meta.updated_by;
    i.deleted = s.meta.deleted;
    i.deleted_ms = s.meta.deleted ? s.meta.deleted_at.at_ms : 0;
    return i;
  }

  void Notify(const NoteChange& c) {
    std::shared_ptr<const std::vector<Listener>> ls;
    {
      std::lock_guard lock(listener_mu);
      ls = listeners;
    }
    if (!ls) return;
    for (const auto& l : *ls) {
      if (l) l(c);
    }
  }

  // `origin` "local" for this node's own changes (create, rename, delete,
  // restore); "" for what was read from other nodes' logs.
  void NotifyMeta(const Note& n, std::string origin = {}) {
    NoteChange c;
    c.id = n.id;
    c.origin = std::move(origin);
    c.from = c.to = n.st.doc.version();
    c.size = n.st.doc.Size();
    c.metadata = true;
    Notify(c);
  }

  void AddRevision(NoteState& s, Revision r) const {
    if (opt.max_history == 0) return;
    s.revisions.push_back(std::move(r));
    if (s.revisions.size() > 2 * opt.max_history) {
      std::stable_sort(s.revisions.begin(), s.revisions.end(),
                       [](const Revision& a, const Revision& b) { return a.at_ms < b.at_ms; });
      s.revisions.erase(s.revisions.begin(),
                        s.revisions.end() - static_cast<ptrdiff_t>(opt.max_history));
    }
  }

  void RememberUid(NoteState& s, UidOutcome u) const {
    if (opt.max_uids == 0 || u.uid.empty()) return;
    std::string key = u.uid;
    if (!s.uids.emplace(key, std::move(u)).second) return;  // the first one stays
    s.uid_order.push_back(std::move(key));
    while (s.uid_order.size() > opt.max_uids) {
      s.uids.erase(s.uid_order.front());
      s.uid_order.pop_front();
    }
  }

  // Newest first, at most max_history.
  std::vector<Revision> NewestRevisions(const NoteState& s) const {
    std::vector<Revision> r(s.revisions.rbegin(), s.revisions.rend());
    std::stable_sort(r.begin(), r.end(),
                     [](const Revision& a, const Revision& b) { return a.at_ms > b.at_ms; });
    if (r.size() > opt.max_history) r.resize(opt.max_history);
    return r;
  }

  // ---- reading logs ----

  // One record of `node`'s log.
  void ApplyPayload(const std::string& id, NoteState& s, const std::string& node,
                    std::string_view payload, bool* meta_changed) {
    ++records_read;
    auto rec = DecodeRecord(payload);
    if (!rec) {
      ++bad_records;
      spdlog::warn("notes: {}: skipping a malformed record of {}'s log: {}", id, node,
                   rec.error().message);
      return;
    }
    if (!IsKnownRecordType(rec->type)) return;  // written by a newer version
    if (rec->type == RecordType::kOps) {
      if (auto a = s.doc.ApplyRemote(rec->ops); !a) {
        ++bad_records;
        spdlog::warn("notes: {}: operations in {}'s log not applied: {}", id, node,
                     a.error().message);
        return;
      }
      AddRevision(s, Revision{rec->at_ms, rec->author, node, rec->size, rec->version});
      if (!rec->uid.empty()) {
        RememberUid(s, UidOutcome{rec->uid, rec->version, rec->size, rec->length});
      }
    }
    *meta_changed |= ApplyToMeta(s.meta, *rec, node);
  }

  struct ReadResult {
    bool meta = false;     // visible metadata changed
    bool tail = false;     // stopped before the end: incomplete or damaged tail
    bool damaged = false;  // damage that is not a tail (a bad header, a bad record before good ones)
    bool shrunk = false;   // the file is shorter than what was consumed
  };

  void ReportDamage(const std::string& id, const std::string& node, LogCursor& cur,
                    const std::string& what) {
    if (cur.reported_at == cur.offset) return;
    cur.reported_at = cur.offset;
    ++bad_records;
    spdlog::warn("notes: {}: {}'s log is damaged at offset {} ({}); its later records are "
                 "ignored until it is repaired",
                 id, node, cur.offset, what);
  }

  // Reads `node`'s log from its cursor to the end of the file, applying
  // every good record.
  Result<ReadResult> ReadLog(const std::string& id, const std::string& node, NoteState& s) {
    ReadResult r;
    auto file = store.OpenRead(LogPath(id, node));
    if (!file) {
      if (file.code() == storage::errc::not_found) return r;
      return file.error();
    }
    storage::ReadableFile& f = **file;
    uint64_t size = f.size();
    LogCursor& cur = s.logs[node];
    if (size < cur.offset) {
      r.shrunk = true;
      return r;
    }
    std::string buf;
    auto fill = [&](uint64_t at, size_t want) -> Result<void> {
      size_t old = buf.size();
      size_t n = static_cast<size_t>(std::min<uint64_t>(want, size - at));
      buf.resize(old + n);
      size_t got = 0;
      HUB_TRY(ReadFully(f, at, buf.data() + old, n, &got));
      buf.resize(old + got);
      if (got < n) size = at + got;  // shorter than its size at open: read what is there
      return Ok();
    };
    if (!cur.header) {
      HUB_TRY(fill(0, kLogMagic.size() + 2 + kMaxAgentBytes));
      std::string header_node;
      size_t header_bytes = 0;
      ParseStatus ps = ParseLogHeader(buf, &header_node, &header_bytes);
      if (ps == ParseStatus::kIncomplete) {
        r.tail = true;
        return r;
      }
      if (ps == ParseStatus::kBad || header_node != node) {
        ReportDamage(id, node, cur, ps == ParseStatus::kBad ? "bad header" : "header names " +
                                                                                 header_node);
        r.damaged = true;
        return r;
      }
      cur.header = true;
      cur.offset = header_bytes;
      s.since_snapshot += header_bytes;
      buf.erase(0, header_bytes);
    }
    uint64_t pos = cur.offset;  // file offset of buf[0]
    size_t need = 0;
    while (true) {
      uint64_t end = pos + buf.size();
      size_t want = std::max(kReadChunk, need);
      if (end < size && buf.size() < want) HUB_TRY(fill(end, want - buf.size()));
      bool eof = pos + buf.size() >= size;
      LogScan scan = ScanLogRecords(buf, max_record);
      for (std::string_view p : scan.records) ApplyPayload(id, s, node, p, &r.meta);
      pos += scan.end;
      cur.offset = pos;
      s.since_snapshot += scan.end;
      buf.erase(0, scan.end);
      if (scan.stop == LogStop::kEnd) {
        if (eof) break;
        need = 0;
        continue;
      }
      if (scan.stop == LogStop::kCorrupt) {
        ReportDamage(id, node, cur, "a record with a bad checksum or length");
        r.damaged = true;
        break;
      }
      if (!eof && scan.need > buf.size()) {
        need = scan.need;
        continue;
      }
      r.tail = true;
      break;
    }
    return r;
  }

  Result<std::vector<std::string>> ListNodes(std::string_view dir, std::string_view suffix) {
    auto names = store.List(dir);
    if (!names) {
      if (names.code() == storage::errc::not_found) return std::vector<std::string>{};
      return names.error();
    }
    std::vector<std::string> nodes;
    for (const std::string& name : *names) {
      std::string node = NodeOf(name, suffix);
      if (!node.empty()) nodes.push_back(std::move(node));
    }
    return nodes;
  }

  // Loads the best valid snapshot into `s`. False when there is none.
  bool LoadSnapshot(const std::string& id, NoteState& s) {
    auto nodes = ListNodes(SnapsDir(id), kSnapSuffix);
    if (!nodes || nodes->empty()) return false;
    struct Candidate {
      std::string path;
      uint64_t covered = 0;
    };
    std::vector<Candidate> candidates;
    for (const std::string& node : *nodes) {
      std::string path = SnapPath(id, node);
      auto f = store.OpenRead(path);
      if (!f) continue;
      std::vector<std::pair<std::string, uint64_t>> covered;
      ParseStatus ps = ParseStatus::kIncomplete;
      for (size_t want : {kSnapshotPrefix, kReadChunk}) {
        std::string prefix(static_cast<size_t>(std::min<uint64_t>(want, (*f)->size())), '\0');
        size_t got = 0;
        if (!ReadFully(**f, 0, prefix.data(), prefix.size(), &got)) break;
        prefix.resize(got);
        ps = DecodeSnapshotCoverage(prefix, &covered);
        if (ps != ParseStatus::kIncomplete || got < want) break;
      }
      if (ps != ParseStatus::kOk) continue;
      // Usable only if every log it covers is still that long (a log is
      // never shortened past a good record; if it was, rather read the logs).
      uint64_t total = 0;
      bool usable = true;
      for (const auto& [log_node, offset] : covered) {
        if (!IsValidNode(log_node)) { usable = false; break; }
        auto st = store.Stat(LogPath(id, log_node));
        if (!st || st->size < offset) { usable = false; break; }
        total += offset;
      }
      if (usable) candidates.push_back({std::move(path), total});
    }
    std::stable_sort(candidates.begin(), candidates.end(),
                     [](const Candidate& a, const Candidate& b) { return a.covered > b.covered; });
    for (const Candidate& c : candidates) {
      auto bytes = store.ReadAll(c.path, static_cast<size_t>(max_snapshot));
      if (!bytes) {
        spdlog::warn("notes: {}: cannot read snapshot {}: {}", id, c.path, bytes.error().message);
        continue;
      }
      auto snap = DecodeSnapshot(*bytes);
      if (!snap) {
        spdlog::warn("notes: {}: ignoring snapshot {}: {}", id, c.path, snap.error().message);
        continue;
      }
      auto doc = Doc::Load(snap->doc, doc_opt);
      if (!doc) {
        spdlog::warn("notes: {}: ignoring snapshot {}: {}", id, c.path, doc.error().message);
        continue;
      }
      s.doc = std::move(*doc);
      s.meta = std::move(snap->meta);
      s.revisions = std::move(snap->revisions);
      for (UidOutcome& u : snap->uids) RememberUid(s, std::move(u));
      for (const auto& [node, offset] : snap->covered) {
        s.logs[node] = LogCursor{.offset = offset, .header = offset > 0};
      }
      return true;
    }
    return false;
  }

  // The note as storage has it: the best snapshot, then every log from
  // where the snapshot stops.
  Result<NoteState> LoadState(const std::string& id, OwnLog* own) {
    NoteState s(doc_opt);
    auto nodes = ListNodes(LogsDir(id), kLogSuffix);
    if (!nodes) return nodes.error();
    LoadSnapshot(id, s);
    s.since_snapshot = 0;
    for (const std::string& node : *nodes) {
      auto r = ReadLog(id, node, s);
      if (!r) return r.error();
      if (node != opt.node) continue;
      if (r->damaged) {
        s.own_damage = "this node's log of note '" + id + "' is damaged at offset " +
                       std::to_string(s.logs[node].offset) +
                       " (records follow the damage); this node cannot edit the note until an "
                       "operator repairs the log";
      } else if (r->tail || r->shrunk) {
        own->torn = true;
      }
    }
    return s;
  }

  // With n.mu held (or n not shared yet): cuts a torn tail of this node's log.
  void CutOwnTail(Note& n) {
    uint64_t valid = n.st.logs[opt.node].offset;
    auto f = store.OpenWrite(LogPath(n.id, opt.node), /*create=*/false);
    if (!f) {
      spdlog::warn("notes: {}: cannot open own log to cut its torn tail: {}", n.id,
                   f.error().message);
      return;
    }
    if ((*f)->size() > valid) {
      if (auto t = (*f)->Truncate(valid); !t) {
        spdlog::warn("notes: {}: cannot cut own log's torn tail: {}", n.id, t.error().message);
        return;
      }
      ++torn_tails_cut;
      spdlog::warn("notes: {}: cut a torn tail of this node's log at offset {}", n.id, valid);
    }
    if ((*f)->size() == valid) n.writer = std::move(*f);
  }

  Result<std::shared_ptr<Note>> LoadNote(const std::string& id) {
    auto n = std::make_shared<Note>(id, doc_opt);
    OwnLog own;
    auto s = LoadState(id, &own);
    if (!s) return s.error();
    n->st = std::move(*s);
    if (own.torn) CutOwnTail(*n);
    MaybeSnapshot(*n);
    return n;
  }

  // With n.mu held: replaces the in-memory state by storage's, after a
  // failed write; listeners learn the difference from what they saw.
  void Reload(Note& n, Version shown, uint64_t shown_length, NoteMeta shown_meta) {
    OwnLog own;
    auto s = LoadState(n.id, &own);
    if (!s) {
      spdlog::warn("notes: {}: cannot reload the note from storage: {}", n.id, s.error().message);
      if (!n.broken) {
        n.broken = true;
        n.shown_version = shown;
        n.shown_length = shown_length;
        n.shown_meta = shown_meta;
      }
      return;
    }
    n.broken = false;
    n.st = std::move(*s);
    n.lower_text.reset();
    // A writer left at a different size than what was read is cut on next use.
    if (n.writer && n.writer->size() != n.st.logs[opt.node].offset) n.writer.reset();
    Version now = n.st.doc.version();
    if (now != shown) {
      NoteChange c;
      c.id = n.id;
      c.from = shown;
      c.to = now;
      c.size = n.st.doc.Size();
      c.edits = EditsSince(n.st.doc, shown, shown_length);
      Notify(c);
    }
    if (VisibleMetaDiffers(shown_meta, n.st.meta)) NotifyMeta(n);
  }

  // ---- writing ----

  // With n.mu held: this node's log, open and cut back to the last good record.
  Result<void> EnsureWriter(Note& n) {
    if (!n.st.own_damage.empty()) {
      return MakeError(make_error_code(storage::errc::io_error), n.st.own_damage);
    }
    if (n.writer) return Ok();
    auto f = store.OpenWrite(LogPath(n.id, opt.node), /*create=*/true);
    if (!f) return f.error();
    uint64_t valid = n.st.logs[opt.node].offset;
    if ((*f)->size() > valid) {
      HUB_TRY((*f)->Truncate(valid));
      ++torn_tails_cut;
      spdlog::warn("notes: {}: cut a torn tail of this node's log at offset {}", n.id, valid);
    } else if ((*f)->size() < valid) {
      return MakeError(make_error_code(storage::errc::io_error),
                       "this node's log of note '" + n.id + "' is shorter than what was read (" +
                           std::to_string((*f)->size()) + " < " + std::to_string(valid) +
                           " bytes); was it replaced?");
    }
    n.writer = std::move(*f);
    return Ok();
  }

  // With n.mu held: appends framed records to this node's log and syncs.
  // On failure the log is cut back (or, if that fails too, closed so that
  // the next writer cuts it) and the error returned: the caller reloads.
  Result<void> AppendOwn(Note& n, std::string_view frames) {
    HUB_TRY(EnsureWriter(n));
    uint64_t before = n.writer->size();
    std::string bytes;
    if (before == 0) bytes = EncodeLogHeader(opt.node);
    bytes.append(frames);
    auto r = n.writer->Append(bytes);
    if (r) r = n.writer->Sync();
    if (!r) {
      if (!n.writer->Truncate(before)) {
        (void)n.writer->Close();
        n.writer.reset();
      }
      return r.error();
    }
    LogCursor& cur = n.st.logs[opt.node];
    cur.header = true;
    cur.offset = n.writer->size();
    n.st.since_snapshot += bytes.size();
    log_bytes_written += bytes.size();
    return Ok();
  }

  // With n.mu held: writes one metadata record and applies it.
  Result<void> WriteMeta(Note& n, LogRecord rec) {
    std::string frame;
    AppendLogRecord(frame, EncodeRecord(rec));
    NoteMeta shown = n.st.meta;
    if (auto w = AppendOwn(n, frame); !w) {
      Reload(n, n.st.doc.version(), n.st.doc.Length(), shown);
      return w.error();
    }
    ++records_written;
    ApplyToMeta(n.st.meta, rec, opt.node);
    NotifyMeta(n, "local");
    return Ok();
  }

  // With n.mu held: writes a snapshot when enough log was read or written
  // since the last one. A failure is logged, never returned: the logs hold
  // everything anyway.
  void MaybeSnapshot(Note& n) {
    NoteState& s = n.st;
    if (s.since_snapshot <= opt.snapshot_after_bytes || s.doc.pending() != 0) return;
    s.since_snapshot = 0;  // also after a failure: retry after as many bytes again
    std::vector<std::pair<std::string, uint64_t>> covered;
    for (const auto& [node, cur] : s.logs) {
      if (cur.header) covered.emplace_back(node, cur.offset);
    }
    std::vector<Revision> revisions = NewestRevisions(s);
    std::reverse(revisions.begin(), revisions.end());
    std::vector<UidOutcome> uids;
    uids.reserve(s.uid_order.size());
    for (const std::string& k : s.uid_order) uids.push_back(s.uids.find(k)->second);
    std::string bytes = EncodeSnapshot(covered, s.meta, revisions, s.doc.Save(), uids);
    if (auto w = store.WriteAtomic(SnapPath(n.id, opt.node), bytes); !w) {
      spdlog::warn("notes: {}: cannot write a snapshot: {}", n.id, w.error().message);
      return;
    }
    ++snapshots_written;
  }

  EditOutcome Outcome(const Note& n) const {
    return EditOutcome{n.st.doc.version(), n.st.doc.Size(), n.st.doc.Length()};
  }

  // With n.mu held, n Ready and not deleted.
  Result<EditOutcome> ApplyLocked(Note& n, const Version& base, std::span<const Edit> edits,
                                  std::string_view author, bool require_current,
                                  std::string_view agent, std::string_view origin,
                                  std::string_view uid) {
    Doc& doc = n.st.doc;
    if (!uid.empty()) {
      if (auto it = n.st.uids.find(uid); it != n.st.uids.end()) {
        auto v = Version::Decode(it->second.version);
        if (v) return EditOutcome{std::move(*v), it->second.size, it->second.length, true};
      }
    }
    Version prev = doc.version();
    if (require_current && base != prev) {
      return Fail(notepad_errc::stale,
                  "note '" + n.id + "' changed since the version you edited (now " +
                      prev.Encode() + "); fetch it again and reapply your edit");
    }
    if (edits.empty()) return Outcome(n);
    HUB_TRY(EnsureWriter(n));  // before the document changes: it has no undo
    uint64_t prev_length = doc.Length();
    auto applied = agent.empty() ? doc.Apply(base, edits) : doc.Apply(base, edits, agent);
    if (!applied) return applied.error();
    Version now = doc.version();
    if (now == prev) return Outcome(n);  // nothing to write (empty edits)
    LogRecord rec;
    rec.type = RecordType::kOps;
    rec.at_ms = clock.NowUnixMillis();
    rec.author = CleanAuthor(author);
    rec.version = now.Encode();
    rec.size = doc.Size();
    rec.ops = doc.EncodeOps(prev);
    rec.uid = std::string(uid);
    rec.length = doc.Length();
    std::string payload = EncodeRecord(rec);
    if (payload.size() > max_record) {
      Reload(n, prev, prev_length, n.st.meta);
      return MakeError(make_error_code(errc::too_large),
                       "the edit is too large to log (" + std::to_string(payload.size()) +
                           " bytes); split it into smaller edits");
    }
    std::string frame;
    AppendLogRecord(frame, payload);
    if (auto w = AppendOwn(n, frame); !w) {
      Reload(n, prev, prev_length, n.st.meta);
      return w.error();
    }
    ++records_written;
    ApplyToMeta(n.st.meta, rec, opt.node);
    AddRevision(n.st, Revision{rec.at_ms, rec.author, opt.node, rec.size, rec.version});
    RememberUid(n.st, UidOutcome{rec.uid, rec.version, rec.size, rec.length});
    n.lower_text.reset();

    NoteChange c;
    c.id = n.id;
    c.from = prev;
    c.to = now;
    c.size = doc.Size();
    c.origin = std::string(origin);
    if (base == prev) {
      c.edits.assign(edits.begin(), edits.end());
    } else {
      c.edits = EditsSince(doc, prev, prev_length);
    }
    Notify(c);
    MaybeSnapshot(n);
    return Outcome(n);
  }

  // ---- polling ----

  // With n.mu held: reads what other nodes appended. `fresh`: open every
  // log (after a notification) instead of trusting Stat.
  bool PollLocked(Note& n, bool fresh) {
    if (n.removed) return false;
    if (n.broken) {
      Reload(n, n.shown_version, n.shown_length, n.shown_meta);
      return !n.broken;
    }
    auto nodes = ListNodes(LogsDir(n.id), kLogSuffix);
    if (!nodes) {
      spdlog::warn("notes: {}: cannot list logs: {}", n.id, nodes.error().message);
      return false;
    }
    Version prev = n.st.doc.version();
    uint64_t prev_length = n.st.doc.Length();
    NoteMeta prev_meta = n.st.meta;
    bool meta = false, shrunk = false;
    for (const std::string& node : *nodes) {
      if (node == opt.node) continue;
      if (!fresh) {
        auto st = store.Stat(LogPath(n.id, node));
        if (!st) continue;
        auto it = n.st.logs.find(node);
        uint64_t consumed = it == n.st.logs.end() ? 0 : it->second.offset;
        if (st->size == consumed) continue;
      }
      auto r = ReadLog(n.id, node, n.st);
      if (!r) {
        spdlog::warn("notes: {}: cannot read {}'s log: {}", n.id, node, r.error().message);
        continue;
      }
      meta |= r->meta;
      shrunk |= r->shrunk;
    }
    if (shrunk) {
      // A writer cut records we had read (its append failed after we saw
      // it): its next records reuse those operation ids, so start over.
      spdlog::warn("notes: {}: a log got shorter; reloading the note", n.id);
      Reload(n, prev, prev_length, prev_meta);
      return true;
    }
    bool changed = false;
    Version now = n.st.doc.version();
    if (now != prev) {
      changed = true;
      n.lower_text.reset();
      NoteChange c;
      c.id = n.id;
      c.from = prev;
      c.to = now;
      c.size = n.st.doc.Size();
      c.edits = EditsSince(n.st.doc, prev, prev_length);
      if (n.st.meta.created) Notify(c);
    }
    if (meta && VisibleMetaDiffers(prev_meta, n.st.meta)) {
      changed = true;
      NotifyMeta(n);
    }
    MaybeSnapshot(n);
    return changed;
  }

  // Loads a note found on storage and not yet known. True when it is visible.
  bool Discover(const std::string& id) {
    auto loaded = LoadNote(id);
    if (!loaded) {
      spdlog::warn("notes: {}: cannot load the note: {}", id, loaded.error().message);
      return false;
    }
    std::shared_ptr<Note> n = *loaded;
    {
      // A directory without its create record yet is a note being created
      // (here or elsewhere): not registered, so the creator's own object
      // (or a later poll) is the one that counts.
      std::lock_guard note_lock(n->mu);
      if (!n->st.meta.created) return false;
    }
    {
      std::lock_guard lock(mu);
      if (!notes.emplace(id, n).second) return false;  // another poll, or its creator, was first
    }
    std::lock_guard lock(n->mu);
    NotifyMeta(*n);
    return true;
  }
};

Notepad::Notepad(storage::Store& store, const Clock& clock, NotepadOptions options) {
  if (!IsValidNode(options.node)) {
    throw std::invalid_argument("notepad: the node name '" + options.node +
                                "' must be 1 to 64 printable ASCII characters without '/', '\\' "
                                "or spaces");
  }
  impl_ = std::make_unique<Impl>(store, clock, std::move(options));
}

Notepad::~Notepad() = default;

Result<void> Notepad::Open() {
  auto names = impl_->store.List("");
  if (!names) {
    if (names.code() == storage::errc::not_found) return Ok();
    return names.error();
  }
  for (const std::string& id : *names) {
    if (!IsValidId(id) || impl_->Find(id)) continue;
    auto n = impl_->LoadNote(id);
    if (!n) {
      spdlog::warn("notes: {}: cannot load the note: {}", id, n.error().message);
      continue;
    }
    std::lock_guard lock(impl_->mu);
    impl_->notes.emplace(id, *n);
  }
  return Ok();
}

Result<NoteInfo> Notepad::Create(std::string_view title, std::string_view text,
                                 std::string_view author) {
  auto clean = CleanTitle(title);
  if (!clean) return clean.error();
  Impl& m = *impl_;
  int64_t now = m.clock.NowUnixMillis();
  auto n = std::make_shared<Note>(NewId(now), m.doc_opt);
  std::lock_guard lock(n->mu);
  Doc& doc = n->st.doc;
  if (!text.empty()) {
    std::vector<Edit> edits{Edit{0, 0, std::string(text)}};
    if (auto a = doc.Apply(edits); !a) return a.error();
  }
  LogRecord create;
  create.type = RecordType::kCreate;
  create.title = std::move(*clean);
  create.at_ms = now;
  create.author = CleanAuthor(author);
  std::string frames;
  AppendLogRecord(frames, EncodeRecord(create));
  LogRecord ops;
  if (!text.empty()) {
    ops.type = RecordType::kOps;
    ops.at_ms = now;
    ops.author = create.author;
    ops.version = doc.version().Encode();
    ops.size = doc.Size();
    ops.ops = doc.EncodeOps(Version{});
    std::string payload = EncodeRecord(ops);
    if (payload.size() > m.max_record) {
      return MakeError(make_error_code(errc::too_large), "the text is too large for one note");
    }
    AppendLogRecord(frames, payload);
  }
  if (auto w = m.AppendOwn(*n, frames); !w) {
    n->writer.reset();
    (void)m.store.RemoveAll(n->id);  // best effort: a leftover is an invisible note
    return w.error();
  }
  m.records_written += text.empty() ? 1 : 2;
  ApplyToMeta(n->st.meta, create, m.opt.node);
  if (!text.empty()) {
    ApplyToMeta(n->st.meta, ops, m.opt.node);
    m.AddRevision(n->st, Revision{ops.at_ms, ops.author, m.opt.node, ops.size, ops.version});
  }
  {
    // The creator's object wins over one a concurrent poll discovered from
    // the files being written (regression: a note created under load was
    // then "not found" for good).
    std::lock_guard map_lock(m.mu);
    m.notes.insert_or_assign(n->id, n);
  }
  m.NotifyMeta(*n, "local");
  return m.Info(*n);
}

std::vector<NoteInfo> Notepad::List(std::string_view query, bool include_deleted) const {
  Impl& m = *impl_;
  std::string q = AsciiLower(query);
  std::vector<NoteInfo> out;
  for (const auto& n : m.All()) {
    std::lock_guard lock(n->mu);
    if (n->removed || n->broken || !n->st.meta.created) continue;
    if (n->st.meta.deleted && (!include_deleted || m.Gone(n->st.meta))) continue;
    if (!q.empty() && AsciiLower(n->st.meta.title).find(q) == std::string::npos) {
      if (!n->lower_text) n->lower_text = AsciiLower(n->st.doc.Text());
      if (n->lower_text->find(q) == std::string::npos) continue;
    }
    out.push_back(m.Info(*n));
  }
  std::sort(out.begin(), out.end(), [](const NoteInfo& a, const NoteInfo& b) {
    return a.updated_ms != b.updated_ms ? a.updated_ms > b.updated_ms : a.id < b.id;
  });
  return out;
}

Result<NoteInfo> Notepad::Get(std::string_view id, std::string* text, bool include_deleted) const {
  Impl& m = *impl_;
  auto n = m.Find(id);
  if (!n) return Impl::NotFound(id);
  std::lock_guard lock(n->mu);
  HUB_TRY(m.Ready(*n));
  if (n->st.meta.deleted) {
    if (m.Gone(n->st.meta)) return m.GoneError(id);
    if (!include_deleted) return Impl::NotFound(id);
  }
  if (text) *text = n->st.doc.Text();
  return m.Info(*n);
}

Result<NoteInfo> Notepad::Rename(std::string_view id, std::string_view title,
                                 std::string_view author) {
  Impl& m = *impl_;
  auto clean = CleanTitle(title);
  if (!clean) return clean.error();
  auto n = m.Find(id);
  if (!n) return Impl::NotFound(id);
  std::lock_guard lock(n->mu);
  HUB_TRY(m.Ready(*n));
  if (n->st.meta.deleted) {
    if (m.Gone(n->st.meta)) return m.GoneError(id);
    return Fail(notepad_errc::deleted, "note '" + n->id + "' is deleted; restore it first");
  }
  if (n->st.meta.title == *clean) return m.Info(*n);
  LogRecord rec;
  rec.type = RecordType::kTitle;
  rec.title = std::move(*clean);
  rec.at_ms = m.clock.NowUnixMillis();
  rec.author = CleanAuthor(author);
  HUB_TRY(m.WriteMeta(*n, std::move(rec)));
  return m.Info(*n);
}

Result<void> Notepad::Delete(std::string_view id, std::string_view author) {
  Impl& m = *impl_;
  auto n = m.Find(id);
  if (!n) return Impl::NotFound(id);
  std::lock_guard lock(n->mu);
  HUB_TRY(m.Ready(*n));
  if (n->st.meta.deleted) return Ok();  // keeps the first deletion time
  LogRecord rec;
  rec.type = RecordType::kDelete;
  rec.at_ms = m.clock.NowUnixMillis();
  rec.author = CleanAuthor(author);
  return m.WriteMeta(*n, std::move(rec));
}

Result<NoteInfo> Notepad::Restore(std::string_view id, std::string_view author) {
  Impl& m = *impl_;
  auto n = m.Find(id);
  if (!n) return Impl::NotFound(id);
  std::lock_guard lock(n->mu);
  HUB_TRY(m.Ready(*n));
  if (!n->st.meta.deleted) return m.Info(*n);
  if (m.Gone(n->st.meta)) return m.GoneError(id);
  LogRecord rec;
  rec.type = RecordType::kRestore;
  rec.at_ms = m.clock.NowUnixMillis();
  rec.author = CleanAuthor(author);
  HUB_TRY(m.WriteMeta(*n, std::move(rec)));
  return m.Info(*n);
}

Result<EditOutcome> Notepad::ApplyEdits(std::string_view id, const Version& base,
                                        std::span<const Edit> edits, std::string_view author,
                                        bool require_current, std::string_view agent,
                                        std::string_view origin, std::string_view uid) {
  Impl& m = *impl_;
  if (!uid.empty() && !IsValidUid(uid)) {
    return Fail(notepad_errc::bad_uid, "an edit's uid must be 1 to " +
                                           std::to_string(kMaxUidBytes) +
                                           " printable ASCII characters without spaces");
  }
  auto n = m.Find(id);
  if (!n) return Impl::NotFound(id);
  std::lock_guard lock(n->mu);
  HUB_TRY(m.Ready(*n));
  if (n->st.meta.deleted) {
    if (m.Gone(n->st.meta)) return m.GoneError(id);
    return Fail(notepad_errc::deleted,
                "note '" + n->id + "' is deleted; restore it before editing");
  }
  return m.ApplyLocked(*n, base, edits, author, require_current, agent, origin, uid);
}

Result<std::string> Notepad::TextAt(std::string_view id, const Version& version) const {
  Impl& m = *impl_;
  auto n = m.Find(id);
  if (!n) return Impl::NotFound(id);
  std::lock_guard lock(n->mu);
  HUB_TRY(m.Ready(*n));
  if (m.Gone(n->st.meta)) return m.GoneError(id);
  return n->st.doc.TextAt(version);
}

Result<std::vector<Revision>> Notepad::History(std::string_view id) const {
  Impl& m = *impl_;
  auto n = m.Find(id);
  if (!n) return Impl::NotFound(id);
  std::lock_guard lock(n->mu);
  HUB_TRY(m.Ready(*n));
  if (m.Gone(n->st.meta)) return m.GoneError(id);
  return m.NewestRevisions(n->st);
}

Result<EditOutcome> Notepad::RestoreRevision(std::string_view id, const Version& version,
                                             std::string_view author) {
  Impl& m = *impl_;
  auto n = m.Find(id);
  if (!n) return Impl::NotFound(id);
  std::lock_guard lock(n->mu);
  HUB_TRY(m.Ready(*n));
  if (n->st.meta.deleted) {
    if (m.Gone(n->st.meta)) return m.GoneError(id);
    return Fail(notepad_errc::deleted,
                "note '" + n->id + "' is deleted; restore it before editing");
  }
  auto old = n->st.doc.TextAt(version);
  if (!old) return old.error();
  std::string cur = n->st.doc.Text();
  if (*old == cur) return m.Outcome(*n);
  std::vector<Edit> edits{DiffEdit(cur, *old)};
  return m.ApplyLocked(*n, n->st.doc.version(), edits, author, false, {}, {}, {});
}

Result<std::vector<Edit>> Notepad::ChangesSince(std::string_view id, const Version& since,
                                                Version* current) const {
  Impl& m = *impl_;
  auto n = m.Find(id);
  if (!n) return Impl::NotFound(id);
  std::lock_guard lock(n->mu);
  HUB_TRY(m.Ready(*n));
  if (m.Gone(n->st.meta)) return m.GoneError(id);
  auto edits = n->st.doc.ChangesSince(since);
  if (edits && current) *current = n->st.doc.version();
  return edits;
}

size_t Notepad::Poll() {
  Impl& m = *impl_;
  size_t changed = 0;
  auto names = m.store.List("");
  if (!names && names.code() != storage::errc::not_found) {
    spdlog::warn("notes: cannot list the notes: {}", names.error().message);
  }
  if (names) {
    for (const std::string& id : *names) {
      if (IsValidId(id) && !m.Find(id) && m.Discover(id)) ++changed;
    }
  }
  for (const auto& n : m.All()) {
    std::lock_guard lock(n->mu);
    if (names && !std::binary_search(names->begin(), names->end(), n->id)) {
      // Swept by another node (or a create that failed): forget it.
      if (n->st.meta.deleted || !n->st.meta.created) {
        n->removed = true;
        std::lock_guard map_lock(m.mu);
        m.notes.erase(n->id);
      }
      continue;
    }
    if (m.PollLocked(*n, /*fresh=*/false)) ++changed;
  }
  return changed;
}

void Notepad::PollNote(std::string_view id) {
  Impl& m = *impl_;
  if (!IsValidId(id)) return;
  auto n = m.Find(id);
  if (!n) {
    m.Discover(std::string(id));
    return;
  }
  std::lock_guard lock(n->mu);
  m.PollLocked(*n, /*fresh=*/true);
}

void Notepad::SetListener(Listener listener) {
  std::lock_guard lock(impl_->listener_mu);
  impl_->listeners = std::make_shared<const std::vector<Listener>>(1, std::move(listener));
}

void Notepad::AddListener(Listener listener) {
  std::lock_guard lock(impl_->listener_mu);
  auto next = impl_->listeners ? std::make_shared<std::vector<Listener>>(*impl_->listeners)
                               : std::make_shared<std::vector<Listener>>();
  next->push_back(std::move(listener));
  impl_->listeners = std::move(next);
}

size_t Notepad::Sweep() {
  Impl& m = *impl_;
  size_t swept = 0;
  for (const auto& n : m.All()) {
    std::lock_guard lock(n->mu);
    if (n->removed || !n->st.meta.created || !m.Gone(n->st.meta)) continue;
    if (auto r = m.store.RemoveAll(n->id); !r) {
      spdlog::warn("notes: {}: cannot remove the deleted note: {}", n->id, r.error().message);
      continue;
    }
    n->removed = true;
    n->writer.reset();
    {
      std::lock_guard map_lock(m.mu);
      m.notes.erase(n->id);
    }
    ++swept;
  }
  return swept;
}

Notepad::Stats Notepad::stats() const {
  const Impl& m = *impl_;
  Stats s;
  {
    std::lock_guard lock(m.mu);  // never a note's: stats() may be called from the listener
    s.notes = m.notes.size();
  }
  s.log_bytes_written = m.log_bytes_written;
  s.records_written = m.records_written;
  s.torn_tails_cut = m.torn_tails_cut;
  s.snapshots_written = m.snapshots_written;
  s.records_read = m.records_read;
  s.bad_records = m.bad_records;
  return s;
}

}  // namespace hub::notes
