// The local index: SQLite on local disk (STATE_DIR), a cache of the videos on
// the shared storage. See README.md for the schema and the sync algorithm.

#include <sqlite3.h>

#include <cstring>
#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "catalog/detail/stored_json.h"
#include "catalog/video.h"
#include "core/ids.h"

namespace hub::catalog {
namespace {

using nlohmann::json;

// Bump when the schema or anything stored in it (e.g. LowerForSearch)
// changes: an index of another version is deleted and rebuilt.
constexpr int kSchemaVersion = 1;
constexpr size_t kMaxLimit = 100;
constexpr size_t kMaxQueryBytes = 1000;
constexpr size_t kMaxCursorChars = 2048;
// Changes applied per transaction by SyncFrom: bounds memory and how long
// readers wait for the connection.
constexpr size_t kSyncBatch = 256;
constexpr int kBusyTimeoutMs = 5000;

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS videos(
  id TEXT PRIMARY KEY,
  title TEXT NOT NULL,
  description TEXT NOT NULL,
  title_lc TEXT NOT NULL,
  desc_lc TEXT NOT NULL,
  size INTEGER NOT NULL,
  status TEXT NOT NULL,
  created_at_ms INTEGER NOT NULL,
  updated_at_ms INTEGER NOT NULL,
  json TEXT NOT NULL,
  fingerprint TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS videos_by_created ON videos(created_at_ms, id);
CREATE INDEX IF NOT EXISTS videos_by_title ON videos(title_lc, id);
CREATE TABLE IF NOT EXISTS hidden(id TEXT PRIMARY KEY, fingerprint TEXT NOT NULL) WITHOUT ROWID;
)sql";

constexpr const char* kUpsertSql =
    "INSERT OR REPLACE INTO videos(id, title, description, title_lc, desc_lc, size, status, "
    "created_at_ms, updated_at_ms, json, fingerprint) "
    "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";
constexpr const char* kDeleteVideoSql = "DELETE FROM videos WHERE id = ?1";
constexpr const char* kHideSql = "INSERT OR REPLACE INTO hidden(id, fingerprint) VALUES(?1, ?2)";
constexpr const char* kUnhideSql = "DELETE FROM hidden WHERE id = ?1";
constexpr const char* kCountSql = "SELECT COUNT(*) FROM videos";
constexpr const char* kFingerprintsSql =
    "SELECT id, fingerprint FROM videos UNION ALL SELECT id, fingerprint FROM hidden";

// ---- SQLite plumbing ----------------------------------------------------------

class SqliteCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "sqlite"; }
  std::string message(int ev) const override { return sqlite3_errstr(ev); }
};

const std::error_category& SqliteErrors() {
  static const SqliteCategory instance;
  return instance;
}

Error SqlError(sqlite3* db, int rc, const std::string& doing) {
  return MakeError({rc & 0xff, SqliteErrors()},
                   "local index: " + doing + ": " + (db ? sqlite3_errmsg(db) : sqlite3_errstr(rc)));
}

// The file is damaged or not ours: it is a cache, so delete and rebuild it.
bool IsCorruption(const Error& e) {
  if (e.code == make_error_code(errc::corrupt)) return true;
  if (e.code.category() != SqliteErrors()) return false;
  switch (e.code.value()) {
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
    case SQLITE_FORMAT:
      return true;
  }
  return false;
}

// Worth deleting the file and trying again at open: corruption, and also a
// schema we cannot use (SQLITE_ERROR: "no such column" when preparing).
bool IsRebuildable(const Error& e) {
  return IsCorruption(e) || (e.code.category() == SqliteErrors() &&
                             (e.code.value() == SQLITE_ERROR || e.code.value() == SQLITE_SCHEMA ||
                              e.code.value() == SQLITE_MISMATCH));
}

void RemoveDbFiles(const std::string& path) {
  std::error_code ignored;
  for (const char* suffix : {"", "-wal", "-shm", "-journal"}) {
    std::filesystem::remove(path + suffix, ignored);
  }
}

struct StmtFinalizer {
  void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};
using Stmt = std::unique_ptr<sqlite3_stmt, StmtFinalizer>;

