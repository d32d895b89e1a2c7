#include "config/detail/dotenv.h"

#include "config/detail/values.h"

namespace hub::config::detail {
namespace {

bool IsBlank(char c) { return c == ' ' || c == '\t'; }

std::string_view SkipBlanks(std::string_view s) {
  while (!s.empty() && IsBlank(s.front())) s.remove_prefix(1);
  return s;
}

bool IsNameChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

// One line. Returns false and sets *error for a malformed line; leaves
// *key empty for a blank or comment line.
bool ParseLine(std::string_view line, std::string* key, std::string* value, std::string* error) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  line = SkipBlanks(line);
  if (line.empty() || line.front() == '#') return true;
  if (line.size() > 7 && line.substr(0, 6) == "export" && IsBlank(line[6])) {
    line = SkipBlanks(line.substr(7));
  }
  size_t n = 0;
  while (n < line.size() && IsNameChar(line[n])) ++n;
  if (n == 0 || (line[0] >= '0' && line[0] <= '9')) {
    *error = "expected KEY=value, with KEY made of letters, digits and _";
    return false;
  }
  const std::string_view name = line.substr(0, n);
  line = SkipBlanks(line.substr(n));
  if (line.empty() || line.front() != '=') {
    *error = "expected = after " + std::string(name);
    return false;
  }
  line.remove_prefix(1);
  const std::string_view rest = SkipBlanks(line);
  std::string parsed;
  std::string_view after;
  if (!rest.empty() && rest.front() == '"') {
    size_t i = 1;
    for (; i < rest.size() && rest[i] != '"'; ++i) {
      if (rest[i] != '\\') {
        parsed += rest[i];
        continue;
      }
      if (++i == rest.size()) break;
      switch (rest[i]) {
        case 'n':
          parsed += '\n';
          break;
        case '"':
          parsed += '"';
          break;
        case '\\':
          parsed += '\\';
          break;
        default:
          *error = std::string("unknown escape \\") + rest[i] +
                   " in double quotes (only \\n \\\" \\\\; use single quotes for a literal value)";
          return false;
      }
    }
    if (i >= rest.size()) {
      *error = "unterminated double quote";
      return false;
    }
    after = rest.substr(i + 1);
  } else if (!rest.empty() && rest.front() == '\'') {
    const size_t close = rest.find('\'', 1);
    if (close == std::string_view::npos) {
      *error = "unterminated single quote";
      return false;
    }
    parsed = rest.substr(1, close - 1);
    after = rest.substr(close + 1);
  } else {
    // Unquoted: '#' starts a comment only after a blank (KEY=a#b is "a#b").
    size_t end = 0;
    while (end < line.size() && !(line[end] == '#' && end > 0 && IsBlank(line[end - 1]))) ++end;
    *key = name;
    *value = TrimBlanks(line.substr(0, end));
    return true;
  }
  after = SkipBlanks(after);
  if (!after.empty() && after.front() != '#') {
    *error = "unexpected text after the closing quote";
    return false;
  }
  *key = name;
  *value = std::move(parsed);
  return true;
}

}  // namespace

DotEnv ParseDotEnv(std::string_view content) {
  DotEnv out;
  for (size_t line_number = 1; !content.empty(); ++line_number) {
    const size_t newline = content.find('\n');
    const std::string_view line = content.substr(0, newline);
    content.remove_prefix(newline == std::string_view::npos ? content.size() : newline + 1);
    std::string key, value, error;
    if (!ParseLine(line, &key, &value, &error)) {
      out.errors.push_back(DotEnvError{line_number, std::move(error)});
    } else if (!key.empty()) {
      out.entries.push_back(DotEnvEntry{line_number, std::move(key), std::move(value)});
    }
  }
  return out;
}

}  // namespace hub::config::detail
