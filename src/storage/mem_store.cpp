// MemStore: the in-memory twin of LocalStore. A tree of nodes under one mutex,
// mirroring POSIX where it matters to callers: a node is an inode (an open
// WritableFile keeps writing to it after a Rename or Remove, as on disk), and
// errors use the errno LocalStore would see, mapped and worded the same way.

#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>

#include "core/clock.h"
#include "storage/detail/store_internal.h"
#include "storage/store.h"

namespace hub::storage {
namespace {

using detail::SysError;

constexpr uint64_t kCapacityBytes = uint64_t{1} << 50;  // 1 PiB: never full

struct Node {
  bool is_dir = false;
  int64_t mtime = 0;
  // File content, copy-on-write: open ReadableFiles share the snapshot they
  // saw at open, and a writer copies it before changing a shared one.
  std::shared_ptr<std::string> data = std::make_shared<std::string>();
  std::map<std::string, std::shared_ptr<Node>, std::less<>> children;  // dirs only
};

std::shared_ptr<Node> NewNode(bool is_dir, int64_t now, std::string_view data = {}) {
  auto node = std::make_shared<Node>();
  node->is_dir = is_dir;
  node->mtime = now;
  node->data = std::make_shared<std::string>(data);
  return node;
}

std::string Full(std::string_view path) { return "mem:/" + std::string(path); }

std::string_view ParentOf(std::string_view path) {
  size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? std::string_view{} : path.substr(0, slash);
}

std::string_view LeafOf(std::string_view path) {
  size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

// Shared by the store and its open WritableFiles (which may outlive it).
struct State {
  explicit State(const Clock* c) : clock(c != nullptr ? c : &system_clock) {}
  int64_t Now() const { return clock->NowUnixNanos(); }

  std::mutex mu;
  std::shared_ptr<Node> root = NewNode(true, 0);  // guarded by mu
  SystemClock system_clock;
  const Clock* clock;
};

// The content of `file`, unshared so that it can be changed.
std::string& MutableData(Node& file) {
  if (file.data.use_count() > 1) file.data = std::make_shared<std::string>(*file.data);
  return *file.data;
}

class MemReadableFile final : public ReadableFile {
 public:
  MemReadableFile(std::shared_ptr<const std::string> data, int64_t mtime)
      : data_(std::move(data)), mtime_(mtime) {}

  uint64_t size() const override { return data_->size(); }
  int64_t mtime_unix_nanos() const override { return mtime_; }

  Result<size_t> ReadAt(uint64_t offset, std::span<char> buf) override {
    if (offset >= data_->size()) return size_t{0};
    size_t n = std::min<size_t>(buf.size(), data_->size() - static_cast<size_t>(offset));
    std::memcpy(buf.data(), data_->data() + offset, n);
    return n;
  }

 private:
  const std::shared_ptr<const std::string> data_;
  const int64_t mtime_;
};

class MemWritableFile final : public WritableFile {
 public:
  MemWritableFile(std::shared_ptr<State> state, std::shared_ptr<Node> node, std::string path)
      : state_(std::move(state)),
        node_(std::move(node)),
        size_(node_->data->size()),
        path_(std::move(path)) {}

  uint64_t size() const override { return size_; }

  // Writes at the tracked offset, like pwrite in LocalStore.
  Result<void> Append(std::span<const char> data) override {
    if (closed_) return detail::Closed(path_);
    std::lock_guard lock(state_->mu);
    std::string& content = MutableData(*node_);
    if (content.size() < size_ + data.size()) content.resize(size_ + data.size());
    std::memcpy(content.data() + size_, data.data(), data.size());
    size_ += data.size();
    node_->mtime = state_->Now();
    return Ok();
  }

  Result<void> Truncate(uint64_t size) override {
    if (closed_) return detail::Closed(path_);
    if (size > size_) return detail::TruncateBeyondEnd(path_, size, size_);
    std::lock_guard lock(state_->mu);
    MutableData(*node_).resize(size);
    size_ = size;
    node_->mtime = state_->Now();
    return Ok();
  }

  Result<void> Sync() override {
    if (closed_) return detail::Closed(path_);
    return Ok();
  }

  Result<void> Close() override {
    closed_ = true;
    return Ok();
  }

 private:
  const std::shared_ptr<State> state_;
  const std::shared_ptr<Node> node_;
  uint64_t size_;
  const std::string path_;
  bool closed_ = false;
};

class MemStore final : public Store {
 public:
  explicit MemStore(const Clock* clock) : state_(std::make_shared<State>(clock)) {}

  Result<std::unique_ptr<ReadableFile>> OpenRead(std::string_view path) override {
    std::lock_guard lock(state_->mu);
    auto file = FindFile(path, "open");
    if (!file) return file.error();
    return std::unique_ptr<ReadableFile>(
        std::make_unique<MemReadableFile>((*file)->data, (*file)->mtime));
  }

  Result<std::string> ReadAll(std::string_view path, size_t max_bytes) override {
    std::lock_guard lock(state_->mu);
    auto file = FindFile(path, "open");
    if (!file) return file.error();
    if ((*file)->data->size() > max_bytes) return detail::TooLarge(Full(path), max_bytes);
    return *(*file)->data;
  }

  Result<void> WriteAtomic(std::string_view path, std::string_view data) override {
    std::lock_guard lock(state_->mu);
    auto dir = WalkParent(path, /*create=*/true);
    if (!dir) return dir.error();
    auto it = (*dir)->children.find(LeafOf(path));
    if (it != (*dir)->children.end() && it->second->is_dir) {
      return SysError(EISDIR, "replace", Full(path));
    }
    // A new node, as rename(2) installs a new inode: open files keep the old.
    Link(**dir, LeafOf(path), NewNode(false, state_->Now(), data));
    return Ok();
  }

  Result<void> CreateExclusive(std::string_view path, std::string_view data) override {
    std::lock_guard lock(state_->mu);
    auto dir = WalkParent(path, /*create=*/true);
    if (!dir) return dir.error();
    if ((*dir)->children.contains(LeafOf(path))) return detail::AlreadyExists(Full(path));
    Link(**dir, LeafOf(path), NewNode(false, state_->Now(), data));
    return Ok();
  }

  Result<std::unique_ptr<WritableFile>> OpenWrite(std::string_view path, bool create) override {
    std::lock_guard lock(state_->mu);
    auto dir = WalkParent(path, create);
    if (!dir) return dir.error();
    std::shared_ptr<Node> node;
    if (auto it = (*dir)->children.find(LeafOf(path)); it != (*dir)->children.end()) {
      node = it->second;
      if (node->is_dir) return SysError(EISDIR, "open", Full(path));
    } else if (!create) {
      return SysError(ENOENT, "open", Full(path));
    } else {
      node = NewNode(false, state_->Now());
      Link(**dir, LeafOf(path), node);
    }
    return std::unique_ptr<WritableFile>(
        std::make_unique<MemWritableFile>(state_, std::move(node), Full(path)));
  }

  Result<FileInfo> Stat(std::string_view path) override {
    std::lock_guard lock(state_->mu);
    auto node = Find(path, "stat");
    if (!node) return node.error();
    const Node& n = **node;
    return FileInfo{n.is_dir ? 0 : n.data->size(), n.mtime, n.is_dir};
  }

  Result<std::vector<std::string>> List(std::string_view dir) override {
    if (!dir.empty() && !IsValidPath(dir)) return detail::InvalidPath(dir);
    std::lock_guard lock(state_->mu);
    auto node = Walk(detail::SplitPath(dir), /*create=*/false, dir);
    if (!node) return node.error();
    std::vector<std::string> names;
    for (const auto& [name, child] : (*node)->children) names.push_back(name);
    return names;  // std::map keeps them sorted
  }

  // Mirrors rename(2), including its errors for directories.
  Result<void> Rename(std::string_view from, std::string_view to) override {
    if (!IsValidPath(from)) return detail::InvalidPath(from);
    if (!IsValidPath(to)) return detail::InvalidPath(to);
    std::lock_guard lock(state_->mu);
    std::string what = Full(from) + " to " + Full(to);
    auto src_dir = WalkParent(from, /*create=*/false);
    if (!src_dir) return src_dir.error();
    auto dst_dir = WalkParent(to, /*create=*/true);
    if (!dst_dir) return dst_dir.error();
    auto src = (*src_dir)->children.find(LeafOf(from));
    if (src == (*src_dir)->children.end()) return SysError(ENOENT, "rename", what);
    if (from == to) return Ok();
    std::shared_ptr<Node> node = src->second;
    if (node->is_dir && to.starts_with(std::string(from) + "/")) {
      return SysError(EINVAL, "rename", what);
    }
    if (auto dst = (*dst_dir)->children.find(LeafOf(to)); dst != (*dst_dir)->children.end()) {
      const Node& target = *dst->second;
      if (!node->is_dir && target.is_dir) return SysError(EISDIR, "rename", what);
      if (node->is_dir && !target.is_dir) return SysError(ENOTDIR, "rename", what);
      if (target.is_dir && !target.children.empty()) return SysError(ENOTEMPTY, "rename", what);
    }
    (*src_dir)->children.erase(src);
    (*src_dir)->mtime = state_->Now();
    Link(**dst_dir, LeafOf(to), std::move(node));
    return Ok();
  }

  Result<void> Remove(std::string_view path) override {
    std::lock_guard lock(state_->mu);
    auto dir = WalkParent(path, /*create=*/false);
    if (!dir) return dir.error();
    auto it = (*dir)->children.find(LeafOf(path));
    if (it == (*dir)->children.end()) return SysError(ENOENT, "remove", Full(path));
    if (it->second->is_dir && !it->second->children.empty()) return detail::NotEmpty(Full(path));
    (*dir)->children.erase(it);
    (*dir)->mtime = state_->Now();
    return Ok();
  }

  Result<void> RemoveAll(std::string_view path) override {
    std::lock_guard lock(state_->mu);
    auto dir = WalkParent(path, /*create=*/false);
    if (!dir) {
      bool absent = dir.code() == errc::not_found || dir.code() == errc::not_a_directory;
      return absent ? Ok() : Result<void>(dir.error());
    }
    if (auto it = (*dir)->children.find(LeafOf(path)); it != (*dir)->children.end()) {
      (*dir)->children.erase(it);
      (*dir)->mtime = state_->Now();
    }
    return Ok();
  }

  Result<void> Touch(std::string_view path) override {
    std::lock_guard lock(state_->mu);
    auto node = Find(path, "touch");
    if (!node) return node.error();
    (*node)->mtime = state_->Now();
    return Ok();
  }

  Result<SpaceInfo> Space() override { return SpaceInfo{kCapacityBytes, kCapacityBytes / 2}; }

  std::string Describe() const override { return "mem:"; }

 private:
  // All below require state_->mu held.

  // The directory made of `parts` (views into `path`); with `create`, makes
  // the missing ones.
  Result<Node*> Walk(const std::vector<std::string_view>& parts, bool create,
                     std::string_view path) {
    Node* cur = state_->root.get();
    for (std::string_view part : parts) {
      std::string_view prefix =
          path.substr(0, static_cast<size_t>(part.data() - path.data()) + part.size());
      auto it = cur->children.find(part);
      if (it == cur->children.end()) {
        if (!create) return SysError(ENOENT, "open directory", Full(prefix));
        it = Link(*cur, part, NewNode(true, state_->Now()));
      } else if (!it->second->is_dir) {
        return SysError(ENOTDIR, "open directory", Full(prefix));
      }
      cur = it->second.get();
    }
    return cur;
  }

  Result<Node*> WalkParent(std::string_view path, bool create) {
    if (!IsValidPath(path)) return detail::InvalidPath(path);
    return Walk(detail::SplitPath(ParentOf(path)), create, path);
  }

  Result<std::shared_ptr<Node>> Find(std::string_view path, std::string_view op) {
    auto dir = WalkParent(path, /*create=*/false);
    if (!dir) return dir.error();
    auto it = (*dir)->children.find(LeafOf(path));
    if (it == (*dir)->children.end()) return SysError(ENOENT, op, Full(path));
    return it->second;
  }

  Result<std::shared_ptr<Node>> FindFile(std::string_view path, std::string_view op) {
    auto node = Find(path, op);
    if (node && (*node)->is_dir) return SysError(EISDIR, op, Full(path));
    return node;
  }

  // Puts `node` at `name` in `dir`, replacing what was there.
  std::map<std::string, std::shared_ptr<Node>, std::less<>>::iterator Link(
      Node& dir, std::string_view name, std::shared_ptr<Node> node) {
    dir.mtime = state_->Now();
    return dir.children.insert_or_assign(std::string(name), std::move(node)).first;
  }

  const std::shared_ptr<State> state_;
};

}  // namespace

std::unique_ptr<Store> NewMemStore(const Clock* clock) { return std::make_unique<MemStore>(clock); }

}  // namespace hub::storage