struct DbCloser {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
using Db = std::unique_ptr<sqlite3, DbCloser>;

// A cached statement in use: bound on the way in, reset on the way out.
class Use {
 public:
  explicit Use(sqlite3_stmt* s) : s_(s) {}
  ~Use() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }
  Use(const Use&) = delete;
  Use& operator=(const Use&) = delete;

  Use& Text(int i, std::string_view v) {
    sqlite3_bind_text64(s_, i, v.data(), v.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
    return *this;
  }
  Use& Int(int i, int64_t v) {
    sqlite3_bind_int64(s_, i, v);
    return *this;
  }
  // SQLITE_ROW, SQLITE_DONE or an error code.
  int Step() { return sqlite3_step(s_); }
  int64_t ColumnInt(int i) { return sqlite3_column_int64(s_, i); }
  std::string ColumnText(int i) {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(s_, i));
    return p ? std::string(p, static_cast<size_t>(sqlite3_column_bytes(s_, i))) : std::string();
  }

 private:
  sqlite3_stmt* s_;
};

// One connection and its prepared statements. Not thread-safe: the index
// holds its mutex around every use.
class Conn {
 public:
  // Opens or creates the file and checks its schema version. Any failure is
  // returned; IsRebuildable() tells whether deleting the file may help.
  static Result<std::unique_ptr<Conn>> Open(const std::string& path) {
    sqlite3* raw = nullptr;
    const int rc =
        sqlite3_open_v2(path.c_str(), &raw,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
    std::unique_ptr<Conn> c(new Conn(Db(raw)));
    if (rc != SQLITE_OK) return SqlError(raw, rc, "opening " + path);
    sqlite3_busy_timeout(raw, kBusyTimeoutMs);
    // The first statements read the header: "file is not a database" shows here.
    HUB_TRY(c->Exec("PRAGMA journal_mode=WAL"));
    HUB_TRY(c->Exec("PRAGMA synchronous=NORMAL"));

    auto tables = c->Prepared("SELECT name FROM sqlite_master WHERE type = 'table'");
    if (!tables.ok()) return tables.error();
    bool any_table = false, has_meta = false;
    {
      Use use(*tables);
      int step;
      while ((step = use.Step()) == SQLITE_ROW) {
        any_table = true;
        has_meta = has_meta || use.ColumnText(0) == "meta";
      }
      if (step != SQLITE_DONE) return SqlError(raw, step, "reading the schema of " + path);
    }
    if (!any_table) {
      // Idempotent (IF NOT EXISTS, OR IGNORE): another opener may race us.
      HUB_TRY(c->Exec("BEGIN IMMEDIATE"));
      HUB_TRY(c->Exec(kSchema));
      HUB_TRY(c->Exec(("INSERT OR IGNORE INTO meta(key, value) VALUES('schema_version', '" +
                       std::to_string(kSchemaVersion) + "')")
                          .c_str()));
      HUB_TRY(c->Exec("COMMIT"));
    } else {
      std::string version;
      if (has_meta) {
        auto s = c->Prepared("SELECT value FROM meta WHERE key = 'schema_version'");
        if (!s.ok()) return s.error();
        Use use(*s);
        if (use.Step() == SQLITE_ROW) version = use.ColumnText(0);
      }
      if (version != std::to_string(kSchemaVersion)) {
        return MakeError(errc::corrupt, "local index " + path + " has schema version \"" + version +
                                            "\", this program uses " +
                                            std::to_string(kSchemaVersion));
      }
    }
    // Prepare the fixed statements now, so that a schema that does not
    // match what this code expects is found at open and not later.
    for (const char* sql :
         {kUpsertSql, kDeleteVideoSql, kHideSql, kUnhideSql, kCountSql, kFingerprintsSql}) {
      auto s = c->Prepared(sql);
      if (!s.ok()) return s.error();
    }
    return c;
  }

  Result<void> Exec(const char* sql) {
    char* message = nullptr;
    const int rc = sqlite3_exec(db_.get(), sql, nullptr, nullptr, &message);
    if (rc == SQLITE_OK) return Ok();
    std::string text = message ? message : sqlite3_errstr(rc);
    sqlite3_free(message);
    return MakeError({rc & 0xff, SqliteErrors()}, "local index: " + text);
  }

  // The prepared statement for `sql`, compiled once and kept.
  Result<sqlite3_stmt*> Prepared(const std::string& sql) {
    auto it = cache_.find(sql);
    if (it != cache_.end()) return it->second.get();
    sqlite3_stmt* raw = nullptr;
    const int rc = sqlite3_prepare_v3(db_.get(), sql.c_str(), static_cast<int>(sql.size() + 1),
                                      SQLITE_PREPARE_PERSISTENT, &raw, nullptr);
    if (rc != SQLITE_OK) {
      sqlite3_finalize(raw);
      return SqlError(db_.get(), rc, "preparing a statement");
    }
    cache_.emplace(sql, Stmt(raw));
    return raw;
  }

  // Runs a statement that returns no rows.
  Result<void> Run(const char* sql, const std::function<void(Use&)>& bind) {
    auto s = Prepared(sql);
    if (!s.ok()) return s.error();
    Use use(*s);
    bind(use);
    const int rc = use.Step();
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) return SqlError(db_.get(), rc, "writing");
    return Ok();
  }

