#pragma once
// Store: the shared storage seen by every instance (a local directory that in
// production is an NFS mount written by several nodes at once).
//
// Contract, chosen to be safe on NFS (close-to-open consistency, cached
// attributes and listings, no reliable locks, O_APPEND unsafe between
// clients) — see docs/storage.md:
//  * Paths are relative, '/'-separated, at most 4096 bytes, each component
//    1..255 bytes without NUL or backslash, never "." or "..", and never
//    starting with ".tmp-" (reserved for WriteAtomic's temp files). A bad
//    path is errc::invalid_path and touches nothing. Parent directories are
//    created as needed by every write. Symbolic links inside the root are
//    never followed, so nothing outside the root is ever reached.
//  * WriteAtomic = temp file in the same directory + write + fsync + close +
//    rename (+ fsync of the directory). Readers see the old or the new
//    content, never a mix.
//  * CreateExclusive = open(O_CREAT|O_EXCL): exactly one of several racing
//    creators (on any node) succeeds; the others get errc::already_exists.
//    This is the only mutual exclusion primitive: no fcntl/flock locks.
//  * OpenWrite gives a single writer a file to extend; callers guarantee there
//    is one writer per file (per-node files, or a CreateExclusive claim).
//  * Every read has a size bound (ReadAll's max_bytes).
//  * Thread-safe: any method may be called from any thread.

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "core/result.h"

namespace hub {
class Clock;
}  // namespace hub

namespace hub::storage {

enum class errc {
  not_found = 1,
  already_exists,
  invalid_path,
  no_space,       // ENOSPC / EDQUOT: HTTP 507, retry later
  too_large,      // a bounded read found more than allowed
  not_a_directory,
  io_error,       // anything else; message carries strerror and the path
};
const std::error_category& category();
inline std::error_code make_error_code(errc e) { return {static_cast<int>(e), category()}; }

// Checks a relative path against the contract above.
bool IsValidPath(std::string_view path);

struct FileInfo {
  uint64_t size = 0;
  int64_t mtime_unix_nanos = 0;
  bool is_directory = false;
};

// A file open for reading. Its size and mtime are those seen at open time
// (close-to-open: a fresh open sees what the last closer wrote).
class ReadableFile {
 public:
  virtual ~ReadableFile() = default;
  virtual uint64_t size() const = 0;
  virtual int64_t mtime_unix_nanos() const = 0;
  // Reads up to buf.size() bytes at `offset`; returns 0 at end of file.
  virtual Result<size_t> ReadAt(uint64_t offset, std::span<char> buf) = 0;
  // A file descriptor usable with sendfile(2), or -1 when the backend has
  // none (in-memory twin); callers then fall back to ReadAt.
  virtual int native_handle() const { return -1; }
};

// A file open for writing by its single writer, positioned at its end.
// Not thread-safe: one thread at a time. A failed Append leaves size()
// unchanged (bytes past size() are unspecified until overwritten or cut); a
// failed Sync or Close means everything since the last successful Sync may be
// lost. Calls after Close fail with errc::io_error; Close twice is a no-op.
class WritableFile {
 public:
  virtual ~WritableFile() = default;
  // Current size (= the offset the next Append writes at).
  virtual uint64_t size() const = 0;
  virtual Result<void> Append(std::span<const char> data) = 0;
  // Appends `length` bytes of `src` starting at `offset`. The default reads
  // and appends through a 1 MiB buffer; LocalStore copies in the kernel
  // (copy_file_range: a reflink on XFS/btrfs, a server-side copy on NFS 4.2).
  // errc::io_error (and nothing appended) if src is shorter than offset+length.
  virtual Result<void> AppendFrom(ReadableFile& src, uint64_t offset, uint64_t length);
  // Cuts the file back to `size` bytes (<= size()).
  virtual Result<void> Truncate(uint64_t size) = 0;
  // fdatasync: what was appended survives a crash once this returns.
  virtual Result<void> Sync() = 0;
  virtual Result<void> Close() = 0;
};

struct SpaceInfo {
  uint64_t capacity_bytes = 0;
  uint64_t available_bytes = 0;
};

class Store {
 public:
  virtual ~Store() = default;

