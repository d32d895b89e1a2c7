// LocalStore: the Store contract on a local directory or an NFS mount.
//
// Symlink policy: every path is resolved component by component from a
// directory fd of the root, with openat(O_NOFOLLOW | O_DIRECTORY) for
// directories and O_NOFOLLOW (or AT_SYMLINK_NOFOLLOW) for the last component.
// A symlink planted inside the root is therefore never followed: opening
// through it fails, while Rename/Remove/RemoveAll/WriteAtomic act on the link
// itself. (openat2 with RESOLVE_BENEATH would do the same in one syscall but
// needs Linux >= 5.6 and a raw syscall; the walk costs a few cached LOOKUPs.)
// The root path itself may be a symlink (it is opened normally once).

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <stdexcept>
#include <utility>

#include "core/ids.h"
#include "storage/detail/store_internal.h"
#include "storage/store.h"

namespace hub::storage {
namespace {

using detail::SysError;

// The umask decides the final permissions, as for any Unix tool.
constexpr mode_t kFileMode = 0666;
constexpr mode_t kDirMode = 0777;
constexpr int kDirFlags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
constexpr int kFileFlags = O_NOFOLLOW | O_CLOEXEC;
constexpr size_t kReadChunk = 64 * 1024;

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) {
      Reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  ~UniqueFd() { Reset(); }

  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }
  void Reset() {
    // Linux releases the fd even when close fails; never retry it.
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

template <class F>
auto RetryOnEintr(F f) {
  decltype(f()) r;
  do {
    r = f();
  } while (r < 0 && errno == EINTR);
  return r;
}

int64_t MtimeNanos(const struct stat& st) {
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
}

// Writes all of `data` at `offset`; returns 0 or an errno.
int WriteAllAt(int fd, std::string_view data, uint64_t offset) {
  while (!data.empty()) {
    ssize_t n = RetryOnEintr(
        [&] { return ::pwrite(fd, data.data(), data.size(), static_cast<off_t>(offset)); });
    if (n < 0) return errno;
    if (n == 0) return EIO;
    data.remove_prefix(static_cast<size_t>(n));
    offset += static_cast<uint64_t>(n);
  }
  return 0;
}

// Entry names of the directory `fd` (not consumed), without "." and "..".
// A fresh open of "." rather than dup(): a dup shares the directory offset,
// so the second listing of the same fd (the root's) would read nothing.
Result<std::vector<std::string>> ReadDir(int fd, std::string_view full_path) {
  int dup_fd = ::openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dup_fd < 0) return SysError(errno, "list", full_path);
  DIR* dir = ::fdopendir(dup_fd);
  if (dir == nullptr) {
    int err = errno;
    ::close(dup_fd);
    return SysError(err, "list", full_path);
  }
  std::vector<std::string> names;
  errno = 0;
  while (const dirent* e = ::readdir(dir)) {
    std::string_view name = e->d_name;
    if (name != "." && name != "..") names.emplace_back(name);
    errno = 0;
  }
  int err = errno;
  ::closedir(dir);
  if (err != 0) return SysError(err, "list", full_path);
  return names;
}

class LocalReadableFile final : public ReadableFile {
 public:
  LocalReadableFile(UniqueFd fd, const struct stat& st, std::string path)
      : fd_(std::move(fd)),
        size_(static_cast<uint64_t>(st.st_size)),
        mtime_(MtimeNanos(st)),
        path_(std::move(path)) {}

  uint64_t size() const override { return size_; }
  int64_t mtime_unix_nanos() const override { return mtime_; }
  int native_handle() const override { return fd_.get(); }

  // Reads stop at the size seen at open, as in the in-memory twin.
  Result<size_t> ReadAt(uint64_t offset, std::span<char> buf) override {
    if (offset >= size_) return size_t{0};
    size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), size_ - offset));
    size_t got = 0;
    while (got < want) {
      ssize_t n = RetryOnEintr([&] {
        return ::pread(fd_.get(), buf.data() + got, want - got, static_cast<off_t>(offset + got));
      });
      if (n < 0) return SysError(errno, "read", path_);
      if (n == 0) break;
      got += static_cast<size_t>(n);
    }
    return got;
  }

 private:
  UniqueFd fd_;
  uint64_t size_;
  int64_t mtime_;
  std::string path_;
};

// Writes at a tracked offset with pwrite, never O_APPEND (unsafe on NFS).
class LocalWritableFile final : public WritableFile {
 public:
  LocalWritableFile(UniqueFd fd, uint64_t size, std::string path, bool sync)
      : fd_(std::move(fd)), size_(size), path_(std::move(path)), sync_(sync) {}