  sqlite3* db() { return db_.get(); }

 private:
  explicit Conn(Db db) : db_(std::move(db)) {}

  Db db_;  // declared first: statements are finalised before the close
  std::unordered_map<std::string, Stmt> cache_;
};

// Rolls back unless committed.
class Transaction {
 public:
  explicit Transaction(Conn& c) : c_(c) {}
  ~Transaction() {
    if (open_) (void)c_.Exec("ROLLBACK");
  }
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  Result<void> Begin(const char* sql = "BEGIN IMMEDIATE") {
    HUB_TRY(c_.Exec(sql));
    open_ = true;
    return Ok();
  }
  Result<void> Commit() {
    HUB_TRY(c_.Exec("COMMIT"));
    open_ = false;
    return Ok();
  }

 private:
  Conn& c_;
  bool open_ = false;
};

Result<std::unique_ptr<Conn>> OpenOrRebuild(const std::string& path) {
  auto c = Conn::Open(path);  // a failed open has already closed the file
  if (c.ok() || !IsRebuildable(c.error())) return c;
  // A cache: rather than refusing to start, start empty and refill.
  RemoveDbFiles(path);
  return Conn::Open(path);
}

// ---- cursors ------------------------------------------------------------------

constexpr char kBase64Url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string Base64UrlEncode(std::string_view in) {
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : in) {
    acc = (acc << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out += kBase64Url[(acc >> bits) & 0x3F];
    }
  }
  if (bits > 0) out += kBase64Url[(acc << (6 - bits)) & 0x3F];
  return out;
}

std::optional<std::string> Base64UrlDecode(std::string_view in) {
  if (in.size() % 4 == 1) return std::nullopt;
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    const char* p = c == '\0' ? nullptr : std::strchr(kBase64Url, c);
    if (p == nullptr) return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(p - kBase64Url);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xFF);
    }
  }
  // Leftover bits must be zero, so that each cursor has one spelling.
  if ((acc & ((1u << bits) - 1)) != 0) return std::nullopt;
  return out;
}

// Where a page ends: the sort key and id of its last row.
struct Cursor {
  int64_t created_at_ms = 0;  // newest, oldest
  std::string title_lc;       // title
  std::string id;
};

std::string EncodeCursor(const std::string& sort, const Cursor& c) {
  const json key = sort == "title" ? json(c.title_lc) : json(c.created_at_ms);
  return Base64UrlEncode(detail::Dump(json::array({sort, key, c.id})));
}

Result<Cursor> DecodeCursor(const std::string& sort, std::string_view text) {
  const Error bad = MakeError(errc::invalid_argument,
                              "the cursor is invalid or belongs to another sort order: request "
                              "the first page again without a cursor");
  if (text.size() > kMaxCursorChars) return bad;
  auto raw = Base64UrlDecode(text);
  if (!raw) return bad;
  const json j = json::parse(*raw, nullptr, false);
  if (!j.is_array() || j.size() != 3 || !j[0].is_string() || j[0] != sort || !j[2].is_string() ||
      !IsValidId(j[2].get_ref<const std::string&>())) {
    return bad;
  }
  Cursor c;
  c.id = j[2].get<std::string>();
  if (sort == "title") {
    if (!j[1].is_string()) return bad;
    c.title_lc = j[1].get<std::string>();
  } else {
    if (!j[1].is_number_integer()) return bad;
    c.created_at_ms = j[1].get<int64_t>();
  }
  return c;
}

