#pragma once
// Syntax checks behind the config keys' validation: pure functions of their
// input (inet_pton aside), no I/O.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hub::config::detail {

// ASCII lower case; other bytes unchanged.
std::string AsciiLower(std::string_view s);

// Printable ASCII other than space (0x21..0x7e).
bool IsGraphAscii(char c);

// Without leading and trailing spaces and tabs.
std::string_view TrimBlanks(std::string_view s);

// Items between commas, each trimmed; "" gives one empty item, "a," two.
std::vector<std::string_view> SplitCommaList(std::string_view s);

// true/false, 1/0, yes/no, on/off in any case; nullopt for anything else.
std::optional<bool> ParseBool(std::string_view text);

// Decimal digits only: no sign, no blanks, no trailing junk; nullopt on
// overflow of uint64_t.
std::optional<uint64_t> ParseUint(std::string_view text);

// Strict RFC 4648 base64: standard alphabet, padding required, no
// whitespace, unused trailing bits zero (so each byte string has exactly one
// accepted spelling). nullopt if `in` is not such an encoding.
std::optional<std::string> DecodeBase64(std::string_view in);

// An IPv4 or IPv6 address literal as inet_pton accepts it (no brackets).
bool IsIpLiteral(std::string_view text);

// An RFC 1123 host name: dot-separated labels of 1..63 letters, digits and
// '-' (not at either end), 253 bytes at most. IPv4 literals qualify.
bool IsHostName(std::string_view host);

// Checks "host:port" or "[ipv6]:port" (port 1..65535). On failure returns
// false and sets *why to a sentence fragment about `item`.
bool IsHostPort(std::string_view item, std::string* why);

}  // namespace hub::config::detail
