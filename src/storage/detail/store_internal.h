#pragma once
// Shared by the Store backends (local and in-memory) so that both report the
// same errors with the same messages: path splitting and error values.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"
#include "storage/store.h"

namespace hub::storage::detail {

// Prefix of WriteAtomic's temp files; no valid path component starts with it.
inline constexpr std::string_view kTempPrefix = ".tmp-";

inline bool IsTempName(std::string_view name) { return name.starts_with(kTempPrefix); }

// The components of a path that passed IsValidPath ("" gives none).
std::vector<std::string_view> SplitPath(std::string_view path);

// `path` in double quotes with control bytes escaped, safe for log lines.
std::string Quote(std::string_view path);

inline Error Fail(errc code, std::string message) {
  return MakeError(make_error_code(code), std::move(message));
}

// errc::invalid_path, saying what a valid path looks like.
Error InvalidPath(std::string_view path);

// ENOSPC/EDQUOT -> no_space, ENOENT -> not_found, EEXIST -> already_exists,
// ENOTDIR -> not_a_directory, anything else -> io_error.
errc CodeFor(int err);

// `<op> "<path>": <strerror>`, plus what to do when there is something to do.
Error SysError(int err, std::string_view op, std::string_view full_path);

Error AlreadyExists(std::string_view full_path);
Error TooLarge(std::string_view full_path, size_t max_bytes);
Error NotEmpty(std::string_view full_path);
Error TruncateBeyondEnd(std::string_view full_path, uint64_t size, uint64_t current);
Error Closed(std::string_view full_path);

}  // namespace hub::storage::detail