std::string LikePattern(std::string_view needle) {
  std::string p = "%";
  for (char c : needle) {
    if (c == '%' || c == '_' || c == '\\') p += '\\';
    p += c;
  }
  p += '%';
  return p;
}

std::string_view TrimAscii(std::string_view s) {
  auto space = [](char c) { return c == ' ' || (c >= '\t' && c <= '\r'); };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return s;
}

// ---- the index ----------------------------------------------------------------

// One change SyncFrom or Put applies to the tables.
struct Change {
  enum Kind { kUpsert, kHide, kDrop } kind;
  std::string id;
  std::string fingerprint;  // kUpsert, kHide
  Video video;              // kUpsert
};

Result<void> ApplyOne(Conn& c, const Change& ch) {
  switch (ch.kind) {
    case Change::kUpsert: {
      const Video& v = ch.video;
      HUB_TRY(c.Run(kUpsertSql, [&](Use& u) {
        u.Text(1, v.id)
            .Text(2, v.title)
            .Text(3, v.description)
            .Text(4, detail::LowerForSearch(v.title))
            .Text(5, detail::LowerForSearch(v.description))
            .Int(6, static_cast<int64_t>(v.size))
            .Text(7, ToString(v.status))
            .Int(8, v.created_at_ms)
            .Int(9, v.updated_at_ms)
            .Text(10, detail::Dump(detail::ToStoredJson(v)))
            .Text(11, ch.fingerprint);
      }));
      return c.Run(kUnhideSql, [&](Use& u) { u.Text(1, ch.id); });
    }
    case Change::kHide:
      HUB_TRY(c.Run(kDeleteVideoSql, [&](Use& u) { u.Text(1, ch.id); }));
      return c.Run(kHideSql, [&](Use& u) { u.Text(1, ch.id).Text(2, ch.fingerprint); });
    case Change::kDrop:
      HUB_TRY(c.Run(kDeleteVideoSql, [&](Use& u) { u.Text(1, ch.id); }));
      return c.Run(kUnhideSql, [&](Use& u) { u.Text(1, ch.id); });
  }
  return Ok();
}

Result<void> Apply(Conn& c, const std::vector<Change>& changes) {
  if (changes.empty()) return Ok();
  Transaction tx(c);
  HUB_TRY(tx.Begin());
  for (const Change& ch : changes) HUB_TRY(ApplyOne(c, ch));
  return tx.Commit();
}

class SqliteIndex final : public Index {
 public:
  SqliteIndex(std::string path, std::unique_ptr<Conn> conn)
      : path_(std::move(path)), conn_(std::move(conn)) {}

  Result<void> Put(const Video& v) override {
    if (!IsValidId(v.id))
      return MakeError(errc::invalid_argument, "cannot index a video without a valid id");
    if (v.deleted) return Remove(v.id);
    // The fingerprint is unknown here: empty makes the next SyncFrom re-read
    // the video once, so a stale Put can never stick.
    return WithConn([&](Conn& c) { return Apply(c, {Change{Change::kUpsert, v.id, "", v}}); });
  }

  Result<void> Remove(const std::string& id) override {
    return WithConn([&](Conn& c) { return Apply(c, {Change{Change::kDrop, id, "", {}}}); });
  }

