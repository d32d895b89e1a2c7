#pragma once
// The .env format (see src/config/README.md): KEY=value lines, optional
// `export `, # comments, blank lines, values unquoted (a " #" starts a
// comment), in single quotes (literal) or in double quotes (\n \" \\ escapes).
// Sans-IO: the caller reads the file.

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace hub::config::detail {

struct DotEnvEntry {
  size_t line = 0;  // 1-based
  std::string key;
  std::string value;
};

struct DotEnvError {
  size_t line = 0;   // 1-based
  std::string what;  // never quotes the line itself: it may hold a secret
};

struct DotEnv {
  std::vector<DotEnvEntry> entries;  // in file order; a later entry for a key wins
  std::vector<DotEnvError> errors;   // malformed lines, in file order
};

// Parses every line; a malformed line is reported and skipped.
DotEnv ParseDotEnv(std::string_view content);

}  // namespace hub::config::detail
