#include "storage/store.h"

#include <algorithm>
#include <vector>

#include <cerrno>
#include <cstdio>

#include "storage/detail/store_internal.h"

namespace hub::storage {
namespace {

constexpr size_t kMaxPathBytes = 4096;
constexpr size_t kMaxComponentBytes = 255;

class Category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "hub.storage"; }
  std::string message(int code) const override {
    switch (static_cast<errc>(code)) {
      case errc::not_found: return "not found";
      case errc::already_exists: return "already exists";
      case errc::invalid_path: return "invalid path";
      case errc::no_space: return "no space left on the storage";
      case errc::too_large: return "file larger than allowed";
      case errc::not_a_directory: return "not a directory";
      case errc::io_error: return "storage i/o error";
    }
    return "unknown storage error";
  }
};

bool IsValidComponent(std::string_view c) {
  if (c.empty() || c.size() > kMaxComponentBytes) return false;
  if (c == "." || c == ".." || detail::IsTempName(c)) return false;
  // '/' cannot occur here: the caller splits on it.
  return c.find('\0') == std::string_view::npos && c.find('\\') == std::string_view::npos;
}

}  // namespace

const std::error_category& category() {
  static const Category kCategory;
  return kCategory;
}

bool IsValidPath(std::string_view path) {
  if (path.empty() || path.size() > kMaxPathBytes) return false;
  size_t start = 0;
  while (true) {
    size_t slash = path.find('/', start);
    std::string_view c =
        path.substr(start, slash == std::string_view::npos ? slash : slash - start);
    if (!IsValidComponent(c)) return false;
    if (slash == std::string_view::npos) return true;
    start = slash + 1;
  }
}

namespace detail {

std::vector<std::string_view> SplitPath(std::string_view path) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (start < path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string_view::npos) slash = path.size();
    parts.push_back(path.substr(start, slash - start));
    start = slash + 1;
  }
  return parts;
}

std::string Quote(std::string_view path) {
  std::string out = "\"";
  for (unsigned char ch : path) {
    if (ch < 0x20 || ch == 0x7f || ch == '"' || ch == '\\') {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", ch);
      out += buf;
    } else {
      out += static_cast<char>(ch);
    }
  }
  return out += '"';
}

Error InvalidPath(std::string_view path) {
  return Fail(errc::invalid_path,
              "invalid storage path " + Quote(path.substr(0, 300)) +
                  ": use a relative '/'-separated path whose components are 1..255 bytes, "
                  "not '.', '..' or '.tmp-*', without NUL or backslash");
}

errc CodeFor(int err) {
  switch (err) {
    case ENOSPC:
    case EDQUOT: return errc::no_space;
    case ENOENT: return errc::not_found;
    case EEXIST: return errc::already_exists;
    case ENOTDIR: return errc::not_a_directory;
    default: return errc::io_error;
  }
}

Error SysError(int err, std::string_view op, std::string_view full_path) {
  std::string message =
      std::string(op) + " " + Quote(full_path) + ": " + std::generic_category().message(err);
  if (CodeFor(err) == errc::no_space) {
    message += " (free space on the storage or raise the quota, then retry)";
  } else if (err == ELOOP) {
    message += " (symbolic links inside the store are not followed)";
  }
  return Fail(CodeFor(err), std::move(message));
}

Error AlreadyExists(std::string_view full_path) {
  return Fail(errc::already_exists,
              Quote(full_path) + " already exists (another writer claimed it)");
}

Error TooLarge(std::string_view full_path, size_t max_bytes) {
  return Fail(errc::too_large, Quote(full_path) + " is larger than the " +
                                   std::to_string(max_bytes) + " bytes allowed");
}

Error NotEmpty(std::string_view full_path) {
  return Fail(errc::io_error,
              "remove " + Quote(full_path) + ": directory not empty (use RemoveAll)");
}

Error TruncateBeyondEnd(std::string_view full_path, uint64_t size, uint64_t current) {
  return Fail(errc::io_error, "truncate " + Quote(full_path) + " to " + std::to_string(size) +
                                  " bytes: beyond its size of " + std::to_string(current));
}

Error Closed(std::string_view full_path) {
  return Fail(errc::io_error, Quote(full_path) + " is already closed");
}

}  // namespace detail
Result<void> WritableFile::AppendFrom(ReadableFile& src, uint64_t offset, uint64_t length) {
  if (offset > src.size() || length > src.size() - offset) {
    return MakeError(errc::io_error, "the source is shorter than the bytes to copy");
  }
  std::vector<char> buf(static_cast<size_t>(std::min<uint64_t>(length, 1 << 20)));
  uint64_t done = 0;
  while (done < length) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), length - done));
    auto n = src.ReadAt(offset + done, std::span<char>(buf.data(), want));
    if (!n) return n.error();
    if (*n == 0) return MakeError(errc::io_error, "the source ended before the bytes to copy");
    HUB_TRY(Append(std::span<const char>(buf.data(), *n)));
    done += *n;
  }
  return Ok();
}

}  // namespace hub::storage