  Result<Page> Find(const Query& q) override {
    if (q.sort != "newest" && q.sort != "oldest" && q.sort != "title") {
      return MakeError(errc::invalid_argument, "sort must be newest, oldest or title");
    }
    if (q.limit < 1 || q.limit > kMaxLimit) {
      return MakeError(errc::invalid_argument,
                       "limit must be between 1 and " + std::to_string(kMaxLimit));
    }
    const std::string_view needle = TrimAscii(q.q);
    if (needle.size() > kMaxQueryBytes) {
      return MakeError(errc::invalid_argument, "the search text is longer than " +
                                                   std::to_string(kMaxQueryBytes) +
                                                   " bytes: shorten it");
    }
    std::optional<Cursor> after;
    if (!q.cursor.empty()) {
      auto c = DecodeCursor(q.sort, q.cursor);
      if (!c.ok()) return c.error();
      after = std::move(*c);
    }

    // Built from fixed pieces only; every user value is a bound parameter.
    const bool title = q.sort == "title";
    const bool desc = q.sort == "newest";
    std::string filter;
    if (!needle.empty()) filter = "(title_lc LIKE ?1 ESCAPE '\\' OR desc_lc LIKE ?1 ESCAPE '\\')";
    std::string page_where = filter;
    if (after) {
      if (!page_where.empty()) page_where += " AND ";
      page_where += title  ? "(title_lc, id) > (?2, ?3)"
                    : desc ? "(created_at_ms, id) < (?2, ?3)"
                           : "(created_at_ms, id) > (?2, ?3)";
    }
    const std::string count_sql =
        std::string(kCountSql) + (filter.empty() ? "" : " WHERE " + filter);
    const std::string page_sql = "SELECT id, created_at_ms, title_lc, json FROM videos" +
                                 (page_where.empty() ? std::string() : " WHERE " + page_where) +
                                 (title  ? " ORDER BY title_lc ASC, id ASC"
                                  : desc ? " ORDER BY created_at_ms DESC, id DESC"
                                         : " ORDER BY created_at_ms ASC, id ASC") +
                                 " LIMIT ?4";
    const std::string pattern = LikePattern(detail::LowerForSearch(needle));

    return WithConn([&](Conn& c) -> Result<Page> {
      auto bind = [&](Use& u) {
        if (!needle.empty()) u.Text(1, pattern);
        if (after) {
          if (title) {
            u.Text(2, after->title_lc);
          } else {
            u.Int(2, after->created_at_ms);
          }
          u.Text(3, after->id);
        }
        u.Int(4, static_cast<int64_t>(q.limit) + 1);
      };
      // One read transaction: the total and the page see the same snapshot.
      Transaction tx(c);
      HUB_TRY(tx.Begin("BEGIN"));
      Page page;
      {
        auto s = c.Prepared(count_sql);
        if (!s.ok()) return s.error();
        Use u(*s);
        bind(u);
        const int rc = u.Step();
        if (rc != SQLITE_ROW) return SqlError(c.db(), rc, "counting videos");
        page.total = static_cast<uint64_t>(u.ColumnInt(0));
      }
      {
        auto s = c.Prepared(page_sql);
        if (!s.ok()) return s.error();
        Use u(*s);
        bind(u);
        Cursor last;
        size_t rows = 0;
        int rc;
        while ((rc = u.Step()) == SQLITE_ROW) {
          if (++rows > q.limit) {
            page.next_cursor = EncodeCursor(q.sort, last);
            break;
          }
          last.id = u.ColumnText(0);
          last.created_at_ms = u.ColumnInt(1);
          last.title_lc = u.ColumnText(2);
          // Rows are written only from Videos; one that does not parse was
          // damaged outside this code: leave it out rather than fail the page.
          auto v = detail::FromStoredJson(json::parse(u.ColumnText(3), nullptr, false));
          if (v) page.items.push_back(std::move(*v));
        }
        if (rc != SQLITE_ROW && rc != SQLITE_DONE) return SqlError(c.db(), rc, "finding videos");
      }
      HUB_TRY(tx.Commit());
      return page;
    });
  }