  uint64_t size() const override { return size_; }

  Result<void> Append(std::span<const char> data) override {
    HUB_TRY(CheckOpen());
    if (int err = WriteAllAt(fd_.get(), {data.data(), data.size()}, size_)) {
      // Best effort: cut a torn write so the file ends at size() again. If
      // this fails too, the next Append overwrites the tail anyway.
      [[maybe_unused]] int ignored = ::ftruncate(fd_.get(), static_cast<off_t>(size_));
      return SysError(err, "append to", path_);
    }
    size_ += data.size();
    return Ok();
  }

  Result<void> AppendFrom(ReadableFile& src, uint64_t offset, uint64_t length) override {
    HUB_TRY(CheckOpen());
    int in = src.native_handle();
    if (in < 0 || offset > src.size() || length > src.size() - offset) {
      return WritableFile::AppendFrom(src, offset, length);  // also reports a short source
    }
    loff_t off_in = static_cast<loff_t>(offset);
    loff_t off_out = static_cast<loff_t>(size_);
    uint64_t done = 0;
    while (done < length) {
      size_t want = static_cast<size_t>(std::min<uint64_t>(length - done, 1ull << 30));
      ssize_t n = ::copy_file_range(in, &off_in, fd_.get(), &off_out, want, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EXDEV || errno == EINVAL || errno == EOPNOTSUPP || errno == ENOSYS) &&
          done == 0) {
        return WritableFile::AppendFrom(src, offset, length);  // no in-kernel copy here
      }
      if (n <= 0) {
        int err = n < 0 ? errno : EIO;
        [[maybe_unused]] int ignored = ::ftruncate(fd_.get(), static_cast<off_t>(size_));
        return SysError(err, "copy into", path_);
      }
      done += static_cast<uint64_t>(n);
    }
    size_ += length;
    return Ok();
  }

  Result<void> Truncate(uint64_t size) override {
    HUB_TRY(CheckOpen());
    if (size > size_) {
      return detail::TruncateBeyondEnd(path_, size, size_);
    }
    if (RetryOnEintr([&] { return ::ftruncate(fd_.get(), static_cast<off_t>(size)); }) != 0) {
      return SysError(errno, "truncate", path_);
    }
    size_ = size;
    return Ok();
  }

  Result<void> Sync() override {
    HUB_TRY(CheckOpen());
    if (sync_ && ::fdatasync(fd_.get()) != 0) return SysError(errno, "sync", path_);
    return Ok();
  }

  // NFS reports delayed write errors (ENOSPC, EDQUOT, EIO) at close.
  Result<void> Close() override {
    if (fd_.get() < 0) return Ok();
    if (::close(fd_.release()) != 0) return SysError(errno, "close", path_);
    return Ok();
  }

 private:
  Result<void> CheckOpen() const {
    if (fd_.get() < 0) return detail::Closed(path_);
    return Ok();
  }

  UniqueFd fd_;
  uint64_t size_;
  std::string path_;
  bool sync_;
};

class LocalStore final : public Store {
 public:
  LocalStore(std::string root, UniqueFd root_fd, LocalStoreOptions options)
      : root_(std::move(root)), root_fd_(std::move(root_fd)), options_(options) {}

  Result<std::unique_ptr<ReadableFile>> OpenRead(std::string_view path) override {
    auto parent = OpenParent(path, /*create=*/false);
    if (!parent) return parent.error();
    struct stat st {};
    auto fd = OpenRegular(*parent, O_RDONLY, path, &st);
    if (!fd) return fd.error();
    return std::unique_ptr<ReadableFile>(
        std::make_unique<LocalReadableFile>(std::move(*fd), st, Full(path)));
  }

  Result<std::string> ReadAll(std::string_view path, size_t max_bytes) override {
    auto parent = OpenParent(path, /*create=*/false);
    if (!parent) return parent.error();
    struct stat st {};
    auto opened = OpenRegular(*parent, O_RDONLY, path, &st);
    if (!opened) return opened.error();
    int fd = opened->get();
    if (static_cast<uint64_t>(st.st_size) > max_bytes) {
      return detail::TooLarge(Full(path), max_bytes);
    }
    // Read to EOF rather than trusting st_size (the file may have grown, and
    // NFS attributes may be stale), but never past the bound.
    std::string out(static_cast<size_t>(st.st_size), '\0');
    size_t got = 0;
    while (true) {
      if (got == out.size()) {
        if (got == max_bytes) {
          char probe;
          ssize_t n = RetryOnEintr([&] { return ::read(fd, &probe, 1); });
          if (n < 0) return SysError(errno, "read", Full(path));
          if (n > 0) return detail::TooLarge(Full(path), max_bytes);
          break;
        }
        out.resize(got + std::min(max_bytes - got, kReadChunk));
      }
      ssize_t n = RetryOnEintr([&] { return ::read(fd, out.data() + got, out.size() - got); });
      if (n < 0) return SysError(errno, "read", Full(path));
      if (n == 0) break;
      got += static_cast<size_t>(n);
    }
    out.resize(got);
    return out;
  }