  virtual Result<std::unique_ptr<ReadableFile>> OpenRead(std::string_view path) = 0;
  // Whole content; errc::too_large if the file is bigger than max_bytes.
  virtual Result<std::string> ReadAll(std::string_view path, size_t max_bytes) = 0;
  // Atomic replace (see contract). Creates parent directories.
  virtual Result<void> WriteAtomic(std::string_view path, std::string_view data) = 0;
  // Creates `path` only if it does not exist, with `data`, fsynced.
  // errc::already_exists if it does.
  virtual Result<void> CreateExclusive(std::string_view path, std::string_view data) = 0;
  // Opens for appending; creates it empty when `create` (and it is missing).
  virtual Result<std::unique_ptr<WritableFile>> OpenWrite(std::string_view path, bool create) = 0;
  virtual Result<FileInfo> Stat(std::string_view path) = 0;
  // Names (not paths) of the entries of a directory, sorted; errc::not_found
  // when the directory does not exist. Temp files of WriteAtomic in progress
  // (".tmp-" prefix) are not listed. `dir` may be "" for the root.
  virtual Result<std::vector<std::string>> List(std::string_view dir) = 0;
  // Renames, replacing `to` if it exists. Creates to's parent directories.
  virtual Result<void> Rename(std::string_view from, std::string_view to) = 0;
  // Removes a file or an empty directory; not_found if missing.
  virtual Result<void> Remove(std::string_view path) = 0;
  // Removes a file or a whole tree; ok if missing.
  virtual Result<void> RemoveAll(std::string_view path) = 0;
  // Sets the mtime to now (server time on NFS); not_found if missing.
  virtual Result<void> Touch(std::string_view path) = 0;
  virtual Result<SpaceInfo> Space() = 0;
  // Human-readable description, e.g. "local:/srv/data".
  virtual std::string Describe() const = 0;
};

struct LocalStoreOptions {
  // fsync files and directories on every atomic write / sync. Off only in
  // benchmarks that measure the cost of it.
  bool sync = true;
};

// A directory on a local filesystem or an NFS mount. Creates `root` if missing.
// Throws std::runtime_error if root cannot be created or is not a directory.
std::unique_ptr<Store> OpenLocalStore(const std::string& root, LocalStoreOptions options = {});

// The in-memory twin with the same contract, for tests. mtimes come from
// `clock` (not owned, must outlive the store; nullptr = the system clock), so
// tests of expiry can drive them with a ManualClock.
std::unique_ptr<Store> NewMemStore(const Clock* clock = nullptr);

// A wrapper that fails chosen operations, for fault injection by countdown
// (STYLE.md #10): after `ok_ops` successful mutating calls (writes, appends,
// syncs, renames, creates), every further mutating call fails with `fail_with`
// until Reset(). Reads never fail. Not owned: `inner` must outlive it.
// Mutating calls: WriteAtomic, CreateExclusive, OpenWrite, Rename, Remove,
// RemoveAll, Touch, and WritableFile's Append, Truncate, Sync, Close; each
// let through counts against `ok_ops` whatever `inner` then returns. A failed
// call does not reach `inner` (a failed WriteAtomic leaves the old content; a
// failed Append writes nothing).
class FaultyStore;
std::unique_ptr<FaultyStore> NewFaultyStore(Store* inner);
class FaultyStore : public Store {
 public:
  virtual void FailAfter(int ok_ops, errc fail_with) = 0;
  // Stops failing and zeroes mutating_calls().
  virtual void Reset() = 0;
  // Mutating calls seen (failed or not) since creation or the last Reset().
  virtual int mutating_calls() const = 0;
};

}  // namespace hub::storage

template <>
struct std::is_error_code_enum<hub::storage::errc> : std::true_type {};