  Result<size_t> SyncFrom(VideoRepository& repo,
                          const std::function<void(const std::string&)>& changed) override {
    std::lock_guard sync_lock(sync_mu_);
    // What the index holds, read before listing, so that a row Put while we
    // list is never taken for one that is gone.
    auto known = WithConn([](Conn& c) -> Result<std::unordered_map<std::string, std::string>> {
      auto s = c.Prepared(kFingerprintsSql);
      if (!s.ok()) return s.error();
      Use u(*s);
      std::unordered_map<std::string, std::string> out;
      int rc;
      while ((rc = u.Step()) == SQLITE_ROW) out[u.ColumnText(0)] = u.ColumnText(1);
      if (rc != SQLITE_DONE) return SqlError(c.db(), rc, "reading fingerprints");
      return out;
    });
    if (!known.ok()) return known.error();
    auto ids = repo.ListIds();
    if (!ids.ok()) return ids.error();

    // Storage I/O (slow on NFS) runs without the connection lock, so Find
    // keeps answering; changes are applied in batches.
    std::vector<Change> batch;
    std::vector<std::string> changed_ids;
    auto flush = [&]() -> Result<void> {
      auto r = WithConn([&](Conn& c) { return Apply(c, batch); });
      if (r.ok() && changed) {
        for (const Change& ch : batch) changed_ids.push_back(ch.id);
      }
      batch.clear();
      return r;
    };
    std::optional<Error> first_error;  // one unreadable video must not stop the rest
    std::vector<std::string> unlisted;
    size_t reread = 0;
    for (const std::string& id : *ids) {
      auto fp = repo.Fingerprint(id);
      if (!fp.ok()) {
        if (fp.code() == errc::not_found) {
          unlisted.push_back(id);
        } else if (!first_error) {
          first_error = fp.error();
        }
        continue;
      }
      auto it = known->find(id);
      if (it != known->end() && it->second == *fp) continue;
      ++reread;
      auto v = repo.GetIncludingDeleted(id);
      if (v.ok()) {
        batch.push_back(v->deleted ? Change{Change::kHide, id, *fp, {}}
                                   : Change{Change::kUpsert, id, *fp, std::move(*v)});
      } else if (v.code() == errc::corrupt) {
        batch.push_back(Change{Change::kHide, id, *fp, {}});
      } else if (v.code() == errc::not_found) {
        batch.push_back(Change{Change::kDrop, id, "", {}});
      } else if (!first_error) {
        first_error = v.error();
      }
      if (batch.size() >= kSyncBatch) HUB_TRY(flush());
    }

    // Listings lag on NFS (cached directory entries): open the record before
    // dropping a row that the listing did not show.
    std::unordered_set<std::string> listed(ids->begin(), ids->end());
    for (const auto& [id, fp] : *known) {
      if (!listed.contains(id)) unlisted.push_back(id);
    }
    for (const std::string& id : unlisted) {
      auto v = repo.GetIncludingDeleted(id);
      if (v.ok() && !v->deleted) continue;  // still there; a later listing shows it
      if (v.ok() || v.code() == errc::not_found || v.code() == errc::corrupt) {
        batch.push_back(Change{Change::kDrop, id, "", {}});
      } else if (!first_error) {
        first_error = v.error();
      }
      if (batch.size() >= kSyncBatch) HUB_TRY(flush());
    }
    HUB_TRY(flush());
    for (const std::string& id : changed_ids) changed(id);
    if (first_error) return *first_error;
    return reread;
  }

  size_t size() override {
    auto n = WithConn([](Conn& c) -> Result<size_t> {
      auto s = c.Prepared(kCountSql);
      if (!s.ok()) return s.error();
      Use u(*s);
      const int rc = u.Step();
      if (rc != SQLITE_ROW) return SqlError(c.db(), rc, "counting videos");
      return static_cast<size_t>(u.ColumnInt(0));
    });
    return n.ok() ? *n : 0;
  }

 private:
  // Runs fn(connection) under the lock. A connection that found its file
  // corrupt is dropped together with the file; the next call starts an empty
  // index, which the next SyncFrom refills.
  template <class Fn>
  auto WithConn(Fn fn) -> decltype(fn(std::declval<Conn&>())) {
    std::lock_guard lock(mu_);
    if (!conn_) {
      auto c = OpenOrRebuild(path_);
      if (!c.ok()) return c.error();
      conn_ = std::move(*c);
    }
    auto r = fn(*conn_);
    if (!r.ok() && IsCorruption(r.error())) {
      conn_.reset();
      RemoveDbFiles(path_);
      return MakeError(errc::corrupt, r.error().message +
                                          " — the local index was reset and refills from "
                                          "storage on the next sync");
    }
    return r;
  }

  const std::string path_;
  std::mutex sync_mu_;  // one SyncFrom at a time; taken before mu_
  std::mutex mu_;
  std::unique_ptr<Conn> conn_;  // guarded by mu_; null after corruption until reopened
};

}  // namespace

Result<std::unique_ptr<Index>> OpenIndex(const std::string& sqlite_path) {
  const std::filesystem::path parent = std::filesystem::path(sqlite_path).parent_path();
  if (!parent.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(parent, ec);
    if (ec) {
      return MakeError(ec, "cannot create the directory of the local index " + parent.string() +
                               ": " + ec.message() + " (check STATE_DIR)");
    }
  }
  auto c = OpenOrRebuild(sqlite_path);
  if (!c.ok()) return c.error();
  return std::unique_ptr<Index>(new SqliteIndex(sqlite_path, std::move(*c)));
}

}  // namespace hub::catalog