  Result<void> WriteAtomic(std::string_view path, std::string_view data) override {
    auto parent = OpenParent(path, /*create=*/true);
    if (!parent) return parent.error();
    int dir = parent->dir.get();
    // 64 random bits: writers on other nodes never pick the same name.
    std::string temp = std::string(detail::kTempPrefix) + RandomHex(8);
    HUB_TRY(CreateFilled(dir, temp, data, path));
    if (::renameat(dir, temp.c_str(), dir, parent->leaf.c_str()) != 0) {
      int err = errno;
      ::unlinkat(dir, temp.c_str(), 0);
      return SysError(err, "replace", Full(path));
    }
    // The new content is visible; the directory fsync makes it survive a crash.
    if (options_.sync && ::fsync(dir) != 0) return SysError(errno, "sync directory of", Full(path));
    return Ok();
  }

  Result<void> CreateExclusive(std::string_view path, std::string_view data) override {
    auto parent = OpenParent(path, /*create=*/true);
    if (!parent) return parent.error();
    HUB_TRY(CreateFilled(parent->dir.get(), parent->leaf, data, path));
    if (options_.sync && ::fsync(parent->dir.get()) != 0) {
      return SysError(errno, "sync directory of", Full(path));
    }
    return Ok();
  }

  Result<std::unique_ptr<WritableFile>> OpenWrite(std::string_view path, bool create) override {
    auto parent = OpenParent(path, create);
    if (!parent) return parent.error();
    int dir = parent->dir.get();
    const char* leaf = parent->leaf.c_str();
    bool created = false;
    UniqueFd fd;
    if (create) {
      fd = UniqueFd(RetryOnEintr([&] {
        return ::openat(dir, leaf, O_WRONLY | O_CREAT | O_EXCL | kFileFlags, kFileMode);
      }));
      if (fd.get() < 0 && errno != EEXIST) return SysError(errno, "create", Full(path));
      created = fd.get() >= 0;
    }
    struct stat st {};
    if (!created) {
      auto opened = OpenRegular(*parent, O_WRONLY, path, &st);
      if (!opened) return opened.error();
      fd = std::move(*opened);
    } else if (options_.sync && ::fsync(dir) != 0) {
      return SysError(errno, "sync directory of", Full(path));
    }
    return std::unique_ptr<WritableFile>(std::make_unique<LocalWritableFile>(
        std::move(fd), static_cast<uint64_t>(st.st_size), Full(path), options_.sync));
  }

