#include "config/detail/values.h"

#include <arpa/inet.h>

#include <charconv>
#include <system_error>

namespace hub::config::detail {
namespace {

int Base64Sextet(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

bool IsIpLiteral(std::string_view text, int family) {
  if (text.find('\0') != std::string_view::npos) return false;
  const std::string s(text);  // inet_pton wants a NUL-terminated string
  unsigned char buf[16];
  return inet_pton(family, s.c_str(), buf) == 1;
}

}  // namespace

std::string AsciiLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

bool IsGraphAscii(char c) { return c > ' ' && c < 0x7f; }

std::string_view TrimBlanks(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::vector<std::string_view> SplitCommaList(std::string_view s) {
  std::vector<std::string_view> out;
  for (;;) {
    const size_t comma = s.find(',');
    out.push_back(TrimBlanks(s.substr(0, comma)));
    if (comma == std::string_view::npos) return out;
    s.remove_prefix(comma + 1);
  }
}

std::optional<bool> ParseBool(std::string_view text) {
  const std::string s = AsciiLower(text);
  if (s == "true" || s == "1" || s == "yes" || s == "on") return true;
  if (s == "false" || s == "0" || s == "no" || s == "off") return false;
  return std::nullopt;
}

std::optional<uint64_t> ParseUint(std::string_view text) {
  // from_chars takes no sign for an unsigned type, nor leading blanks.
  uint64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size()) return std::nullopt;
  return value;
}

std::optional<std::string> DecodeBase64(std::string_view in) {
  if (in.size() % 4 != 0) return std::nullopt;
  std::string out;
  out.reserve(in.size() / 4 * 3);
  for (size_t i = 0; i < in.size(); i += 4) {
    const bool last = i + 4 == in.size();
    int v[4];
    int pad = 0;
    for (size_t j = 0; j < 4; ++j) {
      const char c = in[i + j];
      if (c == '=') {
        if (!last || j < 2) return std::nullopt;
        ++pad;
        v[j] = 0;
        continue;
      }
      if (pad > 0) return std::nullopt;  // data after padding
      v[j] = Base64Sextet(c);
      if (v[j] < 0) return std::nullopt;
    }
    if ((pad == 1 && (v[2] & 0x3) != 0) || (pad == 2 && (v[1] & 0xf) != 0)) return std::nullopt;
    const uint32_t n = (static_cast<uint32_t>(v[0]) << 18) | (static_cast<uint32_t>(v[1]) << 12) |
                       (static_cast<uint32_t>(v[2]) << 6) | static_cast<uint32_t>(v[3]);
    out.push_back(static_cast<char>((n >> 16) & 0xff));
    if (pad < 2) out.push_back(static_cast<char>((n >> 8) & 0xff));
    if (pad < 1) out.push_back(static_cast<char>(n & 0xff));
  }
  return out;
}

bool IsIpLiteral(std::string_view text) {
  return IsIpLiteral(text, AF_INET) || IsIpLiteral(text, AF_INET6);
}

bool IsHostName(std::string_view host) {
  if (host.empty() || host.size() > 253) return false;
  for (;;) {
    const size_t dot = host.find('.');
    const std::string_view label = host.substr(0, dot);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
      return false;
    }
    for (char c : label) {
      const bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
      if (!alnum && c != '-') return false;
    }
    if (dot == std::string_view::npos) return true;
    host.remove_prefix(dot + 1);
  }
}

bool IsHostPort(std::string_view item, std::string* why) {
  const std::string quoted = "\"" + std::string(item) + "\"";
  std::string_view port;
  if (!item.empty() && item.front() == '[') {
    const size_t close = item.find(']');
    if (close == std::string_view::npos) {
      *why = quoted + " has no closing ]";
      return false;
    }
    if (!IsIpLiteral(item.substr(1, close - 1), AF_INET6)) {
      *why = quoted + " does not have an IPv6 address between [ and ]";
      return false;
    }
    if (close + 1 >= item.size() || item[close + 1] != ':') {
      *why = quoted + " has no port";
      return false;
    }
    port = item.substr(close + 2);
  } else {
    const size_t colon = item.rfind(':');
    if (colon == std::string_view::npos) {
      *why = quoted + " has no port";
      return false;
    }
    const std::string_view host = item.substr(0, colon);
    if (host.find(':') != std::string_view::npos) {
      *why = quoted + ": write an IPv6 address as [addr]:port";
      return false;
    }
    if (!IsHostName(host)) {
      *why = quoted + " does not start with a host name or address";
      return false;
    }
    port = item.substr(colon + 1);
  }
  const std::optional<uint64_t> n = ParseUint(port);
  if (!n || *n < 1 || *n > 65535) {
    *why = quoted + " does not end with a port 1..65535";
    return false;
  }
  return true;
}

}  // namespace hub::config::detail