  Result<FileInfo> Stat(std::string_view path) override {
    auto parent = OpenParent(path, /*create=*/false);
    if (!parent) return parent.error();
    struct stat st {};
    if (::fstatat(parent->dir.get(), parent->leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      return SysError(errno, "stat", Full(path));
    }
    return FileInfo{static_cast<uint64_t>(st.st_size), MtimeNanos(st), S_ISDIR(st.st_mode)};
  }

  Result<std::vector<std::string>> List(std::string_view dir) override {
    if (!dir.empty() && !IsValidPath(dir)) return detail::InvalidPath(dir);
    auto parts = detail::SplitPath(dir);
    auto fd = OpenDir(parts, /*create=*/false, dir);
    if (!fd) return fd.error();
    auto names = ReadDir(fd->get(), Full(dir));
    if (!names) return names.error();
    std::erase_if(*names, [](const std::string& n) { return detail::IsTempName(n); });
    std::sort(names->begin(), names->end());
    return names;
  }

  Result<void> Rename(std::string_view from, std::string_view to) override {
    if (!IsValidPath(from)) return detail::InvalidPath(from);
    if (!IsValidPath(to)) return detail::InvalidPath(to);
    auto src = OpenParent(from, /*create=*/false);
    if (!src) return src.error();
    auto dst = OpenParent(to, /*create=*/true);
    if (!dst) return dst.error();
    if (::renameat(src->dir.get(), src->leaf.c_str(), dst->dir.get(), dst->leaf.c_str()) != 0) {
      return SysError(errno, "rename", Full(from) + " to " + Full(to));
    }
    if (options_.sync) {
      if (::fsync(dst->dir.get()) != 0) return SysError(errno, "sync directory of", Full(to));
      if (ParentOf(from) != ParentOf(to) && ::fsync(src->dir.get()) != 0) {
        return SysError(errno, "sync directory of", Full(from));
      }
    }
    return Ok();
  }

  // Removals are not fsynced: a crash may bring a removed file back, which
  // readers tolerate anyway (deletes are tombstones first, see README.md).
  Result<void> Remove(std::string_view path) override {
    auto parent = OpenParent(path, /*create=*/false);
    if (!parent) return parent.error();
    int dir = parent->dir.get();
    const char* leaf = parent->leaf.c_str();
    struct stat st {};
    if (::fstatat(dir, leaf, &st, AT_SYMLINK_NOFOLLOW) != 0) {
      return SysError(errno, "remove", Full(path));
    }
    if (::unlinkat(dir, leaf, S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0) != 0) {
      if (errno == ENOTEMPTY || errno == EEXIST) return detail::NotEmpty(Full(path));
      return SysError(errno, "remove", Full(path));
    }
    return Ok();
  }

  Result<void> RemoveAll(std::string_view path) override {
    auto parent = OpenParent(path, /*create=*/false);
    if (!parent) {
      // Nothing can exist below a missing directory or a file.
      bool absent = parent.code() == errc::not_found || parent.code() == errc::not_a_directory;
      return absent ? Ok() : Result<void>(parent.error());
    }
    return RemoveTree(parent->dir.get(), parent->leaf, Full(path));
  }

  Result<void> Touch(std::string_view path) override {
    auto parent = OpenParent(path, /*create=*/false);
    if (!parent) return parent.error();
    // times == nullptr: on NFS the server's clock is used (SET_TO_SERVER_TIME).
    if (::utimensat(parent->dir.get(), parent->leaf.c_str(), nullptr, AT_SYMLINK_NOFOLLOW) != 0) {
      return SysError(errno, "touch", Full(path));
    }
    return Ok();
  }

  Result<SpaceInfo> Space() override {
    struct statvfs vfs {};
    if (::fstatvfs(root_fd_.get(), &vfs) != 0) return SysError(errno, "statvfs", root_);
    return SpaceInfo{static_cast<uint64_t>(vfs.f_blocks) * vfs.f_frsize,
                     static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize};
  }

  std::string Describe() const override { return "local:" + root_; }

 private:
  struct Parent {
    UniqueFd dir;
    std::string leaf;
  };

  std::string Full(std::string_view path) const {
    return path.empty() ? root_ : root_ + "/" + std::string(path);
  }

  static std::string_view ParentOf(std::string_view path) {
    size_t slash = path.rfind('/');
    return slash == std::string_view::npos ? std::string_view{} : path.substr(0, slash);
  }

  // Opens the directory made of `parts` (views into `path`), without
  // following symlinks; with `create`, makes missing ones (mkdir -p).
  Result<UniqueFd> OpenDir(std::span<const std::string_view> parts, bool create,
                           std::string_view path) {
    // The first component is opened relative to the root fd itself; only an
    // empty `parts` needs a dup (two syscalls fewer on every hot-path open).
    UniqueFd cur;
    auto at = [&] { return cur.get() >= 0 ? cur.get() : root_fd_.get(); };
    for (std::string_view part : parts) {
      std::string name(part);
      auto fail = [&](int err, std::string_view op) {
        size_t prefix_end = static_cast<size_t>(part.data() - path.data()) + part.size();
        return SysError(err, op, Full(path.substr(0, prefix_end)));
      };
      auto open_dir = [&] {
        return RetryOnEintr([&] { return ::openat(at(), name.c_str(), kDirFlags); });
      };
      int fd = open_dir();
      if (fd < 0 && errno == ENOENT && create) {
        if (::mkdirat(at(), name.c_str(), kDirMode) == 0) {
          // Make the new entry durable before anything is written below it.
          if (options_.sync && ::fsync(at()) != 0) return fail(errno, "sync directory");
        } else if (errno != EEXIST) {
          return fail(errno, "create directory");
        }
        fd = open_dir();
      }
      if (fd < 0) return fail(errno, "open directory");
      cur = UniqueFd(fd);
    }
    if (cur.get() < 0) {
      cur = UniqueFd(::fcntl(root_fd_.get(), F_DUPFD_CLOEXEC, 0));
      if (cur.get() < 0) return SysError(errno, "open", root_);
    }
    return cur;
  }

  Result<Parent> OpenParent(std::string_view path, bool create) {
    if (!IsValidPath(path)) return detail::InvalidPath(path);
    auto parts = detail::SplitPath(path);
    auto dir = OpenDir(std::span(parts).first(parts.size() - 1), create, path);
    if (!dir) return dir.error();
    return Parent{std::move(*dir), std::string(parts.back())};
  }

  // Creates `name` in `dir` exclusively (O_EXCL), writes `data`, syncs and
  // closes it. On failure the file is removed again: a half-written temp file
  // is garbage, and a withdrawn claim lets a retry win it.
  Result<void> CreateFilled(int dir, const std::string& name, std::string_view data,
                            std::string_view path) {
    UniqueFd fd(RetryOnEintr([&] {
      return ::openat(dir, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | kFileFlags, kFileMode);
    }));
    if (fd.get() < 0) {
      if (errno == EEXIST) return detail::AlreadyExists(Full(path));
      return SysError(errno, "create", Full(path));
    }
    int err = WriteAllAt(fd.get(), data, 0);
    std::string_view op = "write";
    if (err == 0 && options_.sync && ::fdatasync(fd.get()) != 0) {
      err = errno;
      op = "sync";
    }
    // Close even after an error; NFS reports delayed write errors here.
    if (::close(fd.release()) != 0 && err == 0) {
      err = errno;
      op = "close";
    }
    if (err == 0) return Ok();
    ::unlinkat(dir, name.c_str(), 0);
    return SysError(err, op, Full(path));
  }

  // Opens an existing regular file (never a symlink, directory or FIFO).
  // O_NONBLOCK keeps a FIFO planted in the root from hanging the open; it is
  // cleared once the file is known to be regular, so that sendfile(2) on the
  // fd never sees it.
  Result<UniqueFd> OpenRegular(const Parent& parent, int access, std::string_view path,
                               struct stat* st) {
    UniqueFd fd(RetryOnEintr([&] {
      return ::openat(parent.dir.get(), parent.leaf.c_str(), access | kFileFlags | O_NONBLOCK);
    }));
    if (fd.get() < 0) return SysError(errno, "open", Full(path));
    if (::fstat(fd.get(), st) != 0) return SysError(errno, "stat", Full(path));
    if (!S_ISREG(st->st_mode)) {
      return SysError(S_ISDIR(st->st_mode) ? EISDIR : EINVAL, "open", Full(path));
    }
    // 0: no other status flag (O_APPEND, O_DIRECT, ...) is wanted either.
    if (::fcntl(fd.get(), F_SETFL, 0) != 0) return SysError(errno, "open", Full(path));
    return fd;
  }

  // Removes `name` in `dir`, recursing into directories without following
  // symlinks (a link is removed, never its target). Missing is fine.
  Result<void> RemoveTree(int dir, const std::string& name, const std::string& full) {
    if (::unlinkat(dir, name.c_str(), 0) == 0 || errno == ENOENT) return Ok();
    if (errno != EISDIR) return SysError(errno, "remove", full);
    UniqueFd child(RetryOnEintr([&] { return ::openat(dir, name.c_str(), kDirFlags); }));
    if (child.get() < 0) {
      return errno == ENOENT ? Ok() : Result<void>(SysError(errno, "remove", full));
    }
    auto names = ReadDir(child.get(), full);
    if (!names) return names.error();
    for (const std::string& n : *names) HUB_TRY(RemoveTree(child.get(), n, full + "/" + n));
    if (::unlinkat(dir, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
      return SysError(errno, "remove", full);
    }
    return Ok();
  }

  const std::string root_;
  const UniqueFd root_fd_;
  const LocalStoreOptions options_;
};

}  // namespace

std::unique_ptr<Store> OpenLocalStore(const std::string& root, LocalStoreOptions options) {
  std::string clean = root;
  while (clean.size() > 1 && clean.back() == '/') clean.pop_back();
  std::error_code ec;
  std::filesystem::create_directories(clean, ec);
  if (ec) {
    throw std::runtime_error("storage root " + detail::Quote(clean) + " cannot be created: " +
                             ec.message() + " (check the path and its permissions)");
  }
  UniqueFd fd(::open(clean.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) {
    throw std::runtime_error(
        "storage root " + detail::Quote(clean) +
        " cannot be opened as a directory: " + std::generic_category().message(errno));
  }
  return std::make_unique<LocalStore>(std::move(clean), std::move(fd), options);
}

}  // namespace hub::storage
